"""The codec link (VP8, transport "codec") without a browser: PyAV plays the page (libvpx encodes
a moving pattern into VP8 chunks as WebCodecs would, one custom message with one buffer each, and
decodes the kernel's chunks), on a recording comm; and the VP8 encoder and decoder on their own."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any, TypeVar

import av
import numpy as np
import pytest

from decart_nb import ErrorCode, Session
from decart_nb.media.rate import IN_FLIGHT, MAX_IN_FLIGHT
from decart_nb.media.vp8 import Vp8Decoder, Vp8Encoder, is_key_chunk, key_frame_size
from decart_nb.widgets import frame_link
from decart_nb.widgets.camera import CameraWidget
from decart_nb.widgets.codec_link import MAX_PENDING, CodecLink
from tests.helpers import wait_until
from tests.test_widget import RecordingComm, comm_of, comms

__all__ = ["comms"]  # the recording-comm fixture, shared with test_widget.py


def pattern(width: int, height: int, n: int) -> av.VideoFrame:
    """A camera-like picture: gradients, colour bars and a block that moves with `n`."""
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = np.linspace(30, 220, width, dtype=np.float32)[None, :]
    rgb[..., 1] = np.linspace(200, 40, height, dtype=np.float32)[:, None]
    rgb[..., 2] = ((np.arange(width) * 6 // width) % 3 * 90 + 20)[None, :]
    x = (n * width // 50) % (width - width // 8)
    rgb[height // 3 : height // 2, x : x + width // 8] = 250
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


class CodecPage:
    """Plays the page's side of the codec transport: sends its camera as VP8 chunks (the next
    after the kernel's chunk_ack), acks the kernel's chunks and decodes them in order."""

    def __init__(self, rec: RecordingComm, size: tuple[int, int] = (640, 360)) -> None:
        self.rec = rec
        self.size = size
        self.seq = 0
        self.n = 0
        self.encoder = self._encoder()
        self.decoder = av.CodecContext.create("libvpx", "r")  # not the kernel's decoder (vp8)
        self.decoded: list[tuple[dict[str, Any], av.VideoFrame]] = []
        self.done = 0  # outputs decoded so far
        self.most_in_flight = 0  # receive_over: the most output chunks unacked at once
        self.requests_seen = 0

    def _encoder(self) -> av.VideoCodecContext:
        ctx = av.CodecContext.create("libvpx", "w")
        assert isinstance(ctx, av.VideoCodecContext)
        ctx.width, ctx.height, ctx.pix_fmt = *self.size, "yuv420p"
        ctx.bit_rate, ctx.time_base, ctx.gop_size = 800_000, Fraction(1, 30), 1 << 20
        ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        return ctx

    def use_codec(self) -> None:
        self.rec.from_page({"type": "transport", "transport": "codec", "codec": "vp8"})

    def encode(self, key: bool = False) -> bytes:
        frame = pattern(*self.size, self.n)
        frame.pts, self.n = self.n, self.n + 1
        frame.pict_type = av.video.frame.PictureType.I if key else av.video.frame.PictureType.NONE
        return b"".join(bytes(p) for p in self.encoder.encode(frame))

    def send_chunk(self, data: bytes, seq: int | None = None) -> int:
        self.seq = self.seq + 1 if seq is None else seq
        content = {"type": "chunk", "seq": self.seq, "key": is_key_chunk(data)}
        self.rec.from_page(content | {"width": self.size[0], "height": self.size[1]}, [data])
        return self.seq

    def acked(self) -> list[Any]:
        return [m["seq"] for m in self.rec.custom("chunk_ack")]

    def key_requests(self) -> int:
        return len(self.rec.custom("keyframe"))

    def outputs(self) -> list[tuple[dict[str, Any], bytes]]:
        return [(c, b[0]) for c, b in list(self.rec.binary) if c.get("type") == "chunk"]

    def ack(self, seq: int) -> None:
        self.rec.from_page({"type": "chunk_ack", "seq": seq})

    def take_outputs(self, ack: bool = True, count: int | None = None) -> None:
        """Decode every new output chunk (or the next `count`) in order, acking each first, as the
        page does."""
        new = self.outputs()[self.done :]
        for content, data in new if count is None else new[:count]:
            if ack:
                self.ack(content["seq"])
            for frame in self.decoder.decode(av.Packet(data)):
                self.decoded.append((content, frame))
            self.done += 1

    def receive_over(self, mbit: float, seconds: float, rtt: float = 0.004) -> list[tuple[float, int]]:
        """Take the output through a simulated link: one FIFO line (a chunk's bytes take
        bytes * 8 / bandwidth once the chunks ahead of it have left) and a round trip on top; each
        chunk is acked and decoded when it would have arrived. Returns (ack time, bytes) of each."""
        acked: list[tuple[float, int]] = []
        due: deque[tuple[float, int]] = deque()
        seen, free_at, end = self.done, 0.0, time.monotonic() + seconds
        while time.monotonic() < end:
            now, outputs = time.monotonic(), self.outputs()
            self.most_in_flight = max(self.most_in_flight, len(outputs) - self.done)
            for _content, data in outputs[seen:]:
                free_at = max(now, free_at) + len(data) * 8 / (mbit * 1e6)
                due.append((free_at + rtt, len(data)))
            seen = len(outputs)
            while due and due[0][0] <= now:
                due.popleft()
                self.take_outputs(count=1)
                acked.append((now, len(outputs[self.done - 1][1])))
            time.sleep(0.001)
        return acked

    def stream(self, seconds: float, fps: int = 30) -> int:
        """Send the camera as the page does and take the kernel's output; returns chunks sent."""
        sent, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.monotonic()
            key = sent == 0 or self.key_requests() > self.requests_seen
            self.requests_seen = self.key_requests()
            seq = self.send_chunk(self.encode(key))
            sent += 1
            assert wait_until(lambda seq=seq: seq in self.acked(), timeout=5), f"chunk {seq} was never acked"
            self.take_outputs()
            time.sleep(max(0.0, start + 1 / fps - time.monotonic()))
        return sent


