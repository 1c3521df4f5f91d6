"""The media socket relay: a websocket from the page <-> a decart_nb kernel's TCP listener.

The page opens `{base_url}decart_nb/media/<port>`; the relay connects to `127.0.0.1:<port>`,
where a CameraWidget's listener must first say MAGIC (so this is no proxy to any local port),
then passes frames both ways: one websocket binary message <-> one TCP frame, a u32
little-endian length and that many bytes. What the frames say is the kernel's and the page's
business (the spec: VP8 chunks, acks, key-frame requests, the media socket's handshake); the relay
neither reads nor buffers them beyond the sockets' own buffers: it awaits each write before it
reads the next message.

Memory is bounded per connection and in total, for logged-in clients too: a message or frame is
at most MAX_FRAME bytes (tornado refuses a longer message, or fragments adding up to more, from
its header), at most MAX_RELAYS relays run at once (another one is refused with 503), and a
closed relay keeps nothing (see `_release`). Sizes (the largest model is 1280x720):
- page -> kernel: a CHUNK is 10 bytes + one VP8 frame of the page's camera encoder; a MESSAGE
  is JSON of at most 256 KiB (media_socket.MAX_MESSAGE). Kernel -> page: VP8 frames of the
  kernel's encoder (at its top rate, 0.2 bit/pixel at 30 fps, a key frame of pure noise at
  720p is 0.53 MB).
- The largest VP8 frame at 720p, whatever the encoder's rate: a key frame of noise at
  quantizer 0 is 1.28 MB (a raw yuv420 frame is 1.38 MB).
So MAX_FRAME = 2 MiB is 1.6x the worst possible 720p frame and 4x the kernel's worst. A relay
holds at most about 3 x MAX_FRAME (a message in tornado's buffers, its copy, the socket's write
buffer for a kernel that stalls), so all relays hold at most about 96 MiB; a client that only
sends partial messages gets MAX_RELAYS x MAX_FRAME = 32 MiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
from typing import ClassVar

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol

__all__ = ["MAGIC", "MAX_FRAME", "MAX_RELAYS", "URL_PATTERN", "MediaRelayHandler", "parse_port"]

MAGIC = b"decart_nb-media/1"
MAX_FRAME = 2 * 1024 * 1024  # the largest message or frame either way (see the module's docstring)
MAX_RELAYS = 16  # relays at once, per server: a page has one per camera widget
# Anything up to the next "/": the handler answers 400 for what is not a port, rather than
# leaving a pattern to decide (`\d` matches more than ASCII digits, int() refuses long numbers).
URL_PATTERN = r"decart_nb/media/([^/]+)"  # joined to the server's base_url
_PORT = re.compile(r"[1-9][0-9]{0,4}")  # ASCII digits, no leading zero, at most 5 of them
MAGIC_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0
_LENGTH = struct.Struct("<I")

# Close codes (RFC 6455 7.4.1): the page falls back to the comm on any of them.
NORMAL, UNSUPPORTED, POLICY, TOO_BIG, FAILED = 1000, 1003, 1008, 1009, 1011


class _Closed(Exception):
    """The relay must close the websocket with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def parse_port(text: str) -> int | None:
    """The TCP port `text` names (1..65535 in plain ASCII decimal), or None."""
    if not _PORT.fullmatch(text):
        return None
    port = int(text)
    return port if port < 65536 else None


