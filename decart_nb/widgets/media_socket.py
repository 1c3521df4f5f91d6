"""The page socket: the page's messages and the codec link's media, beside the comm.

The kernel reads comm messages only between cells, so a page whose offer travels over the comm
waits for a busy kernel (Run All, papermill). And Jupyter's own messages take about half of a
slow link for the codec transport (iopub `status` messages after each page message, a Jupyter
header on each chunk and ack). So each CameraWidget listens on 127.0.0.1 (an ephemeral port, on
the media loop) for as long as it lives; decart_nb_server relays a websocket from the page to it,
one websocket message per frame, read on the media loop whatever the kernel's main thread does.
Where the relay is missing the page never connects and everything stays on the comm.

Framing (TCP, between the relay and the kernel): each frame is a u32 little-endian length, then
that many bytes (at most MAX_FRAME). The kernel speaks first: one frame MAGIC (the relay closes
anything else, so it is no generic proxy to local ports, and does not pass it on to the page).
The kernel sent the page its port and token over the comm (`media_socket {port, token}`); the
token never crosses the socket. Instead each side proves it holds it (socket_handshake.py), on
fresh nonces, so no connection's proof passes on another:

    kernel -> page   MAGIC, then NONCE: u8 0x05, nonce_k (32 random bytes)
    page -> kernel   NONCE: u8 0x05, nonce_p (32 random bytes), as soon as its websocket opens
    kernel -> page   PROOF: u8 0x06, HMAC-SHA256(token, "kernel" | u16le port | nonce_p | nonce_k)
    page -> kernel   PROOF: u8 0x06, HMAC-SHA256(token, "page" | u16le port | nonce_k | nonce_p),
                     only once the kernel's proof checked (before that the page sends nothing else)
    kernel -> page   READY: u8 0x00

Anything else before READY (a wrong proof, another frame, a frame over MAX_HELLO bytes), or no
READY within MEDIA_HELLO_TIMEOUT_S of the accept however slowly the bytes come, closes the
connection. At most MAX_PENDING connections are in their handshake at once: a newer one takes the
place of the oldest (one that has not even sent its nonce first), so a flood keeps few file
descriptors and the page still gets in. READY makes the connection the live one (a newer one
replaces it). Then, both ways, little-endian:

- `0x01` CHUNK: `u8 0x01, u32 seq, u8 key (0/1), u16 width, u16 height`, then one VP8 frame:
  the comm's `chunk {seq, key, width, height}` + its buffer.
- `0x02` CHUNK_ACK: `u8 0x02, u32 seq`: the comm's `chunk_ack {seq}`.
- `0x03` KEYFRAME: `u8 0x03`: the comm's `keyframe {}`.
- `0x04` MESSAGE (page -> kernel): `u8 0x04`, then one page message as UTF-8 JSON (an object
  whose `type` is in the `types` the socket was made with: every page message but the ones with
  a buffer), at most MAX_MESSAGE bytes.

A malformed frame from the page is dropped. Refused connections and dropped frames are counted,
and a warning says how many at most every MEDIA_WARNING_EVERY_S per listener (warning_tally.py): a
neighbour's flood does not flood the log. The token is in no log line and no repr. Every method
runs on the media loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import struct
from collections.abc import Callable, Collection, Mapping, Sequence

from ..timeouts import MEDIA_HELLO_TIMEOUT_S, MEDIA_WARNING_EVERY_S
from . import socket_handshake as hs
from .messages import JsonValue
from .warning_tally import WarningTally

__all__ = [
    "BACKLOG",
    "CHUNK",
    "CHUNK_ACK",
    "KEYFRAME",
    "MAGIC",
    "MAX_BUFFERED",
    "MAX_FRAME",
    "MAX_MESSAGE",
    "MAX_PENDING",
    "MEDIA_HELLO_TIMEOUT_S",
    "MEDIA_WARNING_EVERY_S",
    "MESSAGE",
    "READY",
    "RELAY_ENV",
    "Malformed",
    "MediaSocket",
    "decode",
    "encode",
    "encode_message",
    "framed",
]

logger = logging.getLogger("decart_nb")

MAGIC = b"decart_nb-media/1"
# Set by decart_nb_server in the server's environment, which the kernels it starts inherit: only
# such a kernel, on the relay's host, offers the page socket (elsewhere the page's websocket would
# meet a 404, an error line in its console, before it fell back to the comm).
RELAY_ENV = "DECART_NB_MEDIA_RELAY"
READY, CHUNK, CHUNK_ACK, KEYFRAME, MESSAGE = 0x00, 0x01, 0x02, 0x03, 0x04
# A larger frame closes the connection: the relay passes none larger (decart_nb_server/relay.py: 1.6x
# the largest VP8 frame at 1280x720, 4x the largest the kernel encodes).
MAX_FRAME = 2 * 1024 * 1024
# A page message's JSON (an offer's SDP is a few kB; a long camera list less than this): a larger
# one is dropped as malformed.
MAX_MESSAGE = 256 * 1024
MAX_HELLO = 256  # a handshake frame (an unauthenticated peer gets no more)
MAX_PENDING = 8  # connections in their handshake at once (a page makes one at a time)
# The listen queue (asyncio's default), and how many connections asyncio accepts at once before
# any of them runs: what a flood holds beyond MAX_PENDING is a batch or two of these (a smaller one
# makes the queue overflow sooner, and the page's connection wait for a SYN resent after 1 s).
BACKLOG = 100
MAX_BUFFERED = 4 * 1024 * 1024  # bytes waiting to be written: past that, the connection is closed

_LENGTH = struct.Struct("<I")
_CHUNK = struct.Struct("<BIBHH")  # kind, seq, key, width, height: 10 bytes
_ACK = struct.Struct("<BI")  # kind, seq: 5 bytes
_U32, _U16 = range(1 << 32), range(1 << 16)

OnMessage = Callable[[dict[str, JsonValue], bytes], None]


class Malformed(ValueError):
    """A frame body that is no message of the page's."""


