"""Extractive summaries: real sentences of the article, in order, without site furniture."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.summary import MAX_WORDS, MIN_WORDS, summarise

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
SEED_FILES = sorted(SEEDS.glob("*.txt"))


def _seed(prefix: str) -> str:
    return next(p for p in SEED_FILES if p.name.startswith(prefix)).read_text(encoding="utf-8")


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.name[:3])
def test_a_seed_summary_is_three_sentences_of_the_text_in_document_order(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    summary = summarise(text)
    assert len(summary) == 3
    positions = [text.index(sentence) for sentence in summary]  # each is verbatim
    assert positions == sorted(positions)
    for sentence in summary:
        assert sentence == sentence.strip()
        assert MIN_WORDS <= len(sentence.split()) <= MAX_WORDS
        assert sentence.rstrip("”’\"')")[-1] in ".!?…"


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.name[:3])
def test_a_summary_is_deterministic(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert summarise(text) == summarise(text)


def test_seed_002_summary_skips_site_furniture_and_the_repeated_lead() -> None:
    summary = summarise(_seed("002"))
    joined = " ".join(summary)
    for furniture in ("Read more", "You May Also Like", "More From Author", "With to deploy"):
        assert furniture not in joined
    # The lead is printed twice ("Metropolitan Police" / "Met Police"): only one may be chosen.
    assert sum("is not managing the risks" in s for s in summary) == 1


def test_seed_003_summary_skips_the_channel_plug_and_related_links() -> None:
    joined = " ".join(summarise(_seed("003")))
    assert "Google News" not in joined
    assert "Leicester Square" not in joined
    assert "_16x" not in joined


def test_seed_004_summary_skips_image_captions_and_links() -> None:
    summary = summarise(_seed("004"))
    assert not any("![" in s or "http" in s for s in summary)
    # Captions repeat body sentences verbatim; the summary holds no sentence twice.
    assert len(set(summary)) == len(summary)


def test_boilerplate_short_and_long_sentences_are_never_chosen() -> None:
    long_sentence = "The inspectorate said " + "and then it said more " * 15 + "at the end."
    text = "\n".join(
        [
            "Police inspectors criticised the force over its handling of sex offenders today.",
            "Read more: Inspectors criticised the force over sex offenders again this week.",
            "Follow us on social media for more news about police inspections today.",
            "It was bad.",
            long_sentence,
            "The report said officers visited registered sex offenders far too rarely.",
        ]
    )
    summary = summarise(text)
    assert summary == (
        "Police inspectors criticised the force over its handling of sex offenders today.",
        "The report said officers visited registered sex offenders far too rarely.",
    )


def test_n_limits_the_number_of_sentences() -> None:
    assert len(summarise(_seed("001"), n=2)) == 2
    assert summarise(_seed("001"), n=0) == ()


def test_text_without_sentences_has_no_summary() -> None:
    assert summarise("") == ()
    assert summarise("Headline without a full stop\n\nRead more\n\nYou May Also Like") == ()
