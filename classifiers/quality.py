"""Precision and recall of the watch rules on a labelled article set.

A labelled set is a folder of plain-text articles (headline on the first line,
body after it) and a ``labels.yaml`` naming, for every file, the finding ids the
text states and whether it is on the topic the set is about (see
``tests/data/labelled/labels.yaml``). Each article is matched with
``classifiers.match.match_item`` and compared with its labels:

* per finding: true positives (labelled and flagged), false positives (flagged,
  not labelled), false negatives (labelled, missed), precision, recall and F1;
* overall: the same counts summed over every finding (micro-average);
* the topic: an article counts as "on topic" when any match of that topic is
  delivered (a finding of the topic, or the topic-only alert).

Everything here is pure except ``load_labelled`` (reads the folder) and ``main``
(prints the table): ``.venv/bin/python -m classifiers.quality tests/data/labelled``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from classifiers.match import match_item
from classifiers.rules import RuleSet, load_rules
from metwatch.models import Item

LABELS_FILE = "labels.yaml"
KINDS = frozenset({"on-topic", "hard-negative"})


class LabelsError(ValueError):
    """The labelled set is inconsistent (missing file, unknown finding id, bad entry)."""


@dataclass(frozen=True, slots=True)
class LabelledArticle:
    """One article of the set and what its text states."""

    file: str
    title: str
    body: str
    findings: frozenset[str]
    on_topic: bool
    kind: str
    note: str = ""
    #: A finding wrongly flagged or missed that the rules cannot avoid today (still counted).
    known_gap: str = ""
    #: The same for the topic alert.
    known_topic_gap: str = ""

    @property
    def hard_negative(self) -> bool:
        return self.kind == "hard-negative"

    def item(self) -> Item:
        """The article as the pipeline would see it: headline as title, the rest as body."""
        return Item(
            id=self.file,
            source_id="labelled",
            outlet="Labelled set",
            url=None,
            title=self.title,
            summary="",
            body=self.body,
            published=None,
            content_hash=self.file,
        )


@dataclass(frozen=True, slots=True)
class LabelledSet:
    """A labelled folder: the topic it is about and its articles, in file order."""

    topic: str
    articles: tuple[LabelledArticle, ...]


@dataclass(frozen=True, slots=True)
class Counts:
    """True/false positives and false negatives, with the scores they give."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP); ``None`` when nothing was flagged."""
        flagged = self.tp + self.fp
        return self.tp / flagged if flagged else None

    @property
    def recall(self) -> float | None:
        """TP / (TP + FN); ``None`` when nothing was labelled."""
        labelled = self.tp + self.fn
        return self.tp / labelled if labelled else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True, slots=True)
class ArticleResult:
    """What the rules said about one article, next to its labels."""

    article: LabelledArticle
    flagged: frozenset[str]
    on_topic: bool

    @property
    def false_positives(self) -> frozenset[str]:
        return self.flagged - self.article.findings

    @property
    def false_negatives(self) -> frozenset[str]:
        return self.article.findings - self.flagged

    @property
    def topic_wrong(self) -> bool:
        return self.on_topic != self.article.on_topic

    @property
    def correct(self) -> bool:
        return not (self.false_positives or self.false_negatives or self.topic_wrong)


@dataclass(frozen=True, slots=True)
class Report:
    """Per-finding and overall scores of one rules version on one labelled set."""

    topic_id: str
    finding_ids: tuple[str, ...]
    per_finding: dict[str, Counts]
    overall: Counts
    topic: Counts
    results: tuple[ArticleResult, ...]