def transport_of(widget: CameraWidget) -> CodecLink:
    link = widget._comm
    assert isinstance(link, CodecLink), link
    return link


def idle(link: CodecLink) -> CodecLink:
    """`link` once it has decoded all it received."""
    assert wait_until(lambda: not link._pending and not link._decoding, timeout=5)
    return link


P = TypeVar("P", bound=CodecPage)


@contextlib.contextmanager
def camera_session(
    page_type: Callable[[RecordingComm], P], comms: list[RecordingComm]
) -> Iterator[tuple[Session, CameraWidget, P]]:
    """A camera session over the comm whose page (a `page_type`) uses the codec transport."""
    s = Session(source="camera", prompt="pencil sketch")
    widget = s.widget
    widget.transport = "codec"
    page = page_type(comm_of(widget, comms))
    page.use_codec()
    try:
        yield s, widget, page
    finally:
        widget.close()
        s.disconnect()


@pytest.fixture
def camera_page(comms: list[RecordingComm]) -> Iterator[tuple[Session, CameraWidget, CodecPage]]:
    with camera_session(CodecPage, comms) as made:
        yield made


# -- the widget, with PyAV as the page ---------------------------------------------------------------
def test_camera_chunks_come_back_as_transformed_vp8_at_the_rungs_size(
    camera_page: tuple[Session, CameraWidget, CodecPage],
) -> None:
    s, widget, page = camera_page
    assert widget.active_transport == "codec"
    sent = page.stream(seconds=3.0)
    assert wait_until(lambda: s.state == "generating", timeout=10), s.state
    assert len(page.acked()) == sent, "every camera chunk is acked"
    stats = s.stats
    assert (stats["width"], stats["height"]) == (1280, 720), "the camera is scaled to the model's size"
    assert stats["frames_in"] >= 10, stats
    assert len(page.decoded) >= 10, len(page.decoded)
    for content, frame in page.decoded:  # each chunk decodes at the size it announces
        assert (frame.width, frame.height) == (content["width"], content["height"])
    assert page.outputs()[0][0]["key"] and is_key_chunk(page.outputs()[0][1]), "the stream starts at a key"
    content, frame = page.decoded[-1]
    rung = transport_of(widget).rate
    assert rung is not None and (content["width"], content["height"]) in {
        (r.width, r.height) for r in rung.rungs
    }
    out = frame.to_ndarray(format="rgb24")
    sent_picture = pattern(content["width"], content["height"], 0).to_ndarray(format="rgb24")
    assert float(out.std()) > 5, "the output is a flat picture"
    assert float(np.abs(out.astype(np.int16) - sent_picture).mean()) > 10, (
        "the output is the camera, untransformed"
    )
    assert stats["transport"] == "codec"
    assert stats["transport_kbps_in"] > 0 and stats["transport_kbps_out"] > 0, stats
    assert (stats["transport_width_in"], stats["transport_height_in"]) == page.size, stats
    assert stats["transport_width_out"] == content["width"], stats


