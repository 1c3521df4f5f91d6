"""The media socket relay: a websocket from the page <-> a decart_nb kernel's TCP listener.

The page opens `{base_url}decart_nb/media/<port>`; the relay connects to `127.0.0.1:<port>`,
where a CameraWidget's listener must first say MAGIC (so this is no proxy to any local port),
then passes frames both ways: one websocket binary message <-> one TCP frame, a u32
little-endian length and that many bytes. What the frames say is the kernel's and the page's
business (the spec: VP8 chunks, acks, key-frame requests); the relay neither reads nor buffers
them beyond the sockets' own buffers: it awaits each write before it reads the next message.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

__all__ = ["MAGIC", "MAX_FRAME", "URL_PATTERN", "MediaRelayHandler"]

MAGIC = b"decart_nb-media/1"
MAX_FRAME = 16 * 1024 * 1024
URL_PATTERN = r"decart_nb/media/(\d+)"  # joined to the server's base_url
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


async def _read_frame(reader: asyncio.StreamReader, limit: int = MAX_FRAME) -> bytes:
    """One frame's bytes (asyncio.IncompleteReadError when the kernel closed)."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > limit:  # checked before reading, so a bogus length allocates nothing
        raise _Closed(TOO_BIG, f"frame of {length} bytes from the kernel, over {limit}")
    return await reader.readexactly(length)


class MediaRelayHandler(WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """The relay for one page connection. Authentication as jupyter_server's kernel websocket:
    WebSocketMixin checks the origin and makes JupyterHandler.prepare answer 403 (no login
    redirect) without a user; `get` then asks the authorizer for `execute` on `kernels`, since
    the frames go into a kernel."""

    auth_resource = "kernels"

    _port = 0
    _writer: asyncio.StreamWriter | None = None
    _pump: asyncio.Task[None] | None = None
    _closed = False  # on_close ran: open must not go on

    def set_default_headers(self) -> None:
        """None of JupyterHandler's page headers (CSP, ...): they mean nothing on an upgrade."""

    @property
    def max_message_size(self) -> int:
        # tornado's default (10 MiB) is under the spec's frame limit; over it tornado closes (1009).
        return MAX_FRAME

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        user = self.current_user
        if not await ensure_async(self.authorizer.is_authorized(self, user, "execute", self.auth_resource)):
            raise web.HTTPError(403)
        port = int(args[0])
        if not 0 < port < 65536:
            raise web.HTTPError(404, f"no port {port}")
        await super().get(*args, **kwargs)

    async def open(self, *args: str, **kwargs: str) -> None:  # type: ignore[override]
        super().open()  # WebSocketMixin: keep-alive pings
        self.set_nodelay(True)  # chunk acks are small and each one matters for the rate
        self._port = int(args[0])
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self._port), CONNECT_TIMEOUT_S
            )
            self._writer = writer
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                hello = await asyncio.wait_for(_read_frame(reader, len(MAGIC)), MAGIC_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.TimeoutError, _Closed) as exc:
                raise _Closed(POLICY, "not a decart_nb media socket") from exc
            if hello != MAGIC:
                raise _Closed(POLICY, "not a decart_nb media socket")
        except (OSError, asyncio.TimeoutError) as exc:
            self._close(FAILED, f"cannot connect to the kernel's port: {exc.__class__.__name__}")
            return
        except _Closed as exc:
            self._close(exc.code, exc.reason)
            return
        if self._closed:  # the page went away while we connected
            self._close_tcp()
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
            writer.write(_LENGTH.pack(len(message)) + message)
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
