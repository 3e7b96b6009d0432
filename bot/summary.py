"""Extractive summary of an article: its two or three most informative sentences. Pure.

Method (centroid-based extractive summarisation, after MEAD, Radev et al. 2004):

1. Candidates. The text is split into lines (paragraphs, captions, link
   lines) and each line into sentences by pysbd (``metwatch.sentences``). A
   sentence is a candidate only when it ends like a sentence (``.``, ``!``
   or ``?``, optionally inside closing quotes or brackets: headlines, image
   captions, "Read more" link titles and bullet points do not), has 8 to 60
   words, holds no URL, is not boilerplate ("Read more", "You May Also
   Like", "follow us", newsletters...), and was not seen before in the text
   (captions repeated verbatim).
2. Scores. Each candidate is a vector of its content words (``bot.fingerprints``
   tokeniser: stop words dropped, plurals folded) weighted by term frequency
   times inverse sentence frequency, ``1 + ln(N / sf)``. The document
   centroid is the sum of those vectors; a sentence scores its cosine with
   the centroid (how much of what the article keeps saying it says) plus a
   position prior of up to ``POSITION_WEIGHT`` that falls linearly from the
   first candidate to the last (news puts the point first).
3. Selection. Candidates are taken by descending score (ties: earlier
   first), skipping any whose cosine with an already chosen sentence reaches
   ``MAX_OVERLAP`` (the same sentence told twice), until ``n`` are chosen;
   they are returned in document order, each exactly as it appears in the
   text (stripped of surrounding whitespace).

The result is deterministic. This module does NOT paraphrase, translate,
fetch articles, strip HTML (it expects ``Item.text``-style plain text) or
decide which text deserves a summary.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from bot.fingerprints import content_terms
from metwatch.sentences import sentences

MIN_WORDS = 8
MAX_WORDS = 60
POSITION_WEIGHT = 0.15
MAX_OVERLAP = 0.5

# A sentence ends in . ! ? perhaps followed by closing quotes or brackets.
_SENTENCE_END = re.compile(r"""[.!?…][\s"'”’)\]]*$""")
_URL = re.compile(r"https?://|www\.|\]\(")
# Site furniture that survives text extraction; matched on a whole line or
# sentence start, case-insensitively.
_BOILERPLATE = re.compile(
    r"""^\W*(read\ more|you\ may\ also\ like|more\ from|related|recommended|advertisement
    |leave\ a\ (reply|comment)|sign\ up|subscribe|share\ this|click\ here|follow\ (us|our)
    |for\ the\ latest\ news|image\ (source|caption)|copyright|all\ rights\ reserved)""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Sentence:
    text: str
    terms: Counter[str]


def summarise(text: str, n: int = 3) -> tuple[str, ...]:
    """Up to ``n`` sentences of ``text`` that best summarise it, in document order."""
    if n <= 0:
        return ()
    sentences = list(_candidates(text))
    if not sentences:
        return ()
    vectors = _weighted([s.terms for s in sentences])
    centroid: Counter[str] = Counter()
    for vector in vectors:
        centroid.update(vector)
    last = max(len(sentences) - 1, 1)
    scores = [
        _cosine(v, centroid) + POSITION_WEIGHT * (1 - i / last) for i, v in enumerate(vectors)
    ]
    chosen = _select(scores, vectors, n)
    return tuple(sentences[i].text for i in sorted(chosen))


def _candidates(text: str) -> Iterator[_Sentence]:
    """Sentences that may enter a summary, in document order (see step 1)."""
    seen: set[str] = set()
    for line in text.splitlines():
        if not line.strip() or _BOILERPLATE.match(line):
            continue
        for raw in sentences(line):
            sentence = raw.strip()
            key = " ".join(sentence.casefold().split())
            if key in seen or not _acceptable(sentence):
                continue
            seen.add(key)
            terms = Counter(content_terms(sentence))
            if terms:
                yield _Sentence(sentence, terms)


def _acceptable(sentence: str) -> bool:
    words = len(sentence.split())
    return (
        MIN_WORDS <= words <= MAX_WORDS
        and _SENTENCE_END.search(sentence) is not None
        and _URL.search(sentence) is None
        and _BOILERPLATE.match(sentence) is None
    )


def _weighted(bags: Sequence[Counter[str]]) -> list[dict[str, float]]:
    """tf x isf vectors: words found in few sentences weigh more."""
    frequency = Counter(term for bag in bags for term in bag)
    total = len(bags)
    return [
        {t: c * (1.0 + math.log(total / frequency[t])) for t, c in bag.items()} for bag in bags
    ]


def _cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    dot = sum(w * b.get(t, 0.0) for t, w in a.items())
    norm = math.sqrt(sum(w * w for w in a.values()) * sum(w * w for w in b.values()))
    return dot / norm if norm else 0.0


def _select(scores: Sequence[float], vectors: Sequence[Mapping[str, float]], n: int) -> list[int]:
    """Greedy: best first, skipping near-repeats of what is already chosen."""
    chosen: list[int] = []
    for i in sorted(range(len(scores)), key=lambda i: (-scores[i], i)):
        if all(_cosine(vectors[i], vectors[j]) < MAX_OVERLAP for j in chosen):
            chosen.append(i)
            if len(chosen) == n:
                break
    return chosen
