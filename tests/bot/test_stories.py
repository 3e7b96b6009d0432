"""Clustering: the seeds are one story; other events, forces and inspections are not."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from bot.fingerprints import (
    FINGERPRINT_VERSION,
    Fingerprint,
    content_terms,
    fingerprint,
    is_syndicated_copy,
    resemblance,
    syndication_groups,
    text_similarity,
    words,
)
from bot.stories import (
    DEFAULT_POLICY,
    Assignment,
    ClusterPolicy,
    ItemFeatures,
    StoryCandidate,
    assign_story,
    features_of,
)
from metwatch.models import Classified, Evidence, Item, Match

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
MET = frozenset({"met-inspection"})
REPORT_DAY = datetime(2024, 8, 15, 9, 0, tzinfo=UTC)

# -- articles that are NOT the August 2024 report --------------------------------------

GAMBLING = """Met officers face misconduct probe over election betting

Seven Metropolitan Police officers are under investigation over bets allegedly placed on the \
timing of the general election, Scotland Yard said on Thursday.

The officers, six of whom worked in the Royalty and Specialist Protection command, have been \
referred to the Independent Office for Police Conduct after the Gambling Commission shared \
information with the force.

One officer was arrested in June and has been suspended. The others remain on restricted \
duties while the inquiry continues.

Commander Simon Messinger said: "We expect the highest standards of our officers and will not \
hesitate to act where those standards are not met."

The Gambling Commission said it was investigating a small number of bets placed in the days \
before the election date was announced.

The disclosure comes a day after the police inspectorate said the Met was failing in several \
areas of its work, adding to pressure on Commissioner Sir Mark Rowley.
"""

GMP = """Greater Manchester Police 'inadequate' at protecting vulnerable people, inspectors find

Greater Manchester Police is failing to protect vulnerable people and is inadequate at \
managing sex offenders, a report by the police inspectorate has found.

His Majesty's Inspectorate of Constabulary and Fire & Rescue Services graded GMP across nine \
areas of policing as part of its PEEL 2023-25 inspection programme.

Inspectors found the force was inadequate in two areas, protecting vulnerable people and \
managing offenders, and required improvement in four more.

The report said officers in Bolton, Wigan and Oldham often did not complete risk assessments \
for domestic abuse victims, and that a backlog of more than 400 visits to registered sex \
offenders had built up in Salford.

Chief Constable Stephen Watson said the force accepted the findings and had already put more \
detectives into its public protection units.

The force was taken out of special measures in 2022 after a previous inspection found it had \
failed to record tens of thousands of crimes.
"""

NEW_INSPECTION = """Met still announcing sex offender visits in advance, new inspection finds

A new inspection of the Metropolitan Police's child protection work has found the force is \
still failing to keep children safe from online abusers.

His Majesty's Inspectorate of Constabulary and Fire & Rescue Services published its findings \
on Monday after returning to the Met in July for an unannounced inspection of its child \
protection teams.

Inspectors said referrals from schools and social workers were left for weeks before being \
assessed, and that in 23 of 60 cases examined the risk to the child was not properly understood.

The report found that too many visits to registered sex offenders were still announced in \
advance, a problem the inspectorate raised in its PEEL report last month. One high-risk \
offender had again gone unvisited for years, it said.

Deputy Assistant Commissioner Stephen Clayman said the force had recruited 100 extra officers \
into public protection since the spring.
"""

# The same report, another angle, the next day: it belongs with the seeds.
REACTION = """Sadiq Khan 'confident' Rowley can turn the Met around after damning inspection

Sadiq Khan has said he is confident Sir Mark Rowley can turn the Metropolitan Police around \
after the police inspectorate rated the force inadequate at investigating crime and managing \
offenders.

The Mayor of London said the report from His Majesty's Inspectorate of Constabulary made for \
difficult reading, particularly the finding that a high-risk registered sex offender had not \
been visited since 2017.

Inspectors also found that too many visits to registered sex offenders were announced in \
advance, giving offenders the chance to hide phones and laptops.