def parse_labels(
    data: Any, texts: dict[str, str], finding_ids: Iterable[str] | None = None
) -> LabelledSet:
    """Validate a loaded ``labels.yaml`` against the article ``texts`` (file -> text).

    With ``finding_ids`` (the rules' findings), labels naming any other id are refused.
    """
    if not isinstance(data, dict) or not isinstance(data.get("articles"), list):
        raise LabelsError("labels must be a mapping with 'topic' and a list of 'articles'")
    topic = data.get("topic")
    if not isinstance(topic, str) or not topic:
        raise LabelsError("labels need 'topic': the topic id the set is about")
    known = None if finding_ids is None else set(finding_ids)
    articles: list[LabelledArticle] = []
    seen: set[str] = set()
    for n, entry in enumerate(data["articles"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise LabelsError(f"articles[{n}] must be a mapping with a 'file'")
        name = entry["file"]
        where = f"articles[{n}] ({name})"
        extra = set(entry) - {
            "file", "findings", "topic", "kind", "note", "known_gap", "known_topic_gap",
        }  # fmt: skip
        if extra:
            raise LabelsError(f"{where}: unknown keys {sorted(extra)}")
        if name in seen:
            raise LabelsError(f"{where}: labelled twice")
        seen.add(name)
        if name not in texts:
            raise LabelsError(f"{where}: no such article file")
        findings = entry.get("findings")
        if not isinstance(findings, list) or not all(isinstance(f, str) for f in findings):
            raise LabelsError(f"{where}: 'findings' must be a list of finding ids (may be [])")
        unknown = [] if known is None else sorted(set(findings) - known)
        if unknown:
            raise LabelsError(f"{where}: unknown finding ids {unknown}")
        if not isinstance(entry.get("topic"), bool):
            raise LabelsError(f"{where}: 'topic' must be true or false")
        kind = entry.get("kind")
        if kind not in KINDS:
            raise LabelsError(f"{where}: 'kind' must be one of {sorted(KINDS)}")
        if kind == "hard-negative" and (findings or entry["topic"]):
            raise LabelsError(f"{where}: a hard negative has no findings and is off topic")
        title, _, body = texts[name].strip().partition("\n")
        articles.append(
            LabelledArticle(
                file=name,
                title=title.strip(),
                body=body.strip(),
                findings=frozenset(findings),
                on_topic=entry["topic"],
                kind=str(kind),
                note=str(entry.get("note") or ""),
                known_gap=str(entry.get("known_gap") or ""),
                known_topic_gap=str(entry.get("known_topic_gap") or ""),
            )
        )
    unlabelled = sorted(set(texts) - seen)
    if unlabelled:
        raise LabelsError(f"article files without labels: {unlabelled}")
    return LabelledSet(topic=topic, articles=tuple(articles))


def load_labelled(directory: str | Path, finding_ids: Iterable[str] | None = None) -> LabelledSet:
    """Read ``directory/labels.yaml`` and every ``*.txt`` article beside it."""
    directory = Path(directory)
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.txt"))}
    data = YAML(typ="safe").load((directory / LABELS_FILE).read_text(encoding="utf-8"))
    return parse_labels(data, texts, finding_ids)


def classify(article: LabelledArticle, rules: RuleSet, topic_id: str) -> ArticleResult:
    """Run the real matcher on one article."""
    matches = match_item(article.item(), rules)
    flagged = frozenset(m.finding_id for m in matches if not m.topic_only)
    on_topic = any(m.topic_id == topic_id for m in matches)
    return ArticleResult(article, flagged, on_topic)


def score(results: Sequence[ArticleResult], finding_ids: Sequence[str], topic_id: str) -> Report:
    """Count TP/FP/FN per finding, overall (micro-average) and for the topic."""
    per_finding: dict[str, Counts] = {}
    for fid in finding_ids:
        tp = sum(1 for r in results if fid in r.flagged and fid in r.article.findings)
        fp = sum(1 for r in results if fid in r.flagged and fid not in r.article.findings)
        fn = sum(1 for r in results if fid not in r.flagged and fid in r.article.findings)
        per_finding[fid] = Counts(tp, fp, fn)
    overall = sum(per_finding.values(), Counts())
    topic = Counts(
        tp=sum(1 for r in results if r.on_topic and r.article.on_topic),
        fp=sum(1 for r in results if r.on_topic and not r.article.on_topic),
        fn=sum(1 for r in results if not r.on_topic and r.article.on_topic),
    )
    return Report(topic_id, tuple(finding_ids), per_finding, overall, topic, tuple(results))


def evaluate(labelled: LabelledSet, rules: RuleSet) -> Report:
    """Classify every article of ``labelled`` with ``rules`` and score the result."""
    results = [classify(a, rules, labelled.topic) for a in labelled.articles]
    return score(results, [f.id for f in rules.findings], labelled.topic)


def _fmt(value: float | None) -> str:
    return "   -" if value is None else f"{value:.2f}"


def format_report(report: Report) -> str:
    """A plain-text table (one row per finding, overall, topic) and every mistake."""
    width = max([len(f) for f in report.finding_ids] + [len(report.topic_id) + 8, 16])
    header = (
        f"{'finding':<{width}}  {'TP':>3} {'FP':>3} {'FN':>3}  {'prec':>5} {'rec':>5} {'F1':>5}"
    )
    lines = [header, "-" * len(header)]

    def row(name: str, c: Counts) -> str:
        return (
            f"{name:<{width}}  {c.tp:>3} {c.fp:>3} {c.fn:>3}  "
            f"{_fmt(c.precision):>5} {_fmt(c.recall):>5} {_fmt(c.f1):>5}"
        )

    lines += [row(fid, report.per_finding[fid]) for fid in report.finding_ids]
    lines += ["-" * len(header), row("overall (micro)", report.overall)]
    lines.append(row(f"topic {report.topic_id}", report.topic))
    articles = len(report.results)
    negatives = sum(1 for r in report.results if r.article.hard_negative)
    exact = sum(1 for r in report.results if r.correct)
    lines.append(f"\n{articles} articles ({negatives} hard negatives), {exact} fully correct")
    mistakes = [r for r in report.results if not r.correct]
    if mistakes:
        lines.append("\nmistakes:")
    for r in mistakes:
        parts = []
        if r.false_positives:
            parts.append(f"FP {sorted(r.false_positives)}")
        if r.false_negatives:
            parts.append(f"FN {sorted(r.false_negatives)}")
        if r.topic_wrong:
            parts.append(f"topic {'flagged' if r.on_topic else 'missed'}")
        lines.append(f"  {r.article.file}: {'; '.join(parts)}")
        gaps = [("known gap", r.article.known_gap), ("known topic gap", r.article.known_topic_gap)]
        lines += [f"      {label}: {text}" for label, text in gaps if text]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m classifiers.quality",
        description="Precision/recall per finding of the watch rules on a labelled set.",
    )
    parser.add_argument("directory", type=Path, help="folder with labels.yaml and *.txt")
    parser.add_argument(
        "--rules", type=Path, default=Path("watch-rules.yaml"), help="the watch rules file"
    )
    args = parser.parse_args(argv)
    rules = load_rules(args.rules)
    labelled = load_labelled(args.directory, [f.id for f in rules.findings])
    sys.stdout.write(format_report(evaluate(labelled, rules)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