def test_a_camera_chunk_is_acked_once_decoded(
    camera_page: tuple[Session, CameraWidget, CodecPage], monkeypatch: pytest.MonkeyPatch
) -> None:
    _s, widget, page = camera_page
    release = threading.Event()
    decode = CodecLink._decode

    def held(self: CodecLink, *args: Any) -> Any:
        release.wait(10)
        return decode(self, *args)

    monkeypatch.setattr(CodecLink, "_decode", held)
    page.send_chunk(page.encode(key=True))
    page.send_chunk(page.encode())
    time.sleep(0.5)
    assert page.acked() == [], "acked before the decoder had it: a busy kernel would not show"
    release.set()
    assert wait_until(lambda: page.acked() == [1, 2], timeout=5), page.acked()
    page.send_chunk(page.encode(), seq=5)  # after a gap: dropped until a key frame, acked at once
    assert wait_until(lambda: page.acked() == [1, 2, 5], timeout=5), page.acked()
    assert transport_of(widget).keyframes_asked >= 1


def test_at_most_two_output_chunks_are_in_flight_until_the_page_acks_then_the_window(
    comms: list[RecordingComm],
) -> None:
    assert IN_FLIGHT == 2
    with Session(source="pattern") as s:
        page = CodecPage(comm_of(s.widget, comms))
        page.use_codec()  # a headless session shows its output over the comm too
        assert wait_until(lambda: len(page.outputs()) == 2, timeout=10)
        time.sleep(1.0)  # the pattern runs at 30 fps all along
        assert len(page.outputs()) == 2, "the kernel sent more chunks than its window allows"
        page.ack(page.outputs()[1][0]["seq"])  # the newer one: acks free the window in any order
        # That ack took over a second: a long round trip, so the window is the most, MAX_IN_FLIGHT.
        rate = transport_of(s.widget).rate
        assert rate is not None
        assert wait_until(lambda: rate.window == MAX_IN_FLIGHT, timeout=5), rate.window
        page.ack(page.outputs()[0][0]["seq"])
        assert wait_until(lambda: len(page.outputs()) == 2 + MAX_IN_FLIGHT, timeout=10)
        time.sleep(0.5)
        assert len(page.outputs()) == 2 + MAX_IN_FLIGHT, "the kernel sent more chunks than its window allows"
        page.take_outputs()  # acks every chunk, the one acked above again: ignored
        assert wait_until(lambda: len(page.outputs()) >= 3 + MAX_IN_FLIGHT, timeout=5)
        # Acking at once: once the rate controller has seen quick acks (a second: the stalls above
        # read as latency until then), the stream runs near the model's rate, each chunk in order.
        for seconds in (1.5, 2.0):  # a warm-up, then the measured span
            start, n0 = time.monotonic(), len(page.outputs())
            while time.monotonic() - start < seconds:
                page.take_outputs()
                time.sleep(0.005)
        rate = (len(page.outputs()) - n0) / (time.monotonic() - start)
        assert 10 <= rate <= s.model.fps * 1.2, rate
        assert len(page.decoded) == page.done, "a chunk did not decode"
        s.widget.close()