Conservative members of the London Assembly called for an urgent hearing on the Met's \
management of sex offenders.
"""


# -- helpers ---------------------------------------------------------------------------


def _seeds() -> list[ItemFeatures]:
    meta = YAML(typ="safe").load((SEEDS / "seeds.yaml").read_text(encoding="utf-8"))
    return [
        ItemFeatures(
            item_id=m["file"][:3],
            fingerprint=fingerprint((SEEDS / m["file"]).read_text(encoding="utf-8")),
            finding_ids=frozenset(m["findings"]),
            topic_ids=MET,
            published=REPORT_DAY + timedelta(hours=n),
        )
        for n, m in enumerate(meta)
    ]


SEED_ITEMS = _seeds()


def _item(
    item_id: str,
    text: str,
    findings: Iterable[str] = (),
    *,
    topics: frozenset[str] = MET,
    published: datetime = REPORT_DAY,
) -> ItemFeatures:
    return ItemFeatures(item_id, fingerprint(text), frozenset(findings), topics, published)


def _cluster(items: Sequence[ItemFeatures]) -> list[list[str]]:
    """What the store would hold after the items arrive in this order: ids per story."""
    stories: list[list[ItemFeatures]] = []
    for item in items:
        now = max(item.published or REPORT_DAY, REPORT_DAY) + timedelta(hours=1)
        candidates = [
            StoryCandidate(n, m[0].published or now, tuple(m)) for n, m in enumerate(stories)
        ]
        chosen = assign_story(item, candidates, now=now).story_id
        if chosen is None:
            stories.append([item])
        else:
            stories[chosen].append(item)
    return [[m.item_id for m in story] for story in stories]


def _seed_story(story_id: int = 1) -> StoryCandidate:
    return StoryCandidate(story_id, REPORT_DAY, tuple(SEED_ITEMS))


def _assign(
    item: ItemFeatures, *candidates: StoryCandidate, policy: ClusterPolicy = DEFAULT_POLICY
) -> Assignment:
    now = (item.published or REPORT_DAY) + timedelta(hours=1)
    return assign_story(item, candidates, now=now, policy=policy)


# -- the seeds -------------------------------------------------------------------------


def test_the_five_seeds_form_exactly_one_story() -> None:
    assert _cluster(SEED_ITEMS) == [["000", "001", "002", "003", "004"]]


def test_the_seeds_form_one_story_in_every_order() -> None:
    for order in itertools.permutations(SEED_ITEMS):
        assert len(_cluster(order)) == 1, [i.item_id for i in order]


def test_each_seed_joins_the_others_by_shared_findings_not_by_copying() -> None:
    for seed in SEED_ITEMS:
        others = tuple(s for s in SEED_ITEMS if s is not seed)
        decision = _assign(seed, StoryCandidate(1, REPORT_DAY, others))
        assert (decision.story_id, decision.reason) == (1, "shared-findings")
        assert decision.copy_of is None


def test_the_seeds_are_rewrites_not_copies_of_each_other() -> None:
    for a, b in itertools.combinations(SEED_ITEMS, 2):
        assert resemblance(a.fingerprint, b.fingerprint) < 0.1
        assert 0.3 <= text_similarity(a.fingerprint, b.fingerprint) < 0.7


def test_coverage_of_the_same_report_the_next_day_joins() -> None:
    reaction = _item(
        "reaction",
        REACTION,
        ["graded-inadequate", "announced-visits", "unvisited-since-2017"],
        published=REPORT_DAY + timedelta(days=1),
    )
    assert _assign(reaction, _seed_story()).story_id == 1


# -- other events ----------------------------------------------------------------------


def test_an_unrelated_met_story_on_the_same_day_is_a_new_story() -> None:
    # The gambling story mentions the inspectorate, so it is on topic but states no finding.
    assert _cluster([*SEED_ITEMS, _item("gambling", GAMBLING)])[-1] == ["gambling"]


def test_an_unrelated_met_story_stating_one_finding_is_still_a_new_story() -> None:
    gambling = _item("gambling", GAMBLING, ["graded-inadequate"])
    decision = _assign(gambling, _seed_story())
    assert decision.story_id is None
    assert decision.reason == "new"


def test_another_forces_inspection_never_joins_a_met_story() -> None:
    gmp = _item("gmp", GMP, ["graded-inadequate"], topics=frozenset({"gmp-inspection"}))
    assert _assign(gmp, _seed_story()).story_id is None


def test_another_forces_inspection_stays_apart_even_when_rules_blur_the_topic() -> None:
    # Worst case: the GMP article is put on the Met topic with one Met finding. Its text is as
    # close to the seeds as they are to each other, so only the findings keep it apart.
    gmp = _item("gmp", GMP, ["graded-inadequate"])
    assert _cluster([*SEED_ITEMS, gmp])[-1] == ["gmp"]


def test_a_new_inspection_a_month_later_is_a_new_story() -> None:
    later = _item(
        "new-inspection",
        NEW_INSPECTION,
        ["announced-visits", "unvisited-since-2017"],
        published=REPORT_DAY + timedelta(days=32),
    )
    assert _assign(later, _seed_story()).story_id is None
    # The time window is what separates it: same findings, similar words.
    assert _assign(later, _seed_story(), policy=ClusterPolicy(window_days=60)).story_id == 1


def test_the_window_is_anchored_at_the_first_coverage() -> None:
    first = _item("first", REACTION, ["graded-inadequate", "announced-visits"])
    second = _item(
        "second",
        REACTION + "\nUpdated.",
        ["graded-inadequate", "announced-visits"],
        published=REPORT_DAY + timedelta(days=2),
    )
    story = StoryCandidate(1, REPORT_DAY, (first, second))
    for days, joins in ((2.9, True), (3.5, False)):
        item = _item("x", REACTION, ["graded-inadequate"], published=REPORT_DAY + timedelta(days))
        assert (_assign(item, story).story_id == 1) is joins, days


def test_a_future_publication_date_counts_as_now() -> None:
    item = _item("x", REACTION, ["graded-inadequate", "announced-visits"])
    story = StoryCandidate(1, REPORT_DAY, (item,))
    future = ItemFeatures("y", item.fingerprint, item.finding_ids, MET, REPORT_DAY.replace(2030))
    decision = assign_story(future, [story], now=REPORT_DAY + timedelta(hours=2))
    assert decision.story_id == 1


# -- syndicated copies -----------------------------------------------------------------


def _syndicated_002() -> str:
    text = (SEEDS / "002_e1ad28f5b1d59acf.txt").read_text(encoding="utf-8")
    return (
        text.replace(
            "With Police ‘inadequate’ at managing risk of sex offenders",
            "Met Police ‘inadequate’ at managing sex offender risk, watchdog finds",
        )
        .replace("With to deploy 80 detectives on Post Office scandal", "Knife crime falls again")
        .replace("You May Also Like\n\nMore From Author", "Sign up to our newsletter")
    )


def test_a_syndicated_copy_is_detected_and_joins_as_a_copy() -> None:
    copy = _item("copy", _syndicated_002(), ["graded-inadequate", "iic-nfa-rate"])
    seed_002 = next(s for s in SEED_ITEMS if s.item_id == "002")
    assert is_syndicated_copy(copy.fingerprint, seed_002.fingerprint)
    decision = _assign(copy, _seed_story())
    assert (decision.story_id, decision.reason, decision.copy_of) == (1, "syndicated", "002")


def test_a_syndicated_copy_joins_even_without_findings() -> None:
    copy = _item("copy", _syndicated_002())
    assert _assign(copy, _seed_story()).reason == "syndicated"


def test_syndication_groups_collapse_copies_in_order() -> None:
    fp = {s.item_id: s.fingerprint for s in SEED_ITEMS}
    members = [("002", fp["002"]), ("000", fp["000"]), ("copy", fingerprint(_syndicated_002()))]
    assert syndication_groups(members) == (("002", "copy"), ("000",))


def test_a_syndicated_story_is_preferred_over_a_merely_similar_one() -> None:
    copy = _item("copy", _syndicated_002(), ["graded-inadequate", "unvisited-since-2017"])
    seed_002 = next(s for s in SEED_ITEMS if s.item_id == "002")
    others = StoryCandidate(1, REPORT_DAY, tuple(s for s in SEED_ITEMS if s is not seed_002))
    alone = StoryCandidate(2, REPORT_DAY, (seed_002,))
    assert _assign(copy, others, alone).story_id == 2


# -- fingerprints and the pieces -------------------------------------------------------


def test_fingerprint_is_deterministic_and_round_trips_through_json() -> None:
    text = (SEEDS / "000_a29e9b15b3bba61a.txt").read_text(encoding="utf-8")
    fp = fingerprint(text)
    assert fp == fingerprint(text)
    assert Fingerprint.from_json(fp.to_json()) == fp
    assert len(fp.sketch) == 128
    assert list(fp.sketch) == sorted(fp.sketch)


def test_a_fingerprint_of_another_version_is_refused() -> None:
    stale = fingerprint("a b c d e").to_json().replace(f'"v":{FINGERPRINT_VERSION}', '"v":0')
    with pytest.raises(ValueError, match="recompute"):
        Fingerprint.from_json(stale)


def test_resemblance_is_exact_jaccard_for_short_texts() -> None:
    a = fingerprint("one two three four five six")  # shingles: 1234 2345 3456
    b = fingerprint("one two three four five seven")  # 1234 2345 345seven
    assert resemblance(a, b) == pytest.approx(2 / 4)
    assert resemblance(fingerprint(""), fingerprint("")) == 0.0


def test_tokens_ignore_urls_images_stop_words_and_plurals() -> None:
    text = "The offenders’ visits ![caption](https://x.example/i.jpg) see https://t.co/x."
    assert words(text) == ["the", "offenders", "visits", "see"]
    assert content_terms(text) == ["offender", "visit", "see"]


def test_features_of_a_classified_item_keep_topic_only_matches_out_of_findings() -> None:
    item = Item("id1", "src", "Outlet", None, "Title", "", "Body text.", REPORT_DAY, "h")
    evidence = (Evidence("Body text.", 7, 17),)
    matches = (
        Match("announced-visits", "met-inspection", "t", 1.0, evidence),
        Match("met-inspection", "met-inspection", "t", 1.0, evidence, topic_only=True),
    )
    features = features_of(Classified(item, matches))
    assert features.finding_ids == {"announced-visits"}
    assert features.topic_ids == MET
    assert features.fingerprint == fingerprint(item.text)
    assert features.published == REPORT_DAY


@pytest.mark.parametrize(
    "bad",
    [
        {"window_days": 0},
        {"min_shared_findings": 0},
        {"min_similarity": 1.5},
        {"syndication_jaccard": -0.1},
    ],
)
def test_policy_refuses_impossible_thresholds(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ClusterPolicy(**bad)  # type: ignore[arg-type]


def test_an_empty_story_is_never_joined() -> None:
    assert _assign(SEED_ITEMS[0], StoryCandidate(1, REPORT_DAY, ())).story_id is None
