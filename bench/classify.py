"""Classifier throughput benchmark: prints figures, asserts nothing (not a test).

Generates a deterministic corpus of UK news articles (2-8 KB each, ~1% on topic:
sentences spliced in from seeds/ and the labelled set's on-topic articles), then
measures on one core, evidence extraction included:

  (a) items/s of ``classifiers.match.match_item`` with the default watch-rules.yaml;
  (b) items/s with 100 findings: the default synonyms and topics plus 100 synthetic
      findings (phrase, NEAR/ONEAR and regex clauses), written to a temporary rules
      file and loaded with ``classifiers.rules.load_rules``;
  (c) a naive baseline for both rule sets, in the same run: every clause translated
      to a Python ``re`` pattern and run one by one with ``re.search`` over the raw
      text (see ``NaiveMatcher`` for the translation).

Each figure is the median of ``--repeats`` (>= 3) passes, in items per CPU-second
(wall-clock beside it). (a) runs over every article; (b) and (c) over ``--sample``
evenly spread ones. Also prints engine/baseline ratios on the same articles, how often
the baseline agrees with the engine, and peak RSS. ``--profile`` adds a cProfile of
the engine for both rule sets. See bench/README.md.

    .venv/bin/python bench/classify.py            # 10,000 articles (~2 CPU-minutes)
    .venv/bin/python bench/classify.py --quick    # 1,000 articles (~25 CPU-seconds)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import re
import resource
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from classifiers.expressions import Clause, Pattern, Phrase
from classifiers.match import match_item
from classifiers.rules import CompiledClauses, RuleSet, load_rules
from metwatch.models import Item

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = ROOT / "watch-rules.yaml"
SEEDS = ROOT / "seeds"
LABELLED = ROOT / "tests" / "data" / "labelled"

# Targets from the issue.
TARGET_DEFAULT = 3_000.0
TARGET_100 = 1_000.0
TARGET_RATIO = 10.0

# --------------------------------------------------------------------------- corpus

FILL: dict[str, list[str]] = {
    "place": [
        "Croydon",
        "Hackney",
        "Lambeth",
        "Southwark",
        "Tower Hamlets",
        "Ealing",
        "Brent",
        "Barnet",
        "Enfield",
        "Lewisham",
        "Islington",
        "Camden",
        "Westminster",
        "Harrow",
        "Bromley",
        "Newham",
        "Manchester",
        "Leeds",
        "Bristol",
        "Birmingham",
        "Cardiff",
        "Glasgow",
        "Kent",
        "Essex",
        "Surrey",
        "Reading",
        "Brighton",
        "Norwich",
    ],
    "person": [
        "Sarah Jones",
        "David Patel",
        "Amira Hassan",
        "Tom Wilson",
        "Priya Shah",
        "James O'Connor",
        "Helen Clarke",
        "Marcus Reid",
        "Fatima Begum",
        "Owen Hughes",
        "Grace Okafor",
        "Daniel Murphy",
        "Chloe Evans",
        "Rajesh Kumar",
        "Lucy Bennett",
    ],
    "org": [
        "the council",
        "Transport for London",
        "the NHS trust",
        "the Home Office",
        "the Treasury",
        "Network Rail",
        "Ofsted",
        "the Environment Agency",
        "the BBC",
        "the Greater London Authority",
        "the Department for Education",
        "Thames Water",
        "the Crown Prosecution Service",
        "the Care Quality Commission",
        "Ofgem",
    ],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "month": ["January", "March", "April", "June", "July", "September", "October", "December"],
    "team": [
        "Arsenal",
        "Chelsea",
        "Tottenham",
        "West Ham",
        "Crystal Palace",
        "Fulham",
        "Brentford",
        "Millwall",
        "QPR",
        "Charlton",
    ],
    "street": [
        "the High Street",
        "Oxford Street",
        "the Old Kent Road",
        "Mile End Road",
        "Kingsland Road",
        "Brixton Road",
        "Edgware Road",
        "the A406",
    ],
}

DESKS: dict[str, list[str]] = {
    "crime": [
        "Metropolitan Police officers were called to {street} in {place} at {num}pm on {day}.",
        "A {age}-year-old man has been arrested on suspicion of attempted murder, the Met said.",
        "Detectives from the Met's Specialist Crime command are appealing for witnesses.",
        "Scotland Yard said a cordon would stay in place while forensic officers worked.",
        "The victim was taken to hospital in {place}, where his condition is stable.",
        "Anyone with information is asked to call 101 quoting reference {num}/{day2}{month_num}.",
        "Police said they were not looking for anyone else in connection with the incident.",
        "Officers carried out a search of a property in {place} and seized {num} mobile phones.",
        'Detective Inspector {person} said the attack was "a shocking act of violence".',
        "A man has been charged with {num} offences including robbery and possession of a knife.",
        "The Met said it had increased patrols in {place} following a spate of phone thefts.",
        "Local residents said they had seen a heavy police presence on {street} all weekend.",
        "Knife crime in {place} rose by {pct}% last year, according to figures from the Met.",
        "The force said officers had made {num} arrests in an operation against county lines.",
        "Officers from the Met's Territorial Support Group were deployed to {street}.",
        "A registered sex offender was among {num} people arrested in the week-long operation.",
        "The Met said it had referred itself to the police watchdog, the IOPC.",
        "Footage from officers' body-worn video was released by the force on {day}.",
        "The man was stopped and searched on {street} after officers smelled cannabis.",
    ],
    "courts": [
        "The trial at the Old Bailey heard that the defendant had denied the charges.",
        "He was jailed for {num} months at Southwark Crown Court on {day}.",
        'Judge {person} told the court the offence had caused "lasting harm" to the victim.',
        "The jury was discharged after failing to reach a verdict.",
        "She pleaded guilty at Westminster Magistrates' Court and was released on bail.",
        "Prosecutors said the case had taken {num} months to reach court because of a backlog.",
        "The defendant, of {place}, will be sentenced in {month}.",
        "The Crown Prosecution Service said it had taken no further action against a second man.",
        "His barrister told the court he had shown genuine remorse.",
        "The court heard the victim had been too frightened to leave her home for weeks.",
    ],
    "politics": [
        "The Mayor of London, Sadiq Khan, said the plans would make the capital fairer.",
        "Ministers are expected to announce the details in the Budget in {month}.",
        'The Conservative group on the London Assembly called the proposals "unaffordable".',
        'Labour said the government had inherited "a very difficult situation".',
        "The Home Secretary told MPs that police numbers would rise by {num} this year.",
        "The Liberal Democrats said the policy would hit families in {place} hardest.",
        "A council spokesperson said the decision had not been taken lightly.",
        "Campaigners plan to hand a petition with {num} signatures to Downing Street.",
        "The committee will publish its recommendations in {month}.",
        "{person}, the MP for {place}, said constituents had been left in the dark.",
        "The Metropolitan Police commissioner will appear before the London Assembly in {month}.",
    ],
    "weather": [
        "The Met Office has issued a yellow warning for rain covering London and the south-east.",
        "Temperatures could reach {temp}C in {place} on {day}, forecasters said.",
        "A Met Office spokesperson said conditions would improve by the weekend.",
        "The Environment Agency has {num} flood alerts in place across England.",
        "Drivers were advised to check their routes in advance and allow extra time.",
        "Gusts of up to {num}mph are possible on exposed coasts.",
        "The UK Health Security Agency has issued an amber heat-health alert.",
        "Forecasters said the unsettled spell was likely to continue into next week.",
    ],
    "transport": [
        "Transport for London said part of the Central line was suspended.",
        "Passengers faced delays of up to {num} minutes after a signal failure at {place}.",
        "Network Rail said engineering works would close the line for {num} days.",
        "The RMT union announced a {num}-day strike over pay and conditions.",
        "The Elizabeth line carried a record {num},000 passengers on {day}.",
        "Road closures will be in place on {street} until {month}.",
        "Cyclists said the new lane on {street} had made the junction safer.",
        "Fares are due to rise by {pct}% from {month}, TfL confirmed.",
    ],
    "health": [
        "The NHS trust said waiting lists in {place} had fallen for the third month in a row.",
        "The Care Quality Commission rated the maternity unit inadequate after an inspection.",
        "Inspectors found staff shortages on {num} wards during their visit.",
        "Junior doctors will walk out for {num} days from {day}, the BMA said.",
        "A&E departments in London saw {num},000 patients last month.",
        "The health secretary said the new funding would cut waiting times.",
        "The hospital said it had accepted the findings and drawn up an action plan.",
        "GP practices in {place} will offer extended opening hours from {month}.",
    ],
    "education": [
        "Ofsted inspectors rated the school good in every area following a two-day inspection.",
        "The academy trust said it was disappointed by the report and would appeal.",
        "Pupils in {place} achieved their best GCSE results since {year}.",
        "Teachers at {num} schools in the borough voted to strike over funding.",
        "The Department for Education said free school meals would be extended.",
        "Headteacher {person} said the staff had worked incredibly hard.",
        "Parents were told in advance that the school would close early on {day}.",
    ],
    "business": [
        "Shares in the retailer fell {pct}% after it issued a profit warning.",
        "The Bank of England held interest rates at {rate}% on {day}.",
        "The company said it would create {num} jobs at a new site in {place}.",
        "House prices in London fell by {pct}% in the year to {month}, the ONS said.",
        'The chief executive, {person}, said trading had been "challenging".',
        "Inflation rose to {rate}% last month, driven by higher food prices.",
        "The firm has been fined {num},000 pounds by the regulator.",
        "Landlords in {place} face new licensing rules from {month}.",
    ],
    "culture": [
        "The Met Gala's red carpet drew stars from music, film and fashion.",
        "The Metropolitan Opera announced its new season on {day}.",
        "The exhibition at Tate Modern runs until {month}.",
        "The West End show will transfer to Broadway next year.",
        "The festival in {place} attracted more than {num},000 visitors.",
        "Critics praised the production's staging and its lead performance.",
        "The museum said visitor numbers had returned to pre-pandemic levels.",
    ],
    "sport": [
        "{team} beat {team2} {score} at home on {day}.",
        "The manager said his side had deserved the three points.",
        "{team} are now {num} points clear at the top of the table.",
        "The striker scored twice in the second half.",
        "A crowd of {num},000 watched the match in {place}.",
        "The club confirmed the signing on a four-year contract.",
        "The Metropolitan Police said {num} arrests were made after disorder outside the ground.",
    ],
    "housing": [
        "Building safety inspectors found fire doors missing on {num} floors of the tower block.",
        "Residents in {place} said they had been waiting months for repairs.",
        "The housing association said an inspection of every flat would be completed by {month}.",
        "The council approved plans for {num} new homes on the former industrial site.",
        "Tenants said damp and mould had made their children ill.",
        "The regulator found the landlord had failed to carry out gas safety checks.",
    ],
}

# Sentences any desk may use; none names the Met or an inspection, as in most real
# copy (so "the Met" and "inspectors" meet about as rarely as they do in the news).
GENERAL: list[str] = [
    "The announcement was welcomed by local campaigners.",
    "A spokesperson said the organisation would study the details carefully.",
    "Figures published on {day} show the number has risen by {pct}% since {year}.",
    "Residents in {place} said they had not been consulted.",
    "The plans will be discussed at a meeting in {month}.",
    "{person}, who has lived in {place} for {num} years, said the change was long overdue.",
    "Critics said the decision had come too late.",
    "It is the {num}th time this year that the issue has been raised.",
    "Further details are expected to be published in the coming weeks.",
    "The organisation said it did not comment on individual cases.",
    "{org} said it was working closely with partners.",
    "A petition calling for a rethink has been signed by {num} people.",
]

HEADLINES: list[str] = [
    "Man arrested after stabbing in {place}",
    "Met appeals for witnesses after {street} attack",
    "{place} council approves {num} new homes",
    "Yellow weather warning issued for London",
    "Tube strike to go ahead on {day}",
    "Hospital maternity unit rated inadequate",
    "{team} beat {team2} in London derby",
    "School in {place} rated good by Ofsted",
    "Interest rates held at {rate}%",
    "Jury discharged in Old Bailey trial",
    "Mayor unveils plan for {place}",
    "Knife crime falls in {place}, figures show",
    "Tower block residents told of fire safety failings",
    "Met Gala: the best looks from the red carpet",
    "House prices fall in the capital",
    "Man jailed for {num} months over robbery",
]

_SLOT = re.compile(r"\{(\w+)\}")


def _fill(template: str, rng: random.Random) -> str:
    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in FILL:
            return rng.choice(FILL[name])
        if name == "team2":
            return rng.choice(FILL["team"])
        return {
            "num": lambda: str(rng.randint(2, 950)),
            "age": lambda: str(rng.randint(16, 78)),
            "pct": lambda: str(rng.randint(1, 40)),
            "temp": lambda: str(rng.randint(24, 35)),
            "rate": lambda: f"{rng.randint(1, 6)}.{rng.randint(0, 9)}",
            "year": lambda: str(rng.randint(2005, 2019)),
            "score": lambda: f"{rng.randint(1, 4)}-{rng.randint(0, 3)}",
            "day2": lambda: f"{rng.randint(1, 28):02d}",
            "month_num": lambda: f"{rng.randint(1, 12):02d}",
        }[name]()

    return _SLOT.sub(value, template)


def _splice_pool() -> tuple[list[str], list[str]]:
    """On-topic sentences and headlines from seeds/ and the labelled on-topic articles."""
    sentences: list[str] = []
    headlines: list[str] = []
    files = sorted(SEEDS.glob("*.txt")) + sorted(LABELLED.glob("pos-*.txt"))
    for path in files:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        if path.parent == LABELLED and lines:
            headlines.append(lines[0])
            lines = lines[1:]
        for line in lines:
            if len(line) >= 60 and not line.startswith(("!", "http", "-")):
                sentences.append(line)
    return sentences, headlines


@dataclass(frozen=True, slots=True)
class Corpus:
    items: tuple[Item, ...]
    on_topic: frozenset[int]

    @property
    def total_bytes(self) -> int:
        return sum(len(i.text.encode()) for i in self.items)


def make_corpus(n: int, seed: int, on_topic_share: float = 0.01) -> Corpus:
    """``n`` articles of 2-8 KB; exactly round(n * share) of them carry on-topic sentences."""
    rng = random.Random(seed)
    pool, topic_headlines = _splice_pool()
    on_topic = frozenset(rng.sample(range(n), max(1, round(n * on_topic_share))))
    desks = sorted(DESKS)
    items: list[Item] = []
    for k in range(n):
        desk = rng.choice(desks)
        target = rng.randint(2048, 8192)
        paragraphs: list[str] = []
        size = 0
        while size < target:
            count = rng.randint(2, 4)
            sentences = [
                _fill(rng.choice(DESKS[desk] if rng.random() < 0.8 else GENERAL), rng)
                for _ in range(count)
            ]
            paragraph = " ".join(sentences)
            if size + len(paragraph) > 8192 - 2 and size >= 2048:
                break
            paragraphs.append(paragraph)
            size += len(paragraph) + 2
        title = _fill(rng.choice(HEADLINES), rng)
        if k in on_topic:
            spliced = rng.sample(pool, rng.randint(2, 5))
            at = rng.randint(0, len(paragraphs))
            paragraphs[at:at] = spliced
            if rng.random() < 0.5:
                title = rng.choice(topic_headlines)
        body = "\n\n".join(paragraphs)
        items.append(Item(f"bench-{k}", "bench", "Bench", None, title, "", body, None, str(k)))
    return Corpus(tuple(items), on_topic)


# ------------------------------------------------------------------ 100 findings

# What a finding is about: fairly specific terms, as a watcher would track.
_ANCHORS = [
    '"stop and search"',
    "vetting",
    '"misconduct hearing*"',
    '"body worn video"',
    '"strip search*"',
    "custody",
    "firearms",
    '"special measures"',
    '"response times"',
    '"charge rate*"',
    '"county lines"',
    '"missing children"',
    '"use of force"',
    '"hate crime*"',
    '"rape investigations"',
    '"victim care"',
    "taser*",
    "overtime",
    "vacanc*",
    "backlog",
    "informant*",
    '"child protection"',
    "{indecent-images}",
    "{sex-offenders}",
    "{offender-register}",
    '"domestic abuse"',
    '"knife crime"',
]
# What it is said about: common words of the same copy.
_CONTEXT = [
    "officers",
    "victims",
    "failed",
    "failing",
    "found",
    "report",
    "review",
    "inquiry",
    "commissioner",
    "mayor",
    "budget",
    "training",
    "detectives",
    "warrant*",
    "arrest*",
    "complaint*",
    "suspects",
    "intelligence",
    "inadequate",
    '"requires improvement"',
    "{met}",
    "{inspectorate}",
    "{visits}",
    "{in-advance}",
    "{investigate}",
    "{lacks}",
]
# Quotable phrases a finding may name outright.
_QUOTES = [
    '"vetting failures"',
    '"misconduct hearing"',
    '"strip searched"',
    '"custody deaths"',
    '"not fit for purpose"',
    '"institutionally racist"',
    '"failed to record"',
    '"culture of denial"',
    '"out of their depth"',
    '"taser was fired"',
    '"response times doubled"',
    '"missing children" NEAR/5 exploitation',
    '"charge rate fell"',
    '"body worn video was switched off"',
    '"no proactive consideration"',
]
_REGEXES = [
    r"\b\d{1,3}(?:\.\d)? per cent of (?:victims|officers|cases|calls)",
    r"response times? (?:rose|fell|increased|doubled)",
    r"stops? and search(?:es)?.{0,60}(?:black|ethnic)",
    r"vetting (?:failures?|checks?).{0,80}officers?",
    r"\b(?:999|101) calls?.{0,40}(?:answered|waiting|minutes)",
    r"misconduct (?:hearing|proceedings).{0,60}(?:dismissed|sacked)",
    r"body[- ]worn (?:video|cameras?).{0,80}(?:switched off|not recorded)",
    r"\bcustody (?:deaths?|suites?)\b",
    r"knife crime.{0,40}\b(?:rose|fell|up|down)\b.{0,20}\d+ ?%",
    r"\b\d+ arrests?\b.{0,80}\boperation\b",
]


def _clause(rng: random.Random, anchor: str) -> str | dict[str, str]:
    """One clause about ``anchor``: 35% NEAR, 15% ONEAR, 10% 3-term chain,
    25% a quotable phrase, 15% a regex."""
    shape = rng.random()
    a, b = rng.sample(_CONTEXT, 2)
    if shape < 0.35:
        return f"{anchor} NEAR/{rng.randint(3, 20)} {a}"
    if shape < 0.50:
        return f"{a} ONEAR/{rng.randint(2, 12)} {anchor}"
    if shape < 0.60:
        return f"{anchor} NEAR/{rng.randint(3, 10)} {a} NEAR/{rng.randint(5, 20)} {b}"
    if shape < 0.85:
        return rng.choice(_QUOTES)
    return {"re": rng.choice(_REGEXES)}


def _yaml(clause: str | dict[str, str]) -> str:
    if isinstance(clause, dict):
        return "{re: " + json.dumps(clause["re"]) + "}"
    return json.dumps(clause)  # a JSON string is a valid YAML double-quoted scalar


def synthetic_rules_text(default_rules: str, n: int, seed: int) -> str:
    """The default file's synonyms and topics plus ``n`` synthetic findings (no sources).

    40% of the findings use the topic's ``require`` (the Met and the inspectorate),
    30% require only the Met, and 30% require nothing, so they run on every item.
    """
    rng = random.Random(seed)
    head = default_rules[: default_rules.index("\nfindings:")]
    lines = [head, "", "findings:"]
    for k in range(n):
        lines += [
            f"  - id: synthetic-{k:03d}",
            "    topic: met-inspection",
            f"    title: Synthetic finding {k}",
            f"    description: Generated finding {k} for the benchmark.",
        ]
        roll = rng.random()
        if roll < 0.3:
            lines.append("    require: []")
        elif roll < 0.6:
            lines.append("    require: [met]")
        lines.append("    match:")
        anchor = rng.choice(_ANCHORS)
        if rng.random() < 0.3:
            lines.append(f"      all: [{_yaml(rng.choice(_CONTEXT))}]")
        if rng.random() < 0.15:
            lines.append(f"      none: [{_yaml(rng.choice(_ANCHORS))}]")
        lines.append("      any:")
        lines += [f"        - {_yaml(_clause(rng, anchor))}" for _ in range(rng.randint(2, 5))]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- naive baseline


def _token_re(token: str) -> str:
    return re.escape(token[:-1]) + r"\w*" if token.endswith("*") else re.escape(token)


def _phrase_re(phrase: Phrase) -> str:
    slots = []
    for alternatives in phrase.slots:
        options = [r"\W+".join(_token_re(t) for t in alt) for alt in alternatives]
        slots.append(options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")")
    return r"\b" + r"\W+".join(slots) + r"\b"


def clause_regex(clause: Clause) -> str:
    """A Python ``re`` pattern roughly equivalent to one compiled clause.

    * phrase: its words joined by ``\\W+`` between ``\\b`` anchors; ``word*`` becomes
      ``word\\w*``; a ``{group}`` becomes an alternation of its phrases;
    * ``A NEAR/n B``: ``A(?:\\W+\\w+){0,n}\\W+B|B(?:\\W+\\w+){0,n}\\W+A`` (at most n words
      between); ``ONEAR`` keeps the first branch; chains nest left to right;
    * ``{re: ...}``: the pattern itself (RE2 syntax is a subset of ``re``'s).

    Run with ``re.IGNORECASE`` on the raw text (no folding of quotes or dashes).
    """
    if isinstance(clause, Pattern):
        return clause.text
    if isinstance(clause, Phrase):
        return _phrase_re(clause)
    current = _phrase_re(clause.operands[0])
    for (ordered, distance), operand in zip(clause.operators, clause.operands[1:], strict=True):
        right = _phrase_re(operand)
        gap = rf"(?:\W+\w+){{0,{distance}}}\W+"
        forward = f"(?:{current}){gap}{right}"
        current = forward if ordered else f"(?:{forward}|{right}{gap}(?:{current}))"
    return current


@dataclass(frozen=True, slots=True)
class _NaiveRule:
    id: str
    is_topic: bool
    require: tuple[str, ...]
    none: tuple[re.Pattern[str], ...]
    all: tuple[re.Pattern[str], ...]
    any: tuple[re.Pattern[str], ...]


class NaiveMatcher:
    """The baseline: each rule's clauses as Python ``re`` patterns, searched one by one.

    Same decision order as the engine (require, none, all, any; a required group is
    looked up once per item), but no token index, no caching of clauses shared between
    rules, no evidence sentences and no score: the first ``any`` hit decides. That
    makes it cheaper per item than the engine's full work, so the ratio is conservative.
    """

    def __init__(self, rules: RuleSet) -> None:
        def compile_all(clauses: Sequence[Clause]) -> tuple[re.Pattern[str], ...]:
            return tuple(re.compile(clause_regex(c), re.IGNORECASE) for c in clauses)

        self.terms = {
            name: (compile_all(term.phrases), compile_all(term.excluded))
            for name, term in rules.terms.items()
        }

        def rule(rid: str, topic: bool, req: tuple[str, ...], c: CompiledClauses) -> _NaiveRule:
            return _NaiveRule(
                rid, topic, req, compile_all(c.none), compile_all(c.all), compile_all(c.any)
            )

        self.rules = [rule(f.id, False, f.require, f.clauses) for f in rules.findings]
        self.rules += [rule(t.id, True, t.require, t.clauses) for t in rules.topics]

    def match(self, text: str) -> frozenset[str]:
        """Ids of the findings that match, plus topic ids matched with no finding."""
        present: dict[str, bool] = {}

        def has(name: str) -> bool:
            if name not in present:
                phrases, excluded = self.terms[name]
                vetoes = [m.span() for p in excluded for m in p.finditer(text)]
                present[name] = any(
                    not any(m.start() < e and s < m.end() for s, e in vetoes)
                    for p in phrases
                    for m in p.finditer(text)
                )
            return present[name]

        found: set[str] = set()
        topics: set[str] = set()
        for r in self.rules:
            if not all(has(n) for n in r.require):
                continue
            if any(p.search(text) for p in r.none):
                continue
            if not all(p.search(text) for p in r.all):
                continue
            if r.any and not any(p.search(text) for p in r.any):
                continue
            (topics if r.is_topic else found).add(r.id)
        return frozenset(found | topics) if not found else frozenset(found)


# ---------------------------------------------------------------------- measuring


@dataclass(frozen=True, slots=True)
class Rate:
    """Items per second of CPU time (this process) and of wall-clock time."""

    cpu: float
    wall: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """One rules file measured: the engine over its items, both sides over the sample."""

    engine: Rate
    engine_items: int
    #: Engine and baseline on the same evenly spread sample (the ratio's two sides).
    engine_on_sample: float
    baseline: Rate
    sample_items: int
    flagged: int
    topic_only: int
    agreement: float


def _median_rate(counts: int, cpu: list[float], wall: list[float]) -> Rate:
    return Rate(
        statistics.median(counts / max(c, 1e-9) for c in cpu),
        statistics.median(counts / max(w, 1e-9) for w in wall),
    )


def measure(
    rules: RuleSet, corpus: Corpus, *, all_items: bool, sample_size: int, repeats: int
) -> Outcome:
    """Median rates of ``repeats`` passes of the engine and of the naive baseline.

    CPU time (``time.process_time``) is the headline: the process is single threaded,
    so it is one core's throughput even while other jobs share the machine; wall-clock
    (``time.perf_counter``) is reported beside it. The engine runs over every article
    when ``all_items`` (else over the sample); each article it meets in the sample is
    also timed on its own, so engine and baseline are compared on the same articles.
    """
    items = corpus.items
    step = max(1, len(items) // sample_size)
    sample = list(range(0, len(items), step))[:sample_size]
    in_sample = set(sample)
    engine_items = list(range(len(items))) if all_items else sample

    results: dict[int, frozenset[str]] = {}
    cpu, wall, sample_cpu = [], [], []
    for _ in range(repeats):
        in_sample_cpu = 0.0
        c0, w0 = time.process_time(), time.perf_counter()
        for k in engine_items:
            t0 = time.process_time()
            results[k] = frozenset(m.finding_id for m in match_item(items[k], rules))
            if k in in_sample:
                in_sample_cpu += time.process_time() - t0
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        sample_cpu.append(in_sample_cpu)
    engine = _median_rate(len(engine_items), cpu, wall)
    engine_on_sample = statistics.median(len(sample) / max(c, 1e-9) for c in sample_cpu)

    naive = NaiveMatcher(rules)
    texts = [items[k].text for k in sample]
    naive_results: list[frozenset[str]] = []
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        naive_results = [naive.match(text) for text in texts]
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    baseline = _median_rate(len(sample), cpu, wall)

    topic_ids = {t.id for t in rules.topics}
    flagged = sum(1 for r in results.values() if r - topic_ids)
    topic_only = sum(1 for r in results.values() if r and r <= topic_ids)
    same = sum(1 for k, got in zip(sample, naive_results, strict=True) if got == results[k])
    return Outcome(
        engine, len(engine_items), engine_on_sample, baseline, len(sample),
        flagged, topic_only, same / len(sample),
    )  # fmt: skip


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _profile(rules: RuleSet, corpus: Corpus, label: str) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for item in corpus.items:
        match_item(item, rules)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(18)
    print(f"\n--- cProfile, {label}, {len(corpus.items)} items (sorted by own time) ---")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 articles instead of 10,000")
    parser.add_argument("--articles", type=int, help="number of articles (overrides --quick)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per figure (min 3)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--sample", type=int,
        help="evenly spread articles for the baseline and the 100-finding engine run "
        "(default 500, 200 with --quick; items/s is a rate, this bounds the run time)",
    )  # fmt: skip
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    parser.add_argument("--profile", action="store_true", help="also cProfile the engine")
    args = parser.parse_args(argv)
    repeats = max(3, args.repeats)
    n = args.articles or (1_000 if args.quick else 10_000)
    sample = min(args.sample or (200 if args.quick else 500), n)

    started = time.perf_counter()
    corpus = make_corpus(n, args.seed)
    kib = corpus.total_bytes / len(corpus.items) / 1024
    print(
        f"corpus: {n:,} articles, {len(corpus.on_topic)} with on-topic sentences, mean "
        f"{kib:.1f} KiB (seed {args.seed}, built in {time.perf_counter() - started:.1f}s)"
    )
    print(f"peak RSS after building the corpus: {_peak_rss_mib():.0f} MiB")

    default_text = args.rules.read_text(encoding="utf-8")
    default_rules = load_rules(args.rules)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "watch-rules-100.yaml"
        path.write_text(synthetic_rules_text(default_text, 100, args.seed), encoding="utf-8")
        rules_100 = load_rules(path)

    runs = (
        (
            f"(a) default, {len(default_rules.findings)} findings",
            default_rules,
            True,
            TARGET_DEFAULT,
        ),
        (f"(b) {len(rules_100.findings)} findings", rules_100, False, TARGET_100),
    )
    rows = []
    for label, rules, all_items, target in runs:
        outcome = measure(rules, corpus, all_items=all_items, sample_size=sample, repeats=repeats)
        rows.append((label, outcome, target))
        print(f"measured {label}; peak RSS so far {_peak_rss_mib():.0f} MiB")

    print(
        f"\nitems per CPU-second, one core (wall-clock items/s in brackets), median of "
        f"{repeats} passes, evidence included"
    )
    header = (
        f"{'rules':<26} {'articles':>8} {'engine':>15} {'target':>10} "
        f"{'(c) baseline':>15} {'ratio':>6} {'flagged':>7} {'topic-only':>10} {'agree':>6}"
    )
    print(header)
    print("-" * len(header))
    for label, o, target in rows:
        ok = "ok" if o.engine.cpu >= target else "MISS"
        engine = f"{o.engine.cpu:,.0f} ({o.engine.wall:,.0f})"
        base = f"{o.baseline.cpu:,.0f} ({o.baseline.wall:,.0f})"
        ratio = o.engine_on_sample / o.baseline.cpu
        print(
            f"{label:<26} {o.engine_items:>8,} {engine:>15} {target:>5,.0f} {ok:<4} "
            f"{base:>15} {ratio:>5.1f}x {o.flagged:>7,} {o.topic_only:>10,} {o.agreement:>6.1%}"
        )
    print(
        f"\nbaseline and ratio on the same {sample:,} evenly spread articles (engine on them: "
        + ", ".join(f"{o.engine_on_sample:,.0f}/s" for _, o, _ in rows)
        + f"); ratio target >= {TARGET_RATIO:.0f}x"
    )
    print(
        "flagged / topic-only: articles with a finding / with only the topic alert, engine; "
        "agree: share of sampled articles where the baseline gives the same ids"
    )
    print(f"peak RSS: {_peak_rss_mib():.0f} MiB; wall time {time.perf_counter() - started:.0f}s")

    if args.profile:
        quick = Corpus(corpus.items[:500], corpus.on_topic)
        _profile(default_rules, quick, "default rules")
        _profile(rules_100, quick, "100 findings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
