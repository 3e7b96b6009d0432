"""Undo a response's content coding without ever producing more than a cap.

httpx inflates each network chunk in full before the caller can count it, so a
64 KB chunk of a gzip bomb becomes 64 MB at once, and stacked codings
(``gzip, gzip``) multiply that ratio again. `BoundedDecoder` instead asks zlib
for at most the bytes still allowed, so memory stays near the cap whatever the
compression ratio.

Supported: identity, gzip (``x-gzip``), deflate (zlib-wrapped or raw). Refused:
more than one non-identity coding, and any other coding. Does not fetch, and
does not decide what the cap is (``watchers.fetch``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Protocol

#: The codings to ask for: those `BoundedDecoder` undoes (x-gzip is an alias).
ACCEPT_ENCODING = "gzip, deflate"
#: zlib ``wbits`` for a gzip member (RFC 1952): 16 + the largest window.
_GZIP_WBITS = 16 + zlib.MAX_WBITS
#: RFC 9110 8.4.1.2 says "deflate" is zlib-wrapped (RFC 1950), but some servers
#: send raw deflate (RFC 1951), as browsers and httpx also tolerate.
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_DEFLATE_WBITS = -zlib.MAX_WBITS
_GZIP_NAMES = frozenset({"gzip", "x-gzip"})


class UnsupportedCoding(Exception):
    """A Content-Encoding this module refuses to undo; the message says which."""


class CorruptContent(Exception):
    """The body is not valid data for its content coding."""


class DecodedTooLarge(Exception):
    """The decoded body would be larger than the cap."""


class _Inflater(Protocol):
    def inflate(self, data: bytes, max_length: int) -> bytes: ...


class BoundedDecoder:
    """Decode one response body, chunk by chunk, to at most ``max_bytes`` bytes.

    Raises ``UnsupportedCoding`` at construction for a coding it refuses.
    """

    def __init__(self, codings: Iterable[str], max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.decoded_bytes = 0
        self._inflater = _inflater_for(_content_coding(codings))

    def decode(self, chunk: bytes) -> bytes:
        """The decoded bytes of the next raw ``chunk``.

        Raises:
            DecodedTooLarge: the body decoded so far passes ``max_bytes``.
            CorruptContent: the data is not valid for its coding.
        """
        # One byte over the cap is enough to know it is too large.
        allowed = self.max_bytes + 1 - self.decoded_bytes
        if allowed <= 0:  # called again after the cap: zlib takes 0 as "no limit"
            raise DecodedTooLarge
        if self._inflater is None:
            decoded = chunk[:allowed]
        else:
            decoded = self._inflater.inflate(chunk, allowed)
        self.decoded_bytes += len(decoded)
        if self.decoded_bytes > self.max_bytes:
            raise DecodedTooLarge
        return decoded


def _content_coding(codings: Iterable[str]) -> str:
    """The one coding to undo ("identity" if none), from Content-Encoding values."""
    named = [c.strip().lower() for c in codings]
    applied = [c for c in named if c and c != "identity"]
    if len(applied) > 1:
        # Each layer multiplies the compression ratio; no real feed needs two.
        raise UnsupportedCoding(f"more than one content coding ({', '.join(applied)}): refused")
    coding = applied[0] if applied else "identity"
    if coding not in _GZIP_NAMES | {"deflate", "identity"}:
        raise UnsupportedCoding(f"unsupported content coding: {coding}")
    return coding


def _inflater_for(coding: str) -> _Inflater | None:
    if coding in _GZIP_NAMES:
        return _ZlibInflater(_GZIP_WBITS)
    if coding == "deflate":
        return _DeflateInflater()
    return None


class _ZlibInflater:
    """One zlib stream, inflated a bounded amount at a time."""

    def __init__(self, wbits: int) -> None:
        self._decompressor = zlib.decompressobj(wbits)

    def inflate(self, data: bytes, max_length: int) -> bytes:
        """At most ``max_length`` bytes; input left over is kept for the next call."""
        # Data zlib could not take because the last call hit its limit comes first.
        data = self._decompressor.unconsumed_tail + data
        if self._decompressor.eof:
            return b""  # bytes after the end of the stream are ignored, as httpx does
        try:
            return self._decompressor.decompress(data, max_length)
        except zlib.error as e:
            raise CorruptContent(str(e)) from e


class _DeflateInflater:
    """The "deflate" coding: zlib-wrapped or raw, told apart by the RFC 1950 header."""

    def __init__(self) -> None:
        self._head = b""
        self._inflater: _ZlibInflater | None = None

    def inflate(self, data: bytes, max_length: int) -> bytes:
        if self._inflater is None:
            self._head += data
            if len(self._head) < 2:
                return b""
            data, self._head = self._head, b""
            wbits = _ZLIB_WBITS if _has_zlib_header(data) else _RAW_DEFLATE_WBITS
            self._inflater = _ZlibInflater(wbits)
        return self._inflater.inflate(data, max_length)


def _has_zlib_header(data: bytes) -> bool:
    """RFC 1950 2.2: method 8 (deflate), and CMF*256 + FLG divisible by 31."""
    cmf, flg = data[0], data[1]
    return cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0
