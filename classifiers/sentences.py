"""Evidence sentences: the sentence(s) of a text that contain a matched span.

Sentence boundaries come from pysbd (``metwatch.sentences``: it knows "Mr.",
"No. 10", quotes and abbreviations). Splitting is costly, so it runs only on
the paragraph that holds a match, and only for items that matched (for
evidence, and for ``require_within: sentence`` once the rest matched).
"""

from __future__ import annotations

from metwatch.models import Evidence
from metwatch.sentences import sentence_spans


class SentenceFinder:
    """Finds the sentences around character spans of one text, caching paragraphs."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._paragraphs: dict[int, list[tuple[int, int]]] = {}

    def evidence(self, start: int, end: int) -> Evidence:
        """The sentence(s) covering ``text[start:end]``, trimmed, with offsets."""
        first = self._sentence_at(start)
        last = self._sentence_at(max(start, end - 1))
        s, e = first[0], max(first[1], last[1])
        raw = self.text[s:e]
        lead = len(raw) - len(raw.lstrip())
        sentence = raw.strip()
        return Evidence(
            sentence=" ".join(sentence.split()), start=s + lead, end=s + lead + len(sentence)
        )

    def _sentence_at(self, offset: int) -> tuple[int, int]:
        p_start = self.text.rfind("\n", 0, offset) + 1
        p_end = self.text.find("\n", offset)
        if p_end == -1:
            p_end = len(self.text)
        spans = self._paragraphs.get(p_start)
        if spans is None:
            paragraph = self.text[p_start:p_end]
            spans = [(p_start + s, p_start + e) for s, e in sentence_spans(paragraph)]
            self._paragraphs[p_start] = spans or [(p_start, p_end)]
            spans = self._paragraphs[p_start]
        for s, e in spans:
            if s <= offset < e:
                return s, e
        return p_start, p_end
