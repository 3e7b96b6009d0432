"""Fingerprints of item texts, and the similarities clustering is made of. Pure.

Every flagged item gets a :class:`Fingerprint` of its text (title, summary and
body), computed once with :func:`fingerprint` and stored next to the item:

* **terms**: content words (lower-cased, URLs and image links removed, English
  stop words dropped, plurals folded by the S-stemmer of Harman 1991) with
  their counts. Two texts are compared by the cosine of their sublinear
  term-frequency vectors (``1 + ln tf``); an item is compared with a story's
  *centroid*, the sum of its members' unit vectors (single-pass centroid
  clustering, as in TDT event detection). No IDF is used: the only corpus
  at hand is the few recent stories, too small for stable weights.
* **sketch**: a bottom-k MinHash sketch (k = 128, 64-bit BLAKE2b hashes) of
  the text's 4-word shingles. It estimates the Jaccard resemblance of the two
  shingle sets (Broder 1997); exact for texts under 128 shingles. Rewritten
  coverage scores near 0, syndicated copies of one text near 1.

How these decide which story an item joins is ``bot.stories``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: Bump when tokenising, shingling or hashing changes: stored fingerprints of
#: another version must be recomputed from the item text.
FINGERPRINT_VERSION = 1
SHINGLE_WORDS = 4
SKETCH_SIZE = 128

# Markdown images (scraped captions carry them) and bare URLs say nothing
# about the event and differ per site.
_NOISE = re.compile(r"!\[[^\]]*\]\([^)]*\)|https?://\S+|www\.\S+")
_WORD = re.compile(r"[^\W_]+")
# Function words and reporting verbs ("said", "told"): frequent in every article.
_STOP_LIST = """a about above after again against all almost also am among an and any are as at be
    because been before being below between both but by can could did do does doing down
    during each either even ever every few for from further had has have having he her here
    hers herself him himself his how however i if in into is it its itself just last least
    less many may me might more most much must my myself neither no nor not now of off on
    once one only or other our ours ourselves out over own per rather said same say says she
    should since so some still such than that the their theirs them themselves then there
    these they this those though through to told too two under until up upon us very was we
    were what when where whether which while who whom whose why will with within without
    would yet you your yours yourself yourselves"""
_STOP_WORDS = frozenset(_STOP_LIST.split())


# -- fingerprints ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What clustering needs of one item's text; small enough to store per item."""

    #: (term, count) pairs, sorted by term.
    terms: tuple[tuple[str, int], ...]
    #: Bottom-k shingle hashes, ascending (all of them for short texts).
    sketch: tuple[int, ...]

    #: ``to_json``'s text when made already (by ``fingerprint``, in the worker
    #: process that computes it, so the process storing it need not encode it).
    stored: str = field(default="", compare=False, repr=False)

    def to_json(self) -> str:
        """A compact, versioned JSON form for the store."""
        return self.stored or _to_json(self.terms, self.sketch)

    @classmethod
    def from_json(cls, data: str) -> Fingerprint:
        """Parse :meth:`to_json`; ValueError for another version (recompute then)."""
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("v") != FINGERPRINT_VERSION:
            raise ValueError("fingerprint of another version; recompute it from the text")
        terms = tuple((str(t), int(n)) for t, n in raw["terms"])
        return cls(terms, tuple(int(h) for h in raw["sketch"]), data)


def words(text: str) -> list[str]:
    """Lower-cased words of ``text``, without URLs and image links."""
    return _WORD.findall(_NOISE.sub(" ", text.lower()))


def s_stem(word: str) -> str:
    """Harman's S-stemmer: fold English plurals ("offenders" -> "offender")."""
    if word.endswith("ies") and not word.endswith(("eies", "aies")) and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")) and len(word) > 3:
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss")) and len(word) > 3:
        return word[:-1]
    return word


def content_terms(text: str) -> list[str]:
    """Stemmed content words of ``text`` in order (stop words and 1-letter words dropped)."""
    return [s_stem(w) for w in words(text) if len(w) > 1 and w not in _STOP_WORDS]


