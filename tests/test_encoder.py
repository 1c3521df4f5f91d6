"""The kernel's VP8 encoders: WebRTC's (rtc/encoder.py: aiortc's settings without the denoiser) and
the codec transport's (media/vp8.py: one thread: two wait for each other on a busy machine)."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterFrame

from decart_nb import Session
from decart_nb.media import vp8
from decart_nb.media.sources import PatternTrack
from decart_nb.rtc.encoder import OutputVp8Encoder
from tests.rtc_client import BrowserPeer


def pattern(count: int, width: int = 640, height: int = 360) -> list[av.VideoFrame]:
    track = PatternTrack(width, height, 30)

    async def make() -> list[av.VideoFrame]:
        return [await track._make(n) for n in range(count)]

    return asyncio.run(make())


def test_frames_decode_back_to_the_picture_with_the_denoiser_off() -> None:
    encoder = OutputVp8Encoder()
    frames = pattern(3)
    decoder = Vp8Decoder()
    for n, frame in enumerate(frames):
        payloads, timestamp = encoder.encode(frame, force_keyframe=n == 0)
        assert payloads and all(len(p) <= 1300 + 10 for p in payloads)
        data = b"".join(vp8_depayload(p) for p in payloads)
        (out,) = decoder.decode(JitterFrame(data=data, timestamp=timestamp))
        assert (out.width, out.height) == (640, 360)
        error = np.abs(out.to_ndarray()[:360].astype(int) - frame.to_ndarray()[:360].astype(int)).mean()
        assert error < 8, error


def test_it_differs_from_aiortcs_encoder_only_by_the_denoiser_on_noisy_input() -> None:
    rng = np.random.default_rng(5)
    noisy = []
    for frame in pattern(6):
        y = frame.to_ndarray().astype(np.int16)
        y += rng.integers(-12, 13, y.shape, dtype=np.int16)
        noisy.append(av.VideoFrame.from_ndarray(np.clip(y, 0, 255).astype(np.uint8), format="yuv420p"))
    ours, theirs = OutputVp8Encoder(), Vp8Encoder()
    ours.picture_id = theirs.picture_id = 0
    first_ours = [b"".join(ours.encode(f, n == 0)[0]) for n, f in enumerate(noisy)]
    first_theirs = [b"".join(theirs.encode(f, n == 0)[0]) for n, f in enumerate(noisy)]
    assert first_ours[0] == first_theirs[0]  # a keyframe: nothing to denoise against yet
    assert first_ours[1:] != first_theirs[1:]  # the temporal denoiser changes later frames


def test_a_new_size_or_a_bitrate_move_over_ten_percent_reopens_the_context() -> None:
    encoder = OutputVp8Encoder()
    small, big = pattern(1)[0], pattern(1, 1280, 720)[0]
    encoder.encode(small)
    first = encoder.codec
    encoder.target_bitrate = int(encoder.target_bitrate * 1.05)
    encoder.encode(small)
    assert encoder.codec is first  # within 10 %: kept
    encoder.target_bitrate = encoder.target_bitrate * 2
    encoder.encode(small)
    assert encoder.codec is not first and encoder.codec is not None
    assert encoder.codec.bit_rate == encoder.target_bitrate
    second = encoder.codec
    encoder.encode(big)
    assert encoder.codec is not second and encoder.codec.width == 1280


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (960, 540), (640, 360)])
def test_the_codec_transports_encoder_runs_on_one_thread(width: int, height: int) -> None:
    """Two libvpx threads wait for each other on a busy machine (a 720p frame's median went from
    7-13 ms to 24-46 ms at load average 6): one thread at every rung."""
    assert vp8.ENCODE_THREADS == 1
    frame = pattern(1, 1280, 720)[0]
    encoder, decoder = vp8.Vp8Encoder(), vp8.Vp8Decoder()
    data, key = encoder.encode(frame, width, height, 2000.0, 30.0, key=True)
    assert encoder._ctx is not None and encoder._ctx.thread_count == 1
    out = decoder.decode(data)
    assert key and out is not None and (out.width, out.height) == (width, height)
    source = decoder.scaled(frame, width, height).to_ndarray()[:height].astype(int)
    error = np.abs(out.to_ndarray()[:height].astype(int) - source).mean()
    assert error < 8, error


@pytest.mark.webrtc
@pytest.mark.parametrize(("codec", "ours"), [("video/VP8", True), ("video/H264", False)])
def test_the_kernel_sends_vp8_through_its_encoder_and_h264_through_aiortcs(codec: str, ours: bool) -> None:
    async def scenario() -> None:
        with Session(source="pattern") as session:  # the page's offer decides the codec
            peer = BrowserPeer(codec=codec)
            await peer.connect(session)
            await peer.wait_frames(10)
            (kernel_peer,) = session._peers.peer_set.peers
            senders = [s for s in kernel_peer.pc.getSenders() if s.track is not None]
            encoder = senders[0]._RTCRtpSender__encoder  # type: ignore[attr-defined]
            assert isinstance(encoder, OutputVp8Encoder) is ours
            stamps = [f.stamp for f in peer.frames if f.stamp is not None]
            assert len(stamps) >= 5 and stamps == sorted(stamps)
            await peer.close()

    asyncio.run(scenario())