def framed(body: bytes) -> bytes:
    """`body` with its u32 little-endian length in front."""
    return _LENGTH.pack(len(body)) + body


def encode(content: Mapping[str, object], buffers: Sequence[bytes] = ()) -> bytes | None:
    """The frame body of a comm message (chunk + one buffer, chunk_ack, keyframe); None for any
    other message, or one whose fields do not fit the wire format (it goes over the comm)."""
    kind = content.get("type")
    if kind == "keyframe":
        return bytes([KEYFRAME])
    seq = content.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq not in _U32:
        return None
    if kind == "chunk_ack":
        return _ACK.pack(CHUNK_ACK, seq)
    if kind != "chunk" or len(buffers) != 1:
        return None
    width, height = content.get("width"), content.get("height")
    if not (isinstance(width, int) and isinstance(height, int) and width in _U16 and height in _U16):
        return None
    return _CHUNK.pack(CHUNK, seq, 1 if content.get("key") else 0, width, height) + bytes(buffers[0])


def encode_message(content: Mapping[str, object]) -> bytes:
    """The MESSAGE frame body of a page message (what the page sends; tests play the page)."""
    return bytes([MESSAGE]) + json.dumps(content, separators=(",", ":")).encode()


def decode(body: bytes, types: Collection[str] = ()) -> tuple[dict[str, JsonValue], bytes]:
    """A frame body from the page as the comm would give it: its content and its buffer (b"" for
    chunk_ack, keyframe and a MESSAGE, whose `type` must be one of `types`). Raises Malformed."""
    if not body:
        raise Malformed("an empty frame")
    kind = body[0]
    if kind == MESSAGE:
        return _message(body[1:], types), b""
    if kind == CHUNK:
        if len(body) <= _CHUNK.size:
            raise Malformed(f"a chunk of {len(body)} bytes (its header alone takes {_CHUNK.size})")
        _, seq, key, width, height = _CHUNK.unpack_from(body)
        if key not in (0, 1):
            raise Malformed(f"a chunk whose key byte is {key}")
        content: dict[str, JsonValue] = {
            "type": "chunk",
            "seq": seq,
            "key": bool(key),
            "width": width,
            "height": height,
        }
        return content, body[_CHUNK.size :]
    if kind == CHUNK_ACK:
        if len(body) != _ACK.size:
            raise Malformed(f"a chunk_ack of {len(body)} bytes, not {_ACK.size}")
        return {"type": "chunk_ack", "seq": _ACK.unpack(body)[1]}, b""
    if kind == KEYFRAME:
        if len(body) != 1:
            raise Malformed(f"a keyframe of {len(body)} bytes, not 1")
        return {"type": "keyframe"}, b""
    raise Malformed(f"a frame of kind {kind:#04x}")


