"""A scriptable local HTTP server that plays feed publishers and news sites in tests.

`FeedServer` runs a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (a free port) in a
daemon thread. Tests register routes while it runs and read back what clients sent:

- `FeedServer.serve`: a fixed body with any status and headers, optional ETag /
  Last-Modified conditional GET (304), gzip content coding, and a delay before answering;
- `FeedServer.redirect`: a redirect (two pointing at each other make a loop);
- `FeedServer.serve_stream`: a huge body streamed in chunks, never held in memory;
- `FeedServer.serve_gzip_bomb`: a small gzip payload that inflates to gigabytes;
- `FeedServer.requests` / `FeedServer.hits`: the log of received requests.

Unknown paths answer 404. Routes match on the path only; the query string is logged.
HTTP/1.1 keep-alive is on, so every body is sent with an exact Content-Length except
`serve_stream(..., declare_length=False)`, which closes the connection to end the body.

It does not do TLS, HTTP/2, chunked transfer coding, byte ranges, authentication,
request bodies (read and dropped), or routing beyond exact paths, and it never writes
to stderr for a request. ``closed_port_url`` gives a URL where no server listens, for
connection-refused tests.
"""

from __future__ import annotations

import functools
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

__all__ = ["RSS_CONTENT_TYPE", "FeedServer", "RecordedRequest", "closed_port_url"]

RSS_CONTENT_TYPE = "application/rss+xml; charset=utf-8"
_HOST = "127.0.0.1"
_KIB = 1024
_MIB = 1024 * _KIB
#: Statuses whose responses never carry a body.
_NO_BODY_STATUSES = frozenset({204, 304})
#: Errors raised when the client hangs up mid-response; they end the response quietly.
_CLIENT_GONE = (ConnectionError, TimeoutError)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    #: Path without the query string, e.g. ``/feeds/a.xml``.
    path: str
    #: Raw query string without the ``?`` (empty if none).
    query: str
    #: Header names lower-cased; repeated headers joined with ``", "``.
    headers: dict[str, str]
    #: ``time.monotonic()`` when the request line and headers had been read.
    time: float


class _Route(Protocol):
    def respond(self, handler: _Handler, stop: threading.Event) -> None: ...


def _http_date(value: datetime | str) -> str:
    """An HTTP-date (RFC 9110) for an aware datetime; strings pass through unchanged."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("last_modified must be timezone-aware")
    return format_datetime(value.astimezone(UTC), usegmt=True)


def _parse_http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _quote_etag(etag: str) -> str:
    return etag if etag.startswith(('"', 'W/"')) else f'"{etag}"'


def _opaque_tag(etag: str) -> str:
    """The ETag without its weak marker, for weak comparison (RFC 9110 §8.8.3.2)."""
    return etag.strip().removeprefix("W/")


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value allows gzip (named, or ``*``, with q > 0)."""
    accepted = {"*": False}
    for part in accept_encoding.lower().split(","):
        coding, *params = (token.strip() for token in part.split(";"))
        accepted[coding] = _qvalue(params) > 0
    if "gzip" in accepted or "x-gzip" in accepted:
        return accepted.get("gzip", False) or accepted.get("x-gzip", False)
    return accepted["*"]


