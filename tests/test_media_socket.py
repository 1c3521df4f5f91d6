"""The media socket (kernel side): a Python page connects straight to the kernel's listener, doing
what decart_nb_server's relay does (expects MAGIC) and what the page does (the handshake that
proves the token on both sides, then one frame per websocket message), with a real Session and
PyAV playing the page's VP8 (tests/test_codec_link.py). The attacks on it are in
tests/security/test_page_socket.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from decart_nb import ErrorCode, Session, _loop
from decart_nb.media.rate import IN_FLIGHT
from decart_nb.media.vp8 import is_key_chunk
from decart_nb.session_port import port_of
from decart_nb.widgets import camera as camera_module
from decart_nb.widgets import media_socket
from decart_nb.widgets import socket_handshake as hs
from decart_nb.widgets.camera import CameraWidget
from decart_nb.widgets.codec_link import CodecLink
from decart_nb.widgets.media_socket import (
    CHUNK,
    CHUNK_ACK,
    KEYFRAME,
    MAGIC,
    MAX_MESSAGE,
    MESSAGE,
    READY,
    Malformed,
    MediaSocket,
    decode,
    encode,
    encode_message,
    framed,
)
from tests.helpers import wait_until
from tests.test_codec_link import CodecPage, camera_session
from tests.test_widget import RecordingComm, StampedCamera, comm_of, comms

__all__ = ["comms"]  # the recording-comm fixture, shared with test_widget.py

QUICK_S = 2.0  # well under ACK_TIMEOUT_S (5 s): what must not wait for a lost chunk's ack
HANDSHAKE = 4  # the kernel's frames before its messages: MAGIC, NONCE, PROOF, READY


class Wire:
    """The relay's end of a connection to the kernel's listener: u32 framing, a thread keeping
    every frame the kernel sends (MAGIC first)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.kernel_proven = False  # the kernel's proof checked (hello)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(None)
        self.frames: list[bytes] = []
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, name="test-wire", daemon=True)
        self._thread.start()

    def _exactly(self, n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            try:
                part = self.sock.recv(n - len(data))
            except OSError:
                return None
            if not part:
                return None
            data += part
        return data

    def _read(self) -> None:
        try:
            while (head := self._exactly(4)) is not None:
                body = self._exactly(struct.unpack("<I", head)[0])
                if body is None:
                    return
                self.frames.append(body)
        finally:
            self.ended.set()

    def send(self, body: bytes) -> None:
        self.sock.sendall(framed(body))

    def hello(self, token: str) -> bool:
        """The page's handshake with `token`: expect MAGIC and the kernel's nonce, send ours, check
        the kernel's proof (`kernel_proven`), send ours; True once READY came back."""
        assert wait_until(lambda: len(self.frames) >= 2, timeout=5), "the kernel did not speak first"
        assert self.frames[0] == MAGIC
        nonce_k = hs.read_field(self.frames[1], hs.NONCE)
        assert nonce_k is not None, self.frames[1]
        nonce_p = hs.new_nonce()
        self.send(hs.nonce_frame(nonce_p))
        wait_until(lambda: len(self.frames) > 2 or self.ended.is_set(), timeout=5)
        proof = hs.read_field(self.frames[2] if len(self.frames) > 2 else None, hs.PROOF)
        self.kernel_proven = proof == hs.kernel_proof(token, self.port, nonce_p, nonce_k)
        self.send(hs.proof_frame(hs.page_proof(token, self.port, nonce_k, nonce_p)))
        wait_until(lambda: len(self.frames) > 3 or self.ended.is_set(), timeout=5)
        return self.frames[3:4] == [bytes([READY])]

    def messages(self, kind: int) -> list[tuple[dict[str, Any], bytes]]:
        """The kernel's frames of one kind after the handshake, decoded."""
        return [decode(f) for f in list(self.frames[HANDSHAKE:]) if f[:1] == bytes([kind])]

    def close(self) -> None:
        with contextlib.suppress(OSError):  # the kernel closed it first: nothing to shut down
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)


