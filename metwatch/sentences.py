"""Sentence boundaries: pysbd, with the lines it would leave whole recognised first.

pysbd knows "Mr.", "No. 10", quotes and abbreviations, but it costs about 10 µs
per character, and most news paragraphs are one sentence. A line with no
``.``, ``!``, ``?`` or ``…`` before its last character, which is one of the
first three or none, no whitespace at either end and none of the control
characters pysbd breaks at (carriage return, form feed and the like) is one
sentence to pysbd too, so pysbd is not asked. ``tests/metwatch/test_sentences.py``
holds that to pysbd on generated lines and on every line of the seeds and the
labelled articles; a line of any other shape goes to pysbd.

Used by the classifier (evidence sentences) and by summaries.
"""

from __future__ import annotations

import re
import threading

import pysbd

#: One sentence as pysbd sees it (see the module docstring). Characters a line
#: may hold inside: anything but terminal punctuation and pysbd's breaks.
ONE_SENTENCE = re.compile(
    r"[^.!?…\s](?:[^.!?…\r\n\v\f\x1c-\x1f\x85\u2028\u2029]*[^.!?…\s])?[.!?]?"
)

# pysbd keeps the text being split on the segmenter: one per thread.
_local = threading.local()


def sentences(line: str) -> list[str]:
    """The sentences of one line, as pysbd splits it (``clean=False``)."""
    if ONE_SENTENCE.fullmatch(line):
        return [line]
    segmenter = getattr(_local, "plain", None)
    if segmenter is None:
        segmenter = _local.plain = pysbd.Segmenter(language="en", clean=False)
    return list(segmenter.segment(line))


def sentence_spans(line: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of one line, as pysbd's ``char_span`` gives them."""
    if ONE_SENTENCE.fullmatch(line):
        return [(0, len(line))]
    segmenter = getattr(_local, "spans", None)
    if segmenter is None:
        segmenter = _local.spans = pysbd.Segmenter(language="en", clean=False, char_span=True)
    return [(s.start, s.end) for s in segmenter.segment(line)]
