"""Lines recognised as one sentence without pysbd are one sentence to pysbd too."""

from __future__ import annotations

from pathlib import Path

import pysbd
from hypothesis import given, settings
from hypothesis import strategies as st

from metwatch.sentences import ONE_SENTENCE, sentence_spans, sentences
from tests.conftest import ROOT

PLAIN = pysbd.Segmenter(language="en", clean=False)
SPANS = pysbd.Segmenter(language="en", clean=False, char_span=True)

# Pieces news text is made of, and those pysbd treats specially: abbreviations,
# initials, numbers, quotes, brackets, odd spaces and the control characters it
# breaks at.
PIECES = [
    *"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    *" ,;:-—–'\"“”‘’()[]%£$&/\t@#*+=",
    "Mr", "Dr", "No", "St", "U", "S", "e", "g", " i ", "etc", "Jan", "a.m", "p.m",
    "\u00a0", "é", "ß", "🙂", "\u200b", "\r", "\v", "\f", "\x1c", "\x85", "\u2028",
]  # fmt: skip
ENDINGS = ["", ".", "!", "?", "...", "…", "?!", ".”", '?"', ".)", "!’", " .", "\t!"]
LINES = st.builds(
    lambda body, end: body + end,
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=60).map("".join),
    st.sampled_from(ENDINGS),
)


@settings(derandomize=True, max_examples=3000, deadline=None)
@given(LINES)
def test_a_line_of_one_sentence_shape_is_one_sentence_to_pysbd(line: str) -> None:
    if ONE_SENTENCE.fullmatch(line):
        assert PLAIN.segment(line) == [line]
        assert [(s.start, s.end) for s in SPANS.segment(line)] == [(0, len(line))]


def _real_lines() -> list[str]:
    texts = [
        p.read_text(encoding="utf-8")
        for folder in (ROOT / "seeds", ROOT / "tests" / "data" / "labelled")
        for p in sorted(Path(folder).glob("*.txt"))
    ]
    return [line for text in texts for line in text.splitlines() if line.strip()]


def test_real_lines_split_exactly_as_pysbd_splits_them() -> None:
    lines = _real_lines()
    assert sum(1 for line in lines if ONE_SENTENCE.fullmatch(line)) > len(lines) / 2
    for line in lines:
        assert sentences(line) == PLAIN.segment(line)
        assert sentence_spans(line) == [(s.start, s.end) for s in SPANS.segment(line)]


def test_lines_of_other_shapes_still_go_to_pysbd() -> None:
    line = "The Met said so. Inspectors did not agree."
    assert not ONE_SENTENCE.fullmatch(line)
    assert sentences(line) == ["The Met said so. ", "Inspectors did not agree."]