def test_a_keyframe_request_makes_the_next_chunk_a_key_frame(comms: list[RecordingComm]) -> None:
    with Session(source="pattern") as s:
        page = CodecPage(comm_of(s.widget, comms))
        page.use_codec()
        for _ in range(20):
            assert wait_until(lambda: len(page.outputs()) > page.done, timeout=5)
            page.take_outputs()
        sizes = [(c["width"], c["height"], c["key"]) for c, _ in page.outputs()]
        unasked = [b for a, b in itertools.pairwise(sizes) if b[2] and a[:2] == b[:2]]
        assert not unasked, "key frames came unasked (not on a new rung)"
        page.rec.from_page({"type": "keyframe"})
        count = len(page.outputs())
        # A frame the encoder had already started when the request came is still a delta: the key
        # frame is the first chunk encoded after the request, one of the next two
        for _ in range(2):
            page.take_outputs()
            assert wait_until(lambda: len(page.outputs()) > page.done, timeout=5)
        after = page.outputs()[count : count + 2]
        keys = [(content, data) for content, data in after if content["key"]]
        assert keys, f"no key frame among the two chunks after the request: {[c['key'] for c, _ in after]}"
        content, data = keys[0]
        assert is_key_chunk(data)
        fresh = av.CodecContext.create("libvpx", "r")  # a decoder that saw nothing before
        (frame,) = fresh.decode(av.Packet(data))
        assert (frame.width, frame.height) == (content["width"], content["height"])
        s.widget.close()


def test_a_corrupt_chunk_asks_for_a_key_frame_and_the_stream_goes_on(
    camera_page: tuple[Session, CameraWidget, CodecPage],
) -> None:
    s, _widget, page = camera_page
    page.stream(seconds=1.0)
    asked = page.key_requests()
    good = page.encode()
    page.send_chunk(good[:10] + bytes(255 - b for b in good[10:]))  # a delta frame, mangled
    assert wait_until(lambda: page.key_requests() > asked, timeout=5), "no key frame request"
    assert wait_until(lambda: bool(s.errors), timeout=5)
    assert s.errors[-1].code == ErrorCode.INVALID_INPUT
    frames_in = s.stats["frames_in"]
    page.stream(seconds=1.5)  # answers the request with a key frame
    assert wait_until(lambda: s.stats["frames_in"] > frames_in + 10, timeout=10), s.stats
    assert s.state == "generating"


def test_a_gap_in_the_sequence_asks_for_a_key_frame_and_waits_for_it(
    camera_page: tuple[Session, CameraWidget, CodecPage],
) -> None:
    s, widget, page = camera_page
    page.stream(seconds=1.0)
    link = idle(transport_of(widget))
    asked, delivered = page.key_requests(), link.frames_received
    page.encode()  # a chunk the kernel never gets
    page.send_chunk(page.encode(), seq=page.seq + 2)
    assert wait_until(lambda: page.key_requests() > asked, timeout=5)
    for _ in range(3):  # deltas after the gap are acked but not decoded (they would not decode)
        page.send_chunk(page.encode())
    time.sleep(0.3)
    assert link.frames_received == delivered
    assert not s.errors, s.errors
    page.send_chunk(page.encode(key=True))
    assert wait_until(lambda: link.frames_received > delivered, timeout=5)


