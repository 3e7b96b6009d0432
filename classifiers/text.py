"""Text normalisation and the per-item token index that matching runs on.

Normalisation happens once per item: curly quotes, dashes and odd spaces are
folded, case is folded, and the text is split into word tokens (letters and
digits; hyphens and apostrophes separate words, so "pre-announced" and
"pre announced" read the same). Every character keeps its position, so a
match maps straight back to the original text for evidence quotes.

Does not decide what matches; see ``classifiers.match``.
"""

from __future__ import annotations

import re
import unicodedata

# One character in, one character out: offsets into the folded text are
# offsets into the original text.
_FOLD = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
        "\u00ab": '"', "\u00bb": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
        "\u2015": "-", "\u2212": "-", "\u00ad": "-",
        "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2007": " ", "\u200b": " ",
    }
)  # fmt: skip

_WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Fold quotes, dashes, spaces and case, keeping the length unchanged."""
    folded = text.translate(_FOLD).lower()
    if len(folded) == len(text):
        return folded
    # A few characters lower-case to two (e.g. "İ"); keep one to keep offsets.
    return "".join(c.translate(_FOLD).lower()[:1] for c in text)


def normalise_unicode(text: str) -> str:
    """Compose characters (NFC) so that offsets are stable before anything else."""
    return unicodedata.normalize("NFC", text)


def words(text: str) -> list[str]:
    """The word tokens of a phrase, as matching sees them."""
    return _WORD.findall(fold(text))


class TextIndex:
    """The tokens of one item's text, built once per item.

    Tokens and their positions come from one C-level ``findall``; character
    offsets are only needed for the spans that matched, so they are computed
    on first use.
    """

    def __init__(self, text: str, folded: str, fields: dict[str, tuple[int, int]]) -> None:
        self.text = text
        self.folded = folded
        #: Field name -> (start, end) character range within ``text``.
        self.fields = fields
        self.tokens: list[str] = _WORD.findall(folded)
        positions: dict[str, list[int]] = {}
        for n, word in enumerate(self.tokens):
            positions.setdefault(word, []).append(n)
        self.positions = positions
        #: The distinct words, as a set: set-against-set checks cost the smaller side.
        self.vocabulary = frozenset(self.positions)
        self._prefix_cache: dict[str, list[int]] = {}
        self._offsets: tuple[list[int], list[int]] | None = None

    @property
    def starts(self) -> list[int]:
        return self._char_offsets()[0]

    @property
    def ends(self) -> list[int]:
        return self._char_offsets()[1]

    def _char_offsets(self) -> tuple[list[int], list[int]]:
        if self._offsets is None:
            spans = [m.span() for m in _WORD.finditer(self.folded)]
            self._offsets = [a for a, _ in spans], [b for _, b in spans]
        return self._offsets

    def has_token(self, token: str) -> bool:
        return bool(self.find_token(token))

    def find_token(self, token: str) -> list[int]:
        """Token positions of a word, or of any word starting with ``stem*``."""
        if not token.endswith("*"):
            return self.positions.get(token, [])
        cached = self._prefix_cache.get(token)
        if cached is None:
            stem = token[:-1]
            hits = [p for w, ps in self.positions.items() if w.startswith(stem) for p in ps]
            cached = sorted(hits)
            self._prefix_cache[token] = cached
        return cached

    def token_matches(self, position: int, token: str) -> bool:
        word = self.tokens[position]
        if token.endswith("*"):
            return word.startswith(token[:-1])
        return word == token

    def field_at(self, char_offset: int) -> str:
        for name, (start, end) in self.fields.items():
            if start <= char_offset < end:
                return name
        return "body"


def index_text(
    text: str, fields: dict[str, tuple[int, int]] | None = None, folded: str | None = None
) -> TextIndex:
    """Tokenise ``text`` once; ``fields`` tells which ranges are title/summary/body."""
    return TextIndex(
        text, fold(text) if folded is None else folded, fields or {"body": (0, len(text))}
    )


def field_ranges(title: str, summary: str, body: str) -> dict[str, tuple[int, int]]:
    """Character ranges of each field in ``models.assemble_text`` output."""
    ranges: dict[str, tuple[int, int]] = {}
    offset = 0
    parts = [("title", title)]
    if summary and summary not in body:
        parts.append(("summary", summary))
    if body:
        parts.append(("body", body))
    for name, value in parts:
        if not value:
            continue
        ranges[name] = (offset, offset + len(value))
        offset += len(value) + 2
    return ranges