def _qvalue(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


@dataclass(frozen=True)
class _StaticRoute:
    body: bytes
    content_type: str
    status: int
    headers: Mapping[str, str]
    etag: str | None
    last_modified: str | None
    delay: float
    gzip: bool

    def respond(self, handler: _Handler, stop: threading.Event) -> None:
        if self.delay > 0 and stop.wait(self.delay):
            handler.close_connection = True
            return
        if self._not_modified(handler):
            handler.send_head(304, self._validators())
            return
        body, extra = self.body, dict(self._validators())
        if self.gzip and _accepts_gzip(handler.headers.get("Accept-Encoding", "")):
            body = zlib.compress(body, wbits=16 + zlib.MAX_WBITS)
            extra |= {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        extra |= {"Content-Type": self.content_type, **self.headers}
        handler.send_body(self.status, extra, body)

    def _validators(self) -> dict[str, str]:
        found = {"ETag": self.etag, "Last-Modified": self.last_modified}
        return {name: value for name, value in found.items() if value is not None}

    def _not_modified(self, handler: _Handler) -> bool:
        """RFC 9110 §13.2.2: If-None-Match wins; If-Modified-Since only without it."""
        if self.status != 200 or handler.command not in ("GET", "HEAD"):
            return False
        if_none_match = handler.headers.get("If-None-Match")
        if if_none_match is not None:
            return self._etag_matches(if_none_match)
        if_modified_since = handler.headers.get("If-Modified-Since")
        if if_modified_since is None or self.last_modified is None:
            return False
        since = _parse_http_date(if_modified_since)
        modified = _parse_http_date(self.last_modified)
        return since is not None and modified is not None and since >= modified

    def _etag_matches(self, if_none_match: str) -> bool:
        if self.etag is None:
            return False
        if if_none_match.strip() == "*":
            return True
        ours = _opaque_tag(self.etag)
        return any(_opaque_tag(tag) == ours for tag in if_none_match.split(","))


@dataclass(frozen=True)
class _RedirectRoute:
    location: str
    status: int

    def respond(self, handler: _Handler, stop: threading.Event) -> None:
        body = f"Moved to {self.location}\n".encode()
        headers = {"Location": self.location, "Content-Type": "text/plain; charset=utf-8"}
        handler.send_body(self.status, headers, body)


@dataclass(frozen=True)
class _StreamRoute:
    total_bytes: int
    content_type: str
    chunk: int
    declare_length: bool

    def respond(self, handler: _Handler, stop: threading.Event) -> None:
        headers = {"Content-Type": self.content_type}
        if self.declare_length:
            headers["Content-Length"] = str(self.total_bytes)
        else:
            headers["Connection"] = "close"
            handler.close_connection = True
        handler.send_head(200, headers, length=None)
        if handler.command == "HEAD":
            return
        for piece in _stream_pieces(self.total_bytes, self.chunk):
            if stop.is_set():
                handler.close_connection = True
                return
            handler.wfile.write(piece)


_STREAM_PREFIX = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
    b"<title>Endless feed</title><link>http://127.0.0.1/</link>"
    b"<description>Streamed by FeedServer.serve_stream</description>\n"
)
_STREAM_PATTERN = (
    b"<item><title>Padding item</title><description>" + b"x" * 64 + (b"</description></item>\n")
)


def _stream_pieces(total: int, chunk: int) -> Iterator[bytes]:
    """``total`` bytes of RSS-looking text (never closed), in pieces of about ``chunk``."""
    block = _STREAM_PATTERN * max(1, chunk // len(_STREAM_PATTERN))
    head = _STREAM_PREFIX[:total]
    yield head
    remaining = total - len(head)
    while remaining > 0:
        piece = block[:remaining]
        remaining -= len(piece)
        yield piece


@dataclass(frozen=True)
class _GzipBombRoute:
    payload: bytes
    content_type: str

    def respond(self, handler: _Handler, stop: threading.Event) -> None:
        headers = {"Content-Type": self.content_type, "Content-Encoding": "gzip"}
        handler.send_body(200, headers, self.payload)


@functools.lru_cache(maxsize=4)
def _gzip_bomb(decompressed_bytes: int, fill: bytes) -> bytes:
    """A gzip member inflating to ``decompressed_bytes`` copies of ``fill``.

    One 1 MiB block is deflated and ended with a full flush, which resets the
    compressor, so its output can be repeated verbatim: about 1 KiB per MiB, in
    well under a second even for gigabytes. Memory stays at the compressed size.
    """
    block = fill * (_MIB // len(fill))
    repeats, rest = divmod(decompressed_bytes, len(block))
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated_block = deflater.compress(block) + deflater.flush(zlib.Z_FULL_FLUSH)
    tail = deflater.compress(block[:rest]) + deflater.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(repeats):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(block[:rest], crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, decompressed_bytes & 0xFFFFFFFF)
    return b"".join((header, deflated_block * repeats, tail, trailer))


class _Handler(BaseHTTPRequestHandler):
    """Dispatches each request to the route registered for its path."""

    protocol_version = "HTTP/1.1"
    #: Headers and body go out in separate writes; without TCP_NODELAY the client's
    #: delayed ACK would stall each keep-alive response by ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._discard_request_body()
        self._dispatch()

    def _dispatch(self) -> None:
        owner = self.server.owner
        path = owner._record(self)
        route = owner._route_for(path)
        try:
            if route is None:
                self.send_body(404, {"Content-Type": "text/plain"}, b"Not found\n")
            else:
                route.respond(self, owner._stopping)
            self.wfile.flush()
        except _CLIENT_GONE:
            self.close_connection = True

    def _discard_request_body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)

    def send_head(
        self, status: int, headers: Mapping[str, str], *, length: int | None = 0
    ) -> None:
        """Status line and headers; ``length`` becomes Content-Length unless None."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if length is not None and status not in _NO_BODY_STATUSES:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def send_body(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        if status in _NO_BODY_STATUSES:
            body = b""
        self.send_head(status, headers, length=len(body))
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: tests read `FeedServer.requests` instead of a per-request log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 overflows when a client opens dozens of
    # connections at once, and each dropped SYN is retried only after 1 s.
    request_queue_size = 128

    def __init__(self, owner: FeedServer) -> None:
        self.owner = owner
        super().__init__((_HOST, 0), _Handler)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        """Quiet when the client hung up or we are stopping; other errors are bugs."""
        if self.owner._stopping.is_set() or isinstance(sys.exc_info()[1], _CLIENT_GONE):
            return
        super().handle_error(request, client_address)


class FeedServer:
    """A local HTTP server whose routes tests set, change and inspect while it runs.

    Use as a context manager (``with FeedServer() as server: ...``) or call
    `start` and `stop`. All methods are thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}
        self._log: list[RecordedRequest] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        #: Set by `stop`; wakes delayed responses and ends streams early.
        self._stopping = threading.Event()

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _Server(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FeedServer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FeedServer is not running; call start() first")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{_HOST}:{self.port}"

    def url(self, path: str = "/") -> str:
        """Absolute URL of ``path`` on this server, e.g. ``http://127.0.0.1:PORT/feeds/a.xml``."""
        return self.base_url + _normalise(path)

    # -- routes --------------------------------------------------------------------

    def serve(
        self,
        path: str,
        body: bytes | str,
        *,
        content_type: str = RSS_CONTENT_TYPE,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        etag: str | None = None,
        last_modified: datetime | str | None = None,
        delay: float = 0.0,
        gzip: bool = False,
    ) -> None:
        """Answer ``path`` with ``body`` (str is UTF-8 encoded), replacing any route.

        ``etag`` (quoted for you if bare) and ``last_modified`` (aware datetime or a
        ready HTTP-date) are sent and enable 304 answers to If-None-Match /
        If-Modified-Since. ``gzip`` compresses the body when the client accepts gzip.
        ``delay`` seconds pass before anything is sent. ``headers`` are sent last
        and so override the computed ones.
        """
        route = _StaticRoute(
            body=body.encode() if isinstance(body, str) else body,
            content_type=content_type,
            status=status,
            headers=dict(headers or {}),
            etag=None if etag is None else _quote_etag(etag),
            last_modified=None if last_modified is None else _http_date(last_modified),
            delay=delay,
            gzip=gzip,
        )
        self._set_route(path, route)

    def redirect(self, path: str, to: str, status: int = 301) -> None:
        """Answer ``path`` with ``status`` and ``Location: to`` (sent exactly as given)."""
        self._set_route(path, _RedirectRoute(location=to, status=status))

    def serve_stream(
        self,
        path: str,
        total_bytes: int,
        *,
        content_type: str = RSS_CONTENT_TYPE,
        chunk: int = 64 * _KIB,
        declare_length: bool = True,
    ) -> None:
        """Stream ``total_bytes`` of an endless-looking RSS document, ``chunk`` at a time.

        With ``declare_length=False`` no Content-Length is sent and the connection is
        closed to end the body. A client hanging up early is not an error.
        """
        route = _StreamRoute(total_bytes, content_type, max(1, chunk), declare_length)
        self._set_route(path, route)

    def serve_gzip_bomb(
        self,
        path: str,
        decompressed_bytes: int,
        *,
        fill: bytes = b" ",
        content_type: str = RSS_CONTENT_TYPE,
    ) -> None:
        """Serve gzip data inflating to ``decompressed_bytes`` of ``fill`` (about 1/1000
        the size on the wire), with Content-Encoding: gzip whatever the client accepts.
        """
        if not fill:
            raise ValueError("fill must not be empty")
        payload = _gzip_bomb(decompressed_bytes, fill)
        self._set_route(path, _GzipBombRoute(payload, content_type))

    def remove(self, path: str) -> None:
        """Forget the route for ``path`` (it answers 404 again)."""
        with self._lock:
            self._routes.pop(_normalise(path), None)

    def _route_for(self, path: str) -> _Route | None:
        with self._lock:
            return self._routes.get(path)

    def _set_route(self, path: str, route: _Route) -> None:
        with self._lock:
            self._routes[_normalise(path)] = route

    # -- request log ---------------------------------------------------------------

    def _record(self, handler: BaseHTTPRequestHandler) -> str:
        """Log the handler's request; return its path (without query)."""
        parts = urlsplit(handler.path)
        headers: dict[str, str] = {}
        for name, value in handler.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        entry = RecordedRequest(
            handler.command, parts.path, parts.query, headers, time.monotonic()
        )
        with self._lock:
            self._log.append(entry)
        return parts.path

    def requests(self, path: str | None = None) -> list[RecordedRequest]:
        """Requests received so far, oldest first, optionally only those for ``path``."""
        with self._lock:
            log = list(self._log)
        if path is None:
            return log
        wanted = _normalise(path)
        return [entry for entry in log if entry.path == wanted]

    def hits(self, path: str) -> int:
        """How many requests ``path`` has received."""
        return len(self.requests(path))

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()


def _normalise(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def closed_port_url(path: str = "/") -> str:
    """An http URL on 127.0.0.1 whose port nothing listens on (connection refused).

    The port is taken from the OS and released at once; another process could grab
    it in between, which is unlikely enough for tests.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port = int(sock.getsockname()[1])
    return f"http://{_HOST}:{port}{_normalise(path)}"