def _message(data: bytes, types: Collection[str]) -> dict[str, JsonValue]:
    """A MESSAGE's JSON: one object whose `type` is one of `types`."""
    if len(data) > MAX_MESSAGE:
        raise Malformed(f"a message of {len(data)} bytes (at most {MAX_MESSAGE})")
    try:
        content = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise Malformed(f"a message that is no JSON ({exc})") from None
    if not isinstance(content, dict):
        raise Malformed(f"a message that is a JSON {type(content).__name__}, not an object")
    if content.get("type") not in types:
        raise Malformed(f"a message of type {str(content.get('type'))[:40]!r}")
    message: dict[str, JsonValue] = content  # JSON: string keys, JSON values
    return message


async def _read(reader: asyncio.StreamReader, limit: int) -> bytes | None:
    """The next frame's body; None at the end of the stream. Raises Malformed past `limit` bytes
    (before reading them)."""
    try:
        (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        if length > limit:
            raise Malformed(f"a frame of {length} bytes (at most {limit})")
        return await reader.readexactly(length)
    except (asyncio.IncompleteReadError, OSError):
        return None


class MediaSocket:
    """One widget's listener: at most one live connection, whose frames go to `on_message`
    (media, and MESSAGE frames whose type is in `types`).

    `on_live()` runs when a connection becomes the live one, `on_lost()` when the live one ends
    (closed, or replaced by a newer one: then `on_live()` follows); what was in flight on it is
    gone. Neither runs after `close()`.
    """

    def __init__(
        self,
        on_message: OnMessage,
        on_live: Callable[[], None],
        on_lost: Callable[[], None],
        types: Collection[str] = (),
    ) -> None:
        self.token = secrets.token_urlsafe(24)  # goes to the page over the comm only
        self.port = 0
        self._types = frozenset(types)
        self._on_message = on_message
        self._on_live = on_live
        self._on_lost = on_lost
        self._server: asyncio.Server | None = None
        self._starting = asyncio.Lock()
        self._writers: set[asyncio.StreamWriter] = set()  # every open connection
        # Connections in their handshake, oldest first: whether they sent their nonce yet.
        self._pending: dict[asyncio.StreamWriter, bool] = {}
        self._live: asyncio.StreamWriter | None = None
        self._closed = False
        self._tally = WarningTally("the media socket", MEDIA_WARNING_EVERY_S)

    def __repr__(self) -> str:  # never the token
        return f"<MediaSocket port={self.port} live={self.live} closed={self._closed}>"

    @property
    def live(self) -> bool:
        return self._live is not None

    async def start(self) -> int:
        """Listen on 127.0.0.1, an ephemeral port; returns the port."""
        async with self._starting:  # two offers at once make one listener
            if self._server is None and not self._closed:
                self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=BACKLOG)
                self.port = self._server.sockets[0].getsockname()[1]
                self._tally = WarningTally(f"the media socket on port {self.port}", MEDIA_WARNING_EVERY_S)
                if self._closed:  # closed while it started
                    self._server.close()
        return self.port

    def send(self, content: Mapping[str, object], buffers: Sequence[bytes] = ()) -> bool:
        """Send a chunk, chunk_ack or keyframe over the live connection; False when there is none
        or the message has no wire form (the caller sends it over the comm)."""
        writer = self._live
        if writer is None:
            return False
        body = encode(content, buffers)
        if body is None:
            return False
        if writer.transport.get_write_buffer_size() + len(body) > MAX_BUFFERED:
            logger.warning("decart_nb: the media socket's page reads too slowly: back to the comm")
            self._drop(writer, soon=True)
            return False
        writer.write(framed(body))
        return True

    def close(self) -> None:
        """Stop listening and close every connection (no callback runs)."""
        self._closed = True
        self._live = None
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        self._pending.clear()
        self._tally.flush()

    # -- a connection --------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closed:
            writer.transport.abort()
            return
        self._admit(writer)
        self._writers.add(writer)
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            refused = await self._handshake(reader, writer)
            self._pending.pop(writer, None)
            if refused:
                self._tally.add(refused)
                return
            self._go_live(writer)
            await self._read_frames(reader, writer)
        finally:
            self._pending.pop(writer, None)
            self._drop(writer)

    def _admit(self, writer: asyncio.StreamWriter) -> None:
        """At most MAX_PENDING handshakes at once: past that the oldest one that has said nothing
        (else the oldest) is closed, so a flood holds few descriptors and a page still gets in."""
        if len(self._pending) >= MAX_PENDING:
            silent = [w for w, spoke in self._pending.items() if not spoke]
            oldest = silent[0] if silent else next(iter(self._pending))
            del self._pending[oldest]
            oldest.transport.abort()  # its own _serve counts it, once
        self._pending[writer] = False

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        """Both sides prove they hold the token (socket_handshake.py), all within
        MEDIA_HELLO_TIMEOUT_S of the accept; "" once the page's proof checked, else what failed."""
        nonce_k = hs.new_nonce()
        writer.write(framed(MAGIC) + framed(hs.nonce_frame(nonce_k)))
        try:
            async with asyncio.timeout(MEDIA_HELLO_TIMEOUT_S):  # one deadline: a slow peer's too
                nonce_p = hs.read_field(await _read(reader, MAX_HELLO), hs.NONCE)
                if nonce_p is None:
                    return "connections refused (no nonce)"
                if writer in self._pending:
                    self._pending[writer] = True
                writer.write(framed(hs.proof_frame(hs.kernel_proof(self.token, self.port, nonce_p, nonce_k))))
                proof = hs.read_field(await _read(reader, MAX_HELLO), hs.PROOF)
        except TimeoutError:
            return "connections refused (handshake timed out)"
        except Malformed:
            return "connections refused (a handshake frame over the limit)"
        if not hs.same(proof, hs.page_proof(self.token, self.port, nonce_k, nonce_p)):
            return "connections refused (no proof of the token)"
        return ""

    async def _read_frames(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The live connection's frames to `on_message`, until it ends or is replaced (or sends a
        frame over MAX_FRAME: then it is closed)."""
        while writer is self._live:
            try:
                body = await _read(reader, MAX_FRAME)
            except Malformed:
                self._tally.add("connections closed (a frame over the limit)")
                return
            if body is None or writer is not self._live:
                return
            try:
                content, data = decode(body, self._types)
            except Malformed:
                self._tally.add("malformed frames dropped")
                continue
            try:
                self._on_message(content, data)
            except Exception:  # the reader goes on; the widget's bug is logged
                logger.exception("decart_nb: a media socket message failed")

    def _go_live(self, writer: asyncio.StreamWriter) -> None:
        old, self._live = self._live, writer
        writer.write(framed(bytes([READY])))
        if old is not None:
            logger.info("decart_nb: a newer media socket connection replaces the live one")
            self._writers.discard(old)
            old.transport.abort()
            self._on_lost()
        self._on_live()

    def _drop(self, writer: asyncio.StreamWriter, soon: bool = False) -> None:
        """Close `writer`'s connection; `on_lost()` when it was the live one (`soon`: on the loop's
        next turn, not inside the caller's `send`, which may be the output's sender)."""
        self._writers.discard(writer)
        writer.transport.abort()
        if writer is not self._live:
            return
        self._live = None
        if soon:
            asyncio.get_running_loop().call_soon(self._lost)
        else:
            self._lost()

    def _lost(self) -> None:
        if not self._closed:
            self._on_lost()