async def _read_frame(reader: asyncio.StreamReader, limit: int = MAX_FRAME) -> bytes:
    """One frame's bytes (asyncio.IncompleteReadError when the kernel closed)."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > limit:  # checked before reading, so a bogus length allocates nothing
        raise _Closed(TOO_BIG, f"frame of {length} bytes from the kernel, over {limit}")
    return await reader.readexactly(length)


def _empty_buffers(protocol: WebSocketProtocol | None) -> None:
    """Empty the buffers of a finished websocket connection: the partial message of
    tornado's WebSocketProtocol13, and the read buffer of its stream once closed. Private
    attributes (tornado 6.x), set only where they exist with the expected types."""
    if protocol is None:
        return
    if isinstance(getattr(protocol, "_fragmented_message_buffer", None), bytearray):
        protocol._fragmented_message_buffer = None  # type: ignore[attr-defined]
    stream = protocol.stream
    if (
        stream is not None
        and stream.closed()
        and isinstance(getattr(stream, "_read_buffer", None), bytearray)
    ):
        stream._read_buffer = bytearray()
        stream._read_buffer_size = 0


class MediaRelayHandler(WebSocketMixin, WebSocketHandler, JupyterHandler):
    """The relay for one page connection. Authentication as jupyter_server's kernel websocket:
    WebSocketMixin checks the origin and makes JupyterHandler.prepare answer 403 (no login
    redirect) without a user; `get` then asks the authorizer for `execute` on `kernels`, since
    the frames go into a kernel."""

    auth_resource = "kernels"
    live: ClassVar[int] = 0  # relays running in this server process (at most MAX_RELAYS)

    _port = 0
    _writer: asyncio.StreamWriter | None = None
    _pump: asyncio.Task[None] | None = None
    _protocol: WebSocketProtocol | None = None  # tornado's, kept to empty its buffers on close
    _closed = False  # on_close ran: open must not go on

    def set_default_headers(self) -> None:
        """None of JupyterHandler's page headers (CSP, ...): they mean nothing on an upgrade."""

    def write_error(self, status_code: int, **kwargs: object) -> None:
        """A line of text, not JupyterHandler's HTML page: that page asks for the user, which fails
        (a traceback in the log) when tornado refuses the URL before `prepare` (a path that is not
        UTF-8), and means nothing to a websocket client."""
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish(f"{status_code} {self._reason}\n")

    @property
    def max_message_size(self) -> int:
        # Over it (one frame's header, or fragments adding up) tornado closes (1009) and reads no more.
        return MAX_FRAME

    @ws_authenticated
    async def get(self, *args: str, **kwargs: str) -> None:
        user = self.current_user
        if not await ensure_async(self.authorizer.is_authorized(self, user, "execute", self.auth_resource)):
            raise web.HTTPError(403)
        if parse_port(args[0]) is None:
            raise web.HTTPError(400, f"not a port: {args[0][:20]!r}")
        if MediaRelayHandler.live >= MAX_RELAYS:
            raise web.HTTPError(503, f"{MAX_RELAYS} media relays are running already")
        MediaRelayHandler.live += 1
        try:
            await super().get(*args, **kwargs)  # returns once the websocket closed
        finally:
            MediaRelayHandler.live -= 1

    async def open(self, *args: str, **kwargs: str) -> None:
        super().open()  # WebSocketMixin: keep-alive pings
        self._protocol = self.ws_connection
        self.set_nodelay(True)  # chunk acks are small and each one matters for the rate
        self._port = int(args[0])  # checked by get
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self._port), CONNECT_TIMEOUT_S
            )
            self._writer = writer
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                hello = await asyncio.wait_for(_read_frame(reader, len(MAGIC)), MAGIC_TIMEOUT_S)
            except (TimeoutError, asyncio.IncompleteReadError, _Closed) as exc:
                raise _Closed(POLICY, "not a decart_nb media socket") from exc
            if hello != MAGIC:
                raise _Closed(POLICY, "not a decart_nb media socket")
        except (TimeoutError, OSError) as exc:
            self._close(FAILED, f"cannot connect to the kernel's port: {exc.__class__.__name__}")
            return
        except _Closed as exc:
            self._close(exc.code, exc.reason)
            return
        if self._closed:  # the page went away while we connected
            self._close_tcp()
            self._writer = None
            return
        self.log.info("decart_nb media relay: page <-> 127.0.0.1:%d", self._port)
        self._pump = asyncio.create_task(self._kernel_to_page(reader))

    async def _kernel_to_page(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                frame = await _read_frame(reader)
                await self.write_message(frame, binary=True)  # awaited: the websocket paces the reads
        except asyncio.IncompleteReadError:
            self._close(NORMAL, "the kernel closed the media socket")
        except (OSError, WebSocketClosedError) as exc:
            self._close(FAILED, f"relay failed: {exc.__class__.__name__}")
        except _Closed as exc:
            self._close(exc.code, exc.reason)
        except Exception:  # logged, then both sides closed: never a silent relay
            self.log.exception("decart_nb media relay (port %d): kernel -> page failed", self._port)
            self._close(FAILED, "relay error")

    async def on_message(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self._close(UNSUPPORTED, "text messages are refused: binary frames only")
            return
        if len(message) > MAX_FRAME:  # tornado already refuses these (max_message_size)
            self._close(TOO_BIG, f"frame over {MAX_FRAME} bytes")
            return
        writer = self._writer
        if writer is None or writer.is_closing():
            return  # closing already: nothing more goes to the kernel
        try:
            writer.write(_LENGTH.pack(len(message)) + message)  # one write: one segment (nodelay)
            await writer.drain()  # tornado reads the next message only after this
        except OSError as exc:
            self._close(FAILED, f"relay failed: {exc.__class__.__name__}")

    def on_close(self) -> None:
        self._closed = True
        self.log.info(
            "decart_nb media relay: page closed (port %d, code %s, %s)",
            self._port,
            self.close_code,
            self.close_reason,
        )
        self._close_tcp()
        self._release()

    def _release(self) -> None:
        """Let go of what the closed relay holds, at once. A page that closes in the middle of a
        message leaves it in tornado's buffers (the fragments so far, and the stream's read
        buffer for the frame it was reading): up to MAX_FRAME. The handler that reaches them is
        held by WebSocketMixin's keep-alive ping timer until its next tick (30 s), then by
        reference cycles until a full garbage collection, which a busy server may not run for
        long; so the buffers are emptied here rather than left to either."""
        if self.ping_callback is not None:
            self.ping_callback.stop()
            self.ping_callback = None
        self._pump = None
        self._writer = None
        protocol, self._protocol = self._protocol, None
        _empty_buffers(protocol)

    def _close(self, code: int, reason: str) -> None:
        """Close both sides: the websocket with `code` and `reason`, and the kernel's socket."""
        if not self._closed:
            self.log.info("decart_nb media relay (port %d): closing, %s", self._port, reason)
        self._close_tcp()
        self.close(code, reason[:123])  # a close frame's reason is at most 123 bytes

    def _close_tcp(self) -> None:
        if self._pump is not None and self._pump is not asyncio.current_task():
            self._pump.cancel()
        if self._writer is not None:
            with contextlib.suppress(OSError):  # already gone: closing is all that was asked
                self._writer.close()
