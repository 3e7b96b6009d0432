"""Text from feeds made safe to print on a terminal.

A feed's title can carry escape sequences (recolour the screen, retitle the
window, hide what follows), a carriage return or backspaces (overwrite what was
printed) or Unicode direction overrides (show a link backwards). The CLI, the
console subscriber and text logs print such characters as visible escapes;
newlines and tabs, which metwatch's own output uses, are kept.
"""

from __future__ import annotations

import json

_KEPT = {"\n", "\t"}
_CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))]
#: Embeddings, overrides and isolates (U+202A-202E, U+2066-2069), the invisible
#: direction marks (LRM, RLM, ALM) and invisible characters that hide what a word
#: really is (zero-width space, word joiner, BOM). The joiners emoji and scripts
#: need (U+200C, U+200D) are kept.
_DIRECTIONS = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A),
                                0x200E, 0x200F, 0x061C, 0x200B, 0x2060, 0xFEFF)]  # fmt: skip
_ESCAPES = str.maketrans(
    {c: f"\\x{ord(c):02x}" for c in _CONTROLS if c not in _KEPT}
    | {c: f"\\u{ord(c):04x}" for c in _DIRECTIONS}
)
#: JSON's own escapes: inside a JSON string they decode to the same characters.
_JSON_ESCAPES = str.maketrans({c: f"\\u{ord(c):04x}" for c in (*_CONTROLS, *_DIRECTIONS)
                               if c not in _KEPT})  # fmt: skip


def printable(text: str) -> str:
    r"""``text`` with control and direction characters as escapes: "\x1b[2J" for ESC[2J."""
    return text.translate(_ESCAPES)


def printable_json(value: object) -> str:
    """``value`` as indented JSON that is safe to print: the characters
    ``printable`` escapes are written as JSON ``\\u`` escapes, so the document
    still parses to the same values."""
    return json.dumps(value, indent=2, ensure_ascii=False).translate(_JSON_ESCAPES)