def test_a_burst_of_chunks_is_all_decoded_and_nothing_queues(
    camera_page: tuple[Session, CameraWidget, CodecPage],
) -> None:
    s, widget, page = camera_page
    page.stream(seconds=0.5)
    link = idle(transport_of(widget))
    before = link.frames_received
    chunks = [page.encode() for _ in range(MAX_PENDING // 2)]
    for data in chunks:  # faster than a page may send: no waiting for acks
        page.send_chunk(data)
    assert wait_until(lambda: len(page.acked()) == page.seq, timeout=5), "an ack is missing"
    idle(link)
    assert link.frames_received > before, "nothing was delivered"
    assert not s.errors, "a chunk of the burst did not decode: one was skipped"
    # Far more than MAX_PENDING at once: the kernel starts over at a key frame instead of queueing.
    asked = page.key_requests()
    for _ in range(MAX_PENDING * 3):
        page.send_chunk(page.encode())
        assert len(link._pending) <= MAX_PENDING
    assert wait_until(lambda: not link._pending, timeout=10)
    assert page.key_requests() >= asked


def run_over(
    comms: list[RecordingComm], mbit: float, seconds: float, rtt: float = 0.004
) -> tuple[CodecLink, list[tuple[float, int]], int]:
    """A grainy headless session's output taken through a simulated link (CodecPage.receive_over);
    the link, the acks and the most chunks seen in flight at once."""
    with Session(source=grainy()) as s:
        page = CodecPage(comm_of(s.widget, comms))
        page.use_codec()
        acked = page.receive_over(mbit, seconds, rtt)
        link = transport_of(s.widget)
        assert len(page.decoded) == page.done, "a chunk did not decode"
        s.widget.close()
        return link, acked, page.most_in_flight


def test_acks_slowed_by_a_narrow_link_lower_the_bitrate_and_the_rung(comms: list[RecordingComm]) -> None:
    wide, wide_acks, _ = run_over(comms, 50.0, 3.0)
    narrow, narrow_acks, _ = run_over(comms, 0.3, 5.0)  # 300 kbit/s: each chunk's ack waits for its bytes
    assert wide.rate is not None and narrow.rate is not None
    assert wide.rate.kbps > 1000, "acks at once let the bitrate grow"
    assert narrow.rate.kbps < 300, narrow.rate.kbps
    assert narrow.rate.rung.width < wide.rate.rung.width, (narrow.rate.rung, wide.rate.rung)
    last = [n for _, n in narrow_acks[-10:]]
    assert np.mean(last) < np.mean([n for _, n in wide_acks[-10:]]) / 2


def test_a_long_round_trip_widens_the_window_and_keeps_the_frame_rate(comms: list[RecordingComm]) -> None:
    # 150 ms whatever the size (a remote kernel): two chunks in flight would allow ~13 a second;
    # the window holds the chunks a round trip needs at the model's rate instead, and the sender
    # does not read the wait as a full link.
    link, _, most = run_over(comms, 1000.0, 5.0, rtt=0.15)
    assert link.rate is not None
    assert link.rate.latency == pytest.approx(0.15, abs=0.03)
    assert link.rate.fps == 30, link.rate.fps
    assert link.rate.window >= 6, link.rate.window  # floor(1.5 * (0.15 * 30 + 1)) = 8
    assert most > IN_FLIGHT, f"at most {most} chunks were in flight"
    assert link.rate.kbps > 200, "the wait was read as a full link"


def grainy(width: int = 1280, height: int = 720) -> Iterator[np.ndarray]:
    """Endless RGB frames of the moving pattern under film grain: costly to encode, so only the
    rate control keeps their bitrate down."""
    rng = np.random.default_rng(3)
    frames = []
    for n in range(8):
        rgb = pattern(width, height, n * 4).to_ndarray(format="rgb24").astype(np.int16)
        rgb += rng.integers(-16, 16, (height, width, 1), dtype=np.int16)
        frames.append(np.clip(rgb, 0, 255).astype(np.uint8))
    n = 0
    while True:
        yield frames[n % len(frames)]
        n += 1


@pytest.mark.parametrize("mbit", [1.0, 5.0])
def test_the_output_fits_a_slow_link_at_a_steady_frame_rate(comms: list[RecordingComm], mbit: float) -> None:
    with Session(source=grainy()) as s:
        page = CodecPage(comm_of(s.widget, comms))
        page.use_codec()
        acked = [a for a in page.receive_over(mbit, seconds=7.0) if a[0] > time.monotonic() - 3.0]
        span = acked[-1][0] - acked[0][0]
        kbps, fps = sum(n for _, n in acked[1:]) * 8 / 1000 / span, (len(acked) - 1) / span
        assert kbps < mbit * 1000 * 0.8, f"{kbps:.0f} kbps on a {mbit} Mbit/s link"
        # Measured on this 2-core machine while busy: 1 Mbit/s 532 kbps at 28 fps, 5 Mbit/s 2247 kbps
        # at 22 fps (idle: 29 and 25 fps). The floor leaves room for a busier one.
        assert fps >= 12, f"{fps:.1f} fps"
        assert len(page.decoded) == page.done, "a chunk did not decode"
        s.widget.close()


def test_a_lost_ack_is_followed_by_a_key_frame(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frame_link, "ACK_TIMEOUT_S", 0.4)
    with Session(source="pattern") as s:
        page = CodecPage(comm_of(s.widget, comms))
        page.use_codec()
        assert wait_until(lambda: len(page.outputs()) >= IN_FLIGHT + 2, timeout=10)  # never acked
        outputs = [c["key"] for c, _ in page.outputs()]
        assert outputs[0], "the stream starts at a key frame"
        assert all(outputs[IN_FLIGHT : IN_FLIGHT + 2]), "a chunk sent after a lost one is not a key frame"
        s.widget.close()


def test_the_page_can_move_between_jpeg_and_codec(comms: list[RecordingComm]) -> None:
    with Session(source="pattern") as s:
        rec = comm_of(s.widget, comms)
        page = CodecPage(rec)
        page.use_codec()
        assert wait_until(lambda: bool(page.outputs()), timeout=10)
        rec.from_page({"type": "transport", "transport": "jpeg"})
        assert s.widget.active_transport == "jpeg"
        assert wait_until(lambda: any(c.get("type") == "frame" for c, _ in list(rec.binary)), timeout=10)
        assert s.stats["transport"] == "jpeg"
        s.widget.close()


# -- the codec on its own -------------------------------------------------------------------------------
def test_the_encoder_follows_the_bitrate_without_key_frames_and_restarts_on_a_new_size() -> None:
    encoder, decoder = Vp8Encoder(), Vp8Decoder()
    sizes, keys = [], []
    rng = np.random.default_rng(7)
    for n in range(90):
        kbps = 1500 if n < 45 else 300
        busy = pattern(640, 360, n).to_ndarray(format="rgb24").astype(np.int16)
        busy += rng.integers(-16, 16, (360, 640, 1), dtype=np.int16)  # grain: it takes the bits it gets
        frame = av.VideoFrame.from_ndarray(np.clip(busy, 0, 255).astype(np.uint8), format="rgb24")
        data, key = encoder.encode(frame, 640, 360, kbps, 30, key=n == 70)
        sizes.append(len(data))
        keys.append(key)
        frame = decoder.decode(data)
        assert frame is not None and (frame.width, frame.height) == (640, 360)
    assert [n for n, key in enumerate(keys) if key] == [0, 70]
    kbps_before, kbps_after = (np.mean(sizes[a:b]) * 8 * 30 / 1000 for a, b in ((30, 45), (60, 70)))
    assert 1000 < kbps_before < 2000 and 150 < kbps_after < 450, (kbps_before, kbps_after)
    data, key = encoder.encode(pattern(1280, 720, 90), 320, 180, 300, 30)
    assert key and key_frame_size(data) == (320, 180)
    scaled = decoder.scaled(decoder.decode(data), 1280, 720)  # type: ignore[arg-type]
    assert (scaled.width, scaled.height, scaled.format.name) == (1280, 720, "yuv420p")


def test_the_decoder_refuses_garbage_and_a_delta_without_its_key_with_a_code() -> None:
    encoder, decoder = Vp8Encoder(), Vp8Decoder()
    chunks = [encoder.encode(pattern(320, 180, n), 320, 180, 300, 30)[0] for n in range(3)]
    for bad in (b"\x01not vp8 at all", chunks[2]):
        with pytest.raises(Exception) as info:
            decoder.decode(bad)
        assert getattr(info.value, "code", None) == ErrorCode.INVALID_INPUT
    assert decoder.decode(chunks[0]) is not None  # a key frame starts it again


def test_a_model_switch_moves_the_output_to_the_new_models_ladder(
    camera_page: tuple[Session, CameraWidget, CodecPage],
) -> None:
    s, widget, page = camera_page
    page.stream(seconds=1.0)
    s.switch_model("lucy-restyle-2")  # 1280x704: the page restarts and announces its transport again
    assert page.rec.custom("restart")
    page.use_codec()
    page.stream(seconds=1.5)
    assert wait_until(lambda: s.state == "generating", timeout=10), s.state
    assert wait_until(lambda: s.stats["height"] == 704, timeout=5), s.stats
    rate = transport_of(widget).rate
    assert rate is not None and (rate.rungs[0].width, rate.rungs[0].height) == (1280, 704)
    page.stream(seconds=0.5)
    content, frame = page.decoded[-1]
    assert (content["width"], content["height"]) in {(r.width, r.height) for r in rate.rungs}
    assert (frame.width, frame.height) == (content["width"], content["height"])