def _hash64(shingle: str) -> int:
    # Not hash(): str hashing is salted per process, and sketches are stored
    # and compared across processes.
    return int.from_bytes(hashlib.blake2b(shingle.encode(), digest_size=8).digest(), "big")


def fingerprint(text: str) -> Fingerprint:
    """The fingerprint of an item's text (``Item.text``: title, summary, body)."""
    tokens = words(text)
    # A text shorter than one shingle is one shingle of all its words.
    count = max(len(tokens) - SHINGLE_WORDS + 1, 1) if tokens else 0
    shingles = {" ".join(tokens[i : i + SHINGLE_WORDS]) for i in range(count)}
    sketch = tuple(sorted({_hash64(s) for s in shingles})[:SKETCH_SIZE])
    terms = tuple(sorted(Counter(content_terms(text)).items()))
    return Fingerprint(terms, sketch, _to_json(terms, sketch))


def _to_json(terms: tuple[tuple[str, int], ...], sketch: tuple[int, ...]) -> str:
    return json.dumps(
        {"v": FINGERPRINT_VERSION, "terms": terms, "sketch": sketch},
        separators=(",", ":"),
        ensure_ascii=False,
    )


# -- similarities ----------------------------------------------------------------------


def resemblance(a: Fingerprint, b: Fingerprint) -> float:
    """Estimated Jaccard similarity of the two texts' 4-word shingle sets (0..1).

    Bottom-k estimator: of the k smallest hashes of the union, the share found
    in both sketches. Exact when both texts have fewer than k shingles.
    """
    if not a.sketch or not b.sketch:
        return 0.0
    return bottom_k_resemblance(frozenset(a.sketch), frozenset(b.sketch))


def is_syndicated_copy(a: Fingerprint, b: Fingerprint, *, threshold: float = 0.8) -> bool:
    """True when ``a`` and ``b`` are the same copy (syndicated, lightly edited)."""
    return resemblance(a, b) >= threshold


def unit_vector(terms: Iterable[tuple[str, int]]) -> dict[str, float]:
    # Sublinear tf: a word said ten times is not ten times as telling.
    vector = {t: 1.0 + math.log(n) for t, n in terms if n > 0}
    norm = math.sqrt(sum(w * w for w in vector.values()))
    return {t: w / norm for t, w in vector.items()} if norm else {}


def _cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    if len(b) < len(a):
        a, b = b, a
    dot = sum(w * b.get(t, 0.0) for t, w in a.items())
    norm = math.sqrt(sum(w * w for w in a.values()) * sum(w * w for w in b.values()))
    return dot / norm if norm else 0.0


def text_similarity(a: Fingerprint, b: Fingerprint) -> float:
    """Cosine of the two texts' sublinear term-frequency vectors (0..1)."""
    return _cosine(unit_vector(a.terms), unit_vector(b.terms))


def bottom_k_resemblance(in_a: frozenset[int], in_b: frozenset[int]) -> float:
    """``resemblance`` of two sketches already held as sets."""
    union = sorted(in_a | in_b)[:SKETCH_SIZE]
    return sum(1 for h in union if h in in_a and h in in_b) / len(union)


def syndication_groups(
    members: Sequence[tuple[str, Fingerprint]], *, threshold: float = 0.8
) -> tuple[tuple[str, ...], ...]:
    """Item ids grouped by syndicated copy, in the given order (first of a group first).

    Each item joins the first earlier group whose first item it copies, so a
    renderer can show one entry per group with every outlet's link.
    """
    groups: list[tuple[Fingerprint, list[str]]] = []
    for item_id, fp in members:
        home = next((g for g in groups if is_syndicated_copy(fp, g[0], threshold=threshold)), None)
        if home is None:
            groups.append((fp, [item_id]))
        else:
            home[1].append(item_id)
    return tuple(tuple(ids) for _, ids in groups)