class SocketPage(CodecPage):
    """The page with a media socket: sends its chunks and acks over the socket while it is live,
    over the comm otherwise, and takes the kernel's chunks from either (in the kernel's order)."""

    def __init__(self, rec: RecordingComm) -> None:
        super().__init__(rec)
        self.wires: list[Wire] = []

    @property
    def wire(self) -> Wire | None:
        """The live socket: the newest, while it is open."""
        wire = self.wires[-1] if self.wires else None
        return wire if wire is not None and not wire.ended.is_set() else None

    def address(self) -> dict[str, Any]:
        assert wait_until(lambda: bool(self.rec.custom("media_socket")), timeout=5), "no media_socket"
        return self.rec.custom("media_socket")[-1]

    def connect(self, token: str | None = None) -> Wire:
        """Connect as the relay does and do the page's handshake (the kernel's token, unless given)."""
        address = self.address()
        wire = Wire(address["port"])
        self.wires.append(wire)
        assert wire.hello(address["token"] if token is None else token), "no READY"
        assert wire.kernel_proven, "the kernel did not prove it holds the token"
        return wire

    def _send(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        wire = self.wire
        if wire is None:
            self.rec.from_page(content, buffers)
            return
        body = encode(content, buffers or [])
        assert body is not None, content
        wire.send(body)

    def send_chunk(self, data: bytes, seq: int | None = None) -> int:
        self.seq = self.seq + 1 if seq is None else seq
        content = {"type": "chunk", "seq": self.seq, "key": is_key_chunk(data)}
        self._send(content | {"width": self.size[0], "height": self.size[1]}, [data])
        return self.seq

    def ack(self, seq: int) -> None:
        self._send({"type": "chunk_ack", "seq": seq})

    def ask_key(self) -> None:
        self._send({"type": "keyframe"})

    def socket_outputs(self) -> list[tuple[dict[str, Any], bytes]]:
        return [m for w in self.wires for m in w.messages(CHUNK)]

    def comm_outputs(self) -> list[tuple[dict[str, Any], bytes]]:
        return super().outputs()

    def outputs(self) -> list[tuple[dict[str, Any], bytes]]:
        return sorted(self.comm_outputs() + self.socket_outputs(), key=lambda o: o[0]["seq"])

    def acked(self) -> list[Any]:
        return super().acked() + [c["seq"] for w in self.wires for c, _ in w.messages(CHUNK_ACK)]

    def key_requests(self) -> int:
        return super().key_requests() + sum(len(w.messages(KEYFRAME)) for w in self.wires)

    def fill_window(self) -> None:
        """Take the outputs so far, then let IN_FLIGHT more come unacked: the kernel waits for room."""
        self.take_outputs()
        assert wait_until(lambda: len(self.outputs()) - self.done >= IN_FLIGHT, timeout=5)

    def close(self) -> None:
        for wire in self.wires:
            wire.close()


def pipe(s: Session) -> Any:
    return s.stats.get("pipe")


@pytest.fixture
def camera_page(comms: list[RecordingComm]) -> Iterator[tuple[Session, CameraWidget, SocketPage]]:
    with camera_session(SocketPage, comms) as made:
        yield made
        made[2].close()


@pytest.fixture
def output_page(comms: list[RecordingComm]) -> Iterator[tuple[Session, SocketPage]]:
    """A headless session (its output only) whose page has its media socket, the output flowing."""
    s = Session(source="pattern")
    page = SocketPage(comm_of(s.widget, comms))
    page.use_codec()
    page.connect()
    for _ in range(10):
        assert wait_until(lambda: len(page.outputs()) > page.done, timeout=5)
        page.take_outputs()
    assert page.socket_outputs(), "no output over the socket"
    yield s, page
    page.close()
    s.widget.close()
    s.disconnect()


# -- the wire format --------------------------------------------------------------------------------
def test_the_wire_format_is_the_specs() -> None:
    assert framed(b"abc") == b"\x03\x00\x00\x00abc"
    chunk = {"type": "chunk", "seq": 0x01020304, "key": True, "width": 640, "height": 360}
    body = encode(chunk, [b"vp8"])
    assert body == b"\x01\x04\x03\x02\x01\x01\x80\x02\x68\x01vp8"
    assert decode(body) == (chunk, b"vp8")
    assert decode(encode(chunk | {"key": False}, [b"x"]) or b"")[0]["key"] is False
    assert encode({"type": "chunk_ack", "seq": 7}) == b"\x02\x07\x00\x00\x00"
    assert decode(b"\x02\x07\x00\x00\x00") == ({"type": "chunk_ack", "seq": 7}, b"")
    assert encode({"type": "keyframe"}) == b"\x03"
    assert decode(b"\x03") == ({"type": "keyframe"}, b"")
    # What has no wire form goes over the comm.
    for content, buffers in [
        ({"type": "frame", "seq": 1, "width": 2, "height": 3}, [b"jpeg"]),
        ({"type": "restart"}, []),
        ({"type": "chunk_ack", "seq": "7"}, []),
        ({"type": "chunk_ack", "seq": 1 << 32}, []),
        (chunk, []),
        (chunk | {"width": 1 << 16}, [b"x"]),
    ]:
        assert encode(content, buffers) is None, content


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x09junk",
        b"\x00",  # READY is the kernel's
        b"\x01\x01\x00\x00\x00\x01\x80\x02\x68",  # a short chunk header
        b"\x01\x01\x00\x00\x00\x01\x80\x02\x68\x01",  # a header without a VP8 frame
        b"\x01\x01\x00\x00\x00\x07\x80\x02\x68\x01vp8",  # key byte 7
        b"\x02\x01\x00",
        b"\x02\x01\x00\x00\x00\x00",
        b"\x03\x03",
    ],
)
def test_a_malformed_body_is_refused(body: bytes) -> None:
    with pytest.raises(Malformed):
        decode(body)


# -- the listener on its own ----------------------------------------------------------------------------
class Listener:
    """A MediaSocket on a test's own loop, recording its callbacks."""

    def __init__(self) -> None:
        self.messages: list[tuple[dict[str, Any], bytes]] = []
        self.events: list[str] = []
        self.media = MediaSocket(
            lambda c, d: self.messages.append((c, d)),
            lambda: self.events.append("live"),
            lambda: self.events.append("lost"),
        )

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
        """A connection, MAGIC read; with the kernel's nonce."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.media.port)
        assert await read_frame(reader) == MAGIC
        nonce_k = hs.read_field(await read_frame(reader), hs.NONCE)
        assert nonce_k is not None
        return reader, writer, nonce_k

    async def go_live(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Start listening, connect and do the page's handshake: the connection is the live one."""
        await self.media.start()
        reader, writer, nonce_k = await self.connect()
        assert await page_handshake(reader, writer, self.media.token, self.media.port, nonce_k)
        return reader, writer


async def page_handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: str, port: int, nonce_k: bytes
) -> bool:
    """The page's side after the kernel's nonce: ours, the kernel's proof checked, ours; READY?"""
    nonce_p = hs.new_nonce()
    writer.write(framed(hs.nonce_frame(nonce_p)))
    proof = hs.read_field(await read_frame(reader), hs.PROOF)
    if proof != hs.kernel_proof(token, port, nonce_p, nonce_k):
        return False
    writer.write(framed(hs.proof_frame(hs.page_proof(token, port, nonce_k, nonce_p))))
    return await read_frame(reader) == bytes([READY])


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next frame; None when the kernel closed the connection."""
    try:
        (length,) = struct.unpack("<I", await asyncio.wait_for(reader.readexactly(4), 5))
        return await asyncio.wait_for(reader.readexactly(length), 5)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def test_the_listener_closes_a_connection_without_the_tokens_proof(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media_socket, "MEDIA_HELLO_TIMEOUT_S", 0.3)
    key_chunk = encode({"type": "chunk", "seq": 1, "key": True, "width": 2, "height": 2}, [b"vp8"])
    assert key_chunk is not None

    async def main() -> None:
        lis = Listener()
        port = await lis.media.start()
        assert port and await lis.media.start() == port, "one listener"
        token = lis.media.token
        wrong = ("A" if token[0] != "A" else "B") + token[1:]
        nonce = hs.nonce_frame(hs.new_nonce())
        for first in (
            framed(token.encode()),  # the token itself (the old hello) is no proof
            framed(key_chunk),  # anything else first
            framed(nonce) + framed(hs.proof_frame(bytes(hs.NONCE_SIZE))),  # a made-up proof
            framed(nonce) + framed(key_chunk),  # media instead of the proof
            struct.pack("<I", 1 << 20),  # a long hello: refused before it is read
            framed(nonce),  # no proof within MEDIA_HELLO_TIMEOUT_S
            None,  # nothing within MEDIA_HELLO_TIMEOUT_S
        ):
            reader, writer, _nonce_k = await lis.connect()
            if first is not None:
                writer.write(first + framed(key_chunk) + framed(b"\x03"))
            while (frame := await read_frame(reader)) is not None:  # the kernel's proof, at most
                assert frame[:1] == bytes([hs.PROOF]), f"{first!r:.40}: {frame!r:.40}"
            writer.close()
        reader, writer, nonce_k = await lis.connect()  # a wrong token's proof
        assert not await page_handshake(reader, writer, wrong, port, nonce_k)
        assert await read_frame(reader) is None
        assert lis.events == [] and lis.messages == [] and not lis.media.live
        reader, writer, nonce_k = await lis.connect()  # the listener lives on
        assert await page_handshake(reader, writer, token, port, nonce_k)
        writer.write(framed(b"\x03"))
        for _ in range(100):
            if lis.messages:
                break
            await asyncio.sleep(0.01)
        assert lis.events == ["live"] and lis.messages == [({"type": "keyframe"}, b"")]
        lis.media.close()
        assert await read_frame(reader) is None, "close() leaves the connection open"
        writer.close()
        assert lis.events == ["live"], "a callback after close()"

    asyncio.run(main())


def test_a_page_that_does_not_read_is_closed_before_much_queues() -> None:
    async def main() -> None:
        lis = Listener()
        _reader, writer = await lis.go_live()
        assert lis.media.live
        chunk = {"type": "chunk", "seq": 1, "key": False, "width": 2, "height": 2}
        data = bytes(1 << 20)
        sent = 0
        while lis.media.send(chunk, [data]):  # the page reads nothing
            sent += 1
            assert sent < 200, "the writes queue without bound"
            await asyncio.sleep(0)  # the loop writes what the kernel's socket takes
        assert not lis.media.live and not lis.media.send({"type": "keyframe"})
        for _ in range(100):
            if lis.events == ["live", "lost"]:
                break
            await asyncio.sleep(0.01)
        assert lis.events == ["live", "lost"]
        writer.close()
        lis.media.close()

    asyncio.run(main())


def test_a_frame_over_the_limit_closes_the_connection() -> None:
    async def main() -> None:
        lis = Listener()
        reader, writer = await lis.go_live()
        writer.write(struct.pack("<I", media_socket.MAX_FRAME + 1) + b"\x03")
        assert await read_frame(reader) is None
        assert lis.events == ["live", "lost"] and lis.messages == []
        writer.close()
        lis.media.close()

    asyncio.run(main())


# -- the widget, with PyAV as the page ------------------------------------------------------------------
def test_the_page_gets_the_socket_over_the_comm_and_the_token_stays_out_of_the_state(
    camera_page: tuple[Session, CameraWidget, SocketPage],
) -> None:
    s, widget, page = camera_page
    address = page.address()
    assert set(address) == {"type", "port", "token"}
    assert isinstance(address["port"], int) and address["port"] > 0
    assert isinstance(address["token"], str) and len(address["token"]) >= 32
    assert pipe(s) == "comm"
    page.use_codec()  # the same listener for the widget's life, whatever the transport
    assert all(m == address for m in page.rec.custom("media_socket"))
    page.connect()
    assert pipe(s) == "socket"
    token = address["token"]
    assert token not in json.dumps(widget.get_state(), default=repr)
    others = [d for t, d in page.rec.sent if not (t == "comm_msg" and d.get("content") == address)]
    assert token not in json.dumps(others, default=repr), "the token left the media_socket message"
    assert token not in json.dumps(s.stats, default=repr)
    assert token not in repr(widget) and token not in repr(widget._media), "the token in a repr"


def test_a_wrong_token_is_closed_and_nothing_is_delivered(
    camera_page: tuple[Session, CameraWidget, SocketPage],
) -> None:
    s, widget, page = camera_page
    address = page.address()
    token = address["token"]
    key = page.encode(key=True)
    chunk = encode({"type": "chunk", "seq": 1, "key": True, "width": 640, "height": 360}, [key])
    assert chunk is not None
    for first in (token.encode(), chunk):  # the token itself is no proof; nor is media
        wire = Wire(address["port"])
        page.wires.append(wire)
        assert wait_until(lambda wire=wire: len(wire.frames) == 2, timeout=5)
        wire.send(first)
        wire.send(chunk)
        assert wire.ended.wait(5), "the kernel kept a connection without its token"
        assert wire.frames[0] == MAGIC and len(wire.frames) == 2, "more than MAGIC and a nonce"
    wire = Wire(address["port"])  # a proof made with a wrong token
    page.wires.append(wire)
    assert not wire.hello(("A" if token[0] != "A" else "B") + token[1:])
    assert not wire.kernel_proven
    wire.send(chunk)
    assert wire.ended.wait(5), "the kernel kept a connection with a wrong proof"
    assert pipe(s) == "comm"
    # The right token: this chunk is the first one the kernel acks (the kernel acks every chunk
    # it receives, in order: one taken from the connections above would have been acked first).
    good = page.connect()
    good.send(chunk)
    assert wait_until(lambda: bool(good.messages(CHUNK_ACK)), timeout=5)
    assert page.acked() == [1], "a chunk from a connection without the token was taken"
    link = widget._comm
    assert isinstance(link, CodecLink) and link.frames_received <= 1


def test_over_the_socket_camera_chunks_reach_the_pipeline_and_the_output_comes_back_acked(
    camera_page: tuple[Session, CameraWidget, SocketPage],
) -> None:
    s, widget, page = camera_page
    wire = page.connect()
    sent = page.stream(seconds=3.0)
    assert wait_until(lambda: s.state == "generating", timeout=10), s.state
    assert sorted(c["seq"] for c, _ in wire.messages(CHUNK_ACK)) == list(range(1, sent + 1)), (
        "every camera chunk is acked over the socket"
    )
    stats = s.stats
    assert stats["frames_in"] >= 10, stats
    outputs = page.socket_outputs()
    assert len(outputs) >= 10 and len(page.decoded) >= 10, (len(outputs), len(page.decoded))
    assert outputs[0][0]["key"] and is_key_chunk(outputs[0][1]), "the stream starts at a key"
    for content, frame in page.decoded:
        assert (frame.width, frame.height) == (content["width"], content["height"])
    # More than IN_FLIGHT outputs: the acks that went over the socket freed the kernel's window.
    assert len(outputs) > IN_FLIGHT + 5
    comm = [c.get("type") for c in page.rec.custom()]
    assert not {"chunk", "chunk_ack", "keyframe"} & set(comm), f"media over the comm: {comm}"
    assert not page.comm_outputs()
    assert stats["transport"] == "codec" and stats["pipe"] == "socket", stats
    assert stats["transport_kbps_in"] > 0 and stats["transport_kbps_out"] > 0, stats
    port = page.address()["port"]
    widget.close()  # the socket closes with the widget
    assert wire.ended.wait(5), "the widget closed, its media socket did not"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_keyframe_request_over_the_socket_makes_the_next_output_chunk_a_key_frame(
    output_page: tuple[Session, SocketPage],
) -> None:
    s, page = output_page
    page.fill_window()  # the kernel waits for an ack: nothing is being encoded
    count = len(page.outputs())
    page.ask_key()  # the acks below follow it on the same socket
    page.take_outputs()
    assert wait_until(lambda: len(page.outputs()) > count, timeout=5)
    content, data = page.outputs()[count]
    assert content["key"] and is_key_chunk(data), "the request did not reach the encoder"
    assert content["seq"] in {c["seq"] for c, _ in page.socket_outputs()}, "it came over the comm"
    assert pipe(s) == "socket"


def test_a_second_connection_replaces_the_first(output_page: tuple[Session, SocketPage]) -> None:
    s, page = output_page
    first = page.wire
    assert first is not None
    page.fill_window()  # two chunks in flight on the first connection, never to be acked there
    count = len(page.outputs())
    second = page.connect()
    assert first.ended.wait(5), "the older connection was not closed"
    started = time.monotonic()
    assert wait_until(lambda: bool(second.messages(CHUNK)), timeout=QUICK_S), (
        "the output waited for the acks of chunks lost with the first connection"
    )
    assert time.monotonic() - started < QUICK_S
    content, data = second.messages(CHUNK)[0]
    assert content["key"] and is_key_chunk(data), "the new connection's output starts at a delta frame"
    for _ in range(5):  # acked over the new connection: the output goes on over it
        page.take_outputs()
        assert wait_until(lambda: len(page.outputs()) > page.done, timeout=5), "the output stalled"
    assert len(second.messages(CHUNK)) >= 5 and len(page.outputs()) > count
    assert pipe(s) == "socket"


def test_closing_the_socket_moves_the_output_back_to_the_comm_at_a_key_frame(
    output_page: tuple[Session, SocketPage],
) -> None:
    s, page = output_page
    wire = page.wire
    assert wire is not None
    comm_before = len(page.comm_outputs())
    page.fill_window()  # two chunks in flight on the socket, lost with it
    wire.close()
    assert wait_until(lambda: len(page.comm_outputs()) > comm_before, timeout=QUICK_S), (
        "the output waited for the acks of chunks lost with the socket"
    )
    assert pipe(s) == "comm"
    content, data = page.comm_outputs()[comm_before]
    assert content["key"] and is_key_chunk(data), "the comm's output starts at a delta frame"
    assert content["seq"] > max(c["seq"] for c, _ in page.socket_outputs())
    for _ in range(5):  # the page acks over the comm now: the output goes on
        page.take_outputs()
        assert wait_until(lambda: len(page.outputs()) > page.done, timeout=5), "the output stalled"
    assert len(page.decoded) == page.done, "a chunk did not decode"


def test_a_chunk_encoded_while_the_socket_closed_is_not_sent(
    output_page: tuple[Session, SocketPage], monkeypatch: pytest.MonkeyPatch
) -> None:
    s, page = output_page
    entered, release = threading.Event(), threading.Event()
    encode_chunk = CodecLink._encode

    def held(self: CodecLink, frame: Any, key: bool) -> Any:
        if not key and not release.is_set():
            entered.set()
            release.wait(10)
        return encode_chunk(self, frame, key)

    monkeypatch.setattr(CodecLink, "_encode", held)
    page.take_outputs()
    assert entered.wait(5), "no delta frame was encoded"
    wire = page.wire
    assert wire is not None
    comm_before = len(page.comm_outputs())
    wire.close()
    assert wait_until(lambda: pipe(s) == "comm", timeout=5)
    release.set()
    assert wait_until(lambda: len(page.comm_outputs()) > comm_before, timeout=5)
    content, data = page.comm_outputs()[comm_before]
    assert content["key"] and is_key_chunk(data), "a delta frame encoded for the closed socket was sent"


def test_malformed_frames_are_dropped_and_the_link_lives_on(
    camera_page: tuple[Session, CameraWidget, SocketPage], caplog: pytest.LogCaptureFixture
) -> None:
    s, _widget, page = camera_page
    wire = page.connect()
    bad = [
        b"",
        b"\x09junk",
        b"\x00",
        b"\x01\x01\x00",
        b"\x01\x01\x00\x00\x00\x07\x80\x02\x68\x01x",
        b"\x03\x03",
    ]
    with caplog.at_level(logging.WARNING, logger="decart_nb"):
        for body in bad:
            wire.send(body)
        sent = page.stream(seconds=1.5)  # over the same connection
    assert not wire.ended.is_set(), "a malformed frame closed the connection"
    assert sorted(c["seq"] for c, _ in wire.messages(CHUNK_ACK)) == list(range(1, sent + 1))
    assert wait_until(lambda: s.stats.get("frames_in", 0) > 0, timeout=10), s.stats
    assert page.socket_outputs(), "no output over the socket"
    dropped = [r for r in caplog.records if "dropped" in r.getMessage() and "media socket" in r.getMessage()]
    assert len(dropped) == 1, [r.getMessage() for r in caplog.records]  # the others are counted
    assert not s.errors, s.errors


# -- the page socket carries the page's messages (issue 18) ---------------------------------------------
def offers(rec: RecordingComm) -> int:
    return len(rec.custom("media_socket"))


@pytest.fixture
def quick_offers(monkeypatch: pytest.MonkeyPatch) -> tuple[float, ...]:
    """Resends of the socket's offer 0.2 and 1 s after the first (and on a comm message 1 s after
    the last offer: a second of margin for a busy machine between two messages of the test)."""
    after = (0.2, 1.0)
    monkeypatch.setattr(camera_module, "PAGE_SOCKET_OFFER_AFTER_S", after)
    return after


@pytest.fixture
def socket_camera(comms: list[RecordingComm]) -> Iterator[tuple[Session, CameraWidget, SocketPage]]:
    """A camera session whose page has done nothing yet (no transport chosen, nothing sent)."""
    s = Session(source="camera", mirror="auto")
    page = SocketPage(comm_of(s.widget, comms))
    try:
        yield s, s.widget, page
    finally:
        page.close()
        s.widget.close()
        s.disconnect()


def test_the_socket_is_offered_when_the_widget_is_made_and_again_until_a_connection_is_live(
    quick_offers: tuple[float, ...], socket_camera: tuple[Session, CameraWidget, SocketPage]
) -> None:
    _s, widget, page = socket_camera
    rec = page.rec
    # No `transport` message: the widget offers its socket as soon as it is made, then resends.
    assert wait_until(lambda: offers(rec) == 1 + len(quick_offers), timeout=5), rec.custom("media_socket")
    time.sleep(quick_offers[-1] + 0.1)
    assert offers(rec) == 1 + len(quick_offers), "resent past the schedule"
    # A page message over the comm after the last wait: the page may have missed them all.
    rec.from_page({"type": "devices", "devices": []})
    assert wait_until(lambda: offers(rec) == 2 + len(quick_offers), timeout=5)
    rec.from_page({"type": "devices", "devices": []})  # at most once per the last wait
    time.sleep(0.2)
    assert offers(rec) == 2 + len(quick_offers)
    wire = page.connect()
    count = offers(rec)
    time.sleep(0.8)
    rec.from_page({"type": "devices", "devices": []})
    time.sleep(0.2)
    assert offers(rec) == count, "offered again while a connection is live"
    # The live connection goes (the page was reloaded): the new page gets the offer again, and
    # once it connects, no more resends.
    wire.close()
    assert wait_until(lambda: offers(rec) > count, timeout=5), "no offer after the connection went"
    page.connect()
    count = offers(rec)
    time.sleep(quick_offers[-1] + 0.3)
    assert offers(rec) == count, "resent while a connection is live"
    assert all(m == page.address() for m in rec.custom("media_socket")), "one listener for the widget's life"
    assert not widget.get_state().get("token")


def test_page_messages_over_the_socket_reach_their_handlers(
    socket_camera: tuple[Session, CameraWidget, SocketPage],
) -> None:
    s, widget, page = socket_camera
    wire = page.connect()
    states: list[str] = []
    port_of(s).listen(lambda event, payload: event == "connection_change" and states.append(str(payload)))
    cams = [{"deviceId": "a1", "label": "Front"}]
    info = {"facingMode": "user", "label": "Front", "deviceId": "a1", "width": 1280, "height": 720}
    for content in (
        {"type": "camera", **info, "frameRate": 30},
        {"type": "devices", "devices": cams},
        {"type": "transport", "transport": "codec", "codec": "vp8", "reason": "UDP blocked: no path"},
        {"type": "page_stats", "fps_sent": 29.5, "fps_received": 12.0},
        {"type": "camera_error", "name": "NotReadableError", "message": "busy"},
        {"type": "reconnecting", "attempt": 1},
    ):
        wire.send(encode_message(content))
    assert wait_until(lambda: "reconnecting" in states, timeout=5), states
    assert widget.camera["label"] == "Front" and widget.devices == cams
    assert wait_until(s._core.mirror_now, timeout=5), "the camera's facing mode did not reach the session"
    assert widget.active_transport == "codec"
    assert s.errors and s.errors[-1].code == ErrorCode.CAMERA_BUSY
    stats = s.stats
    assert stats["transport"] == "codec" and stats["transport_reason"] == "UDP blocked: no path", stats
    assert stats["pipe"] == "socket" and stats.get("page_fps_sent") == 29.5, stats
    assert not page.rec.custom("answer_error")
    # Back on WebRTC: no reason.
    wire.send(encode_message({"type": "transport", "transport": "webrtc", "codec": "vp8", "reason": "x"}))
    assert wait_until(lambda: s.stats.get("transport") == "webrtc", timeout=5)
    assert s.stats["transport_reason"] == ""


def test_the_socket_handles_page_messages_in_the_order_sent(
    socket_camera: tuple[Session, CameraWidget, SocketPage],
) -> None:
    _s, widget, page = socket_camera
    wire = page.connect()
    seen: list[str] = []
    widget.observe(lambda change: seen.append(change["new"]["label"]), "camera")
    for n in range(40):
        wire.send(encode_message({"type": "camera", "facingMode": "", "label": str(n)}))
    assert wait_until(lambda: len(seen) == 40, timeout=5), seen
    assert seen == [str(n) for n in range(40)]


def test_malformed_message_frames_are_dropped_and_counted_in_one_warning(
    socket_camera: tuple[Session, CameraWidget, SocketPage], caplog: pytest.LogCaptureFixture
) -> None:
    s, widget, page = socket_camera
    bad = [
        bytes([MESSAGE]) + b"{not json",
        bytes([MESSAGE]) + b"\xff\xfe",
        bytes([MESSAGE]) + b"[1, 2]",
        bytes([MESSAGE]) + b'{"no": "type"}',
        encode_message({"type": "answer", "sdp": "x", "attempt": 1}),  # the kernel's, not the page's
        encode_message({"type": "chunk", "seq": 1, "key": True, "width": 2, "height": 2}),  # needs a buffer
        encode_message({"type": "devices", "devices": [], "pad": "x" * MAX_MESSAGE}),
    ]
    with caplog.at_level(logging.WARNING, logger="decart_nb"):
        wire = page.connect()
        for body in bad:
            wire.send(body)
        wire.send(encode_message({"type": "camera", "facingMode": "", "label": "after"}))
        assert wait_until(lambda: widget.camera.get("label") == "after", timeout=5), "the socket stopped"
        assert not wire.ended.is_set(), "a malformed message closed the connection"
        dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert len(dropped) == 1, dropped
        second = page.connect()  # a new connection's are counted with the others
        second.send(bad[0])
        second.send(encode_message({"type": "camera", "facingMode": "", "label": "second"}))
        assert wait_until(lambda: widget.camera.get("label") == "second", timeout=5)
        assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1
    assert not s.errors, s.errors


@pytest.mark.webrtc
def test_an_offer_over_the_socket_is_answered_while_the_main_thread_is_blocked(
    socket_camera: tuple[Session, CameraWidget, SocketPage],
) -> None:
    """The page's offer does not wait for the kernel's main thread (a running cell): the test's
    main thread sleeps in one blocking call while a page thread offers over the socket and
    connects (nothing is delivered through the recording comm: the kernel would read it only
    after the cell)."""
    s, _widget, page = socket_camera
    rec = page.rec
    wire = page.connect()
    result: dict[str, Any] = {}

    async def offer_and_connect() -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(StampedCamera(640, 360), direction="sendrecv")
        try:
            await pc.setLocalDescription(await pc.createOffer())
            wire.send(encode_message({"type": "offer", "sdp": pc.localDescription.sdp, "attempt": 7}))
            for _ in range(200):
                answers = rec.custom("answer")
                if answers:
                    result["answered"] = time.monotonic()
                    await pc.setRemoteDescription(RTCSessionDescription(sdp=answers[0]["sdp"], type="answer"))
                    break
                await asyncio.sleep(0.05)
            for _ in range(200):
                if pc.connectionState == "connected":
                    result["connected"] = time.monotonic()
                    break
                await asyncio.sleep(0.05)
            for _ in range(200):
                if s.state in ("connected", "generating"):
                    result["state"] = s.state
                    break
                await asyncio.sleep(0.05)
        finally:
            await pc.close()

    def play_the_page() -> None:
        asyncio.run(offer_and_connect())

    page_thread = threading.Thread(target=play_the_page, name="test-page")
    page_thread.start()
    page_thread.join(30)  # the "cell": the main thread blocks and reads no comm message meanwhile
    assert not page_thread.is_alive(), "the page did not finish"
    assert rec.custom("answer") and rec.custom("answer")[0]["attempt"] == 7, rec.custom()
    assert "answered" in result and "connected" in result, result
    assert result.get("state") in ("connected", "generating"), (result, s.state)


def test_the_socket_closes_with_the_sessions_connection_and_a_new_one_is_offered_before_the_restart(
    socket_camera: tuple[Session, CameraWidget, SocketPage],
) -> None:
    s, widget, page = socket_camera
    rec = page.rec
    first = page.address()
    wire = page.connect()
    s.disconnect()  # the media loop goes: no listener is left behind
    assert wire.ended.wait(5), "the socket outlived the session's connection"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", first["port"]), timeout=2).close()
    sent_before = len(rec.sent)
    s.connect()
    after = [d.get("content", {}) for t, d in rec.sent[sent_before:] if t == "comm_msg"]
    kinds = [c.get("type") for c in after]
    assert "media_socket" in kinds and "restart" in kinds, kinds
    assert kinds.index("media_socket") < kinds.index("restart"), (
        "the page restarts before it knows the socket"
    )
    second = after[kinds.index("media_socket")]
    assert (second["port"], second["token"]) != (first["port"], first["token"])
    wire = page.connect()
    wire.send(encode_message({"type": "camera", "facingMode": "", "label": "again"}))
    assert wait_until(lambda: widget.camera.get("label") == "again", timeout=5)
    widget.close()
    assert wire.ended.wait(5), "the socket outlived the widget"


def test_a_quick_reconnect_on_a_shared_loop_keeps_its_new_socket(
    socket_camera: tuple[Session, CameraWidget, SocketPage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another session keeps the media loop running, so the old socket's close and the new one's
    start queue on the same loop; a busy loop runs the close after connect() made the new one.
    The close must take the old one only."""
    s, widget, page = socket_camera
    call_soon = _loop.call_soon

    def late_close(fn: Any, *args: Any) -> None:  # the loop is busy when the session disconnects
        if getattr(fn, "__name__", "") in ("_close_page_socket", "_close_media"):
            _loop.get_loop().call_soon_threadsafe(_loop.get_loop().call_later, 0.3, fn, *args)
            return
        call_soon(fn, *args)

    monkeypatch.setattr(_loop, "call_soon", late_close)
    with Session(source="pattern"):  # holds the loop
        s.disconnect()
        s.connect()
        time.sleep(0.5)  # the close ran
        wire = page.connect()  # the newest offer's socket
        wire.send(encode_message({"type": "camera", "facingMode": "", "label": "kept"}))
        assert wait_until(lambda: widget.camera.get("label") == "kept", timeout=5)
        assert not wire.ended.is_set()
