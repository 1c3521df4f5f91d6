"""Marker-bit frame completion, checked against aiortc's own JitterBuffer packet by packet."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

import aiortc
import pytest
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from decart_nb.rtc import jitter
from decart_nb.rtc.jitter import MarkerJitterBuffer, complete_frames_on_marker

CAPACITY = 512


@dataclass(frozen=True)
class Emitted:
    at: int  # index of the packet whose arrival released the frame
    timestamp: int
    data: bytes


def stream(frames: int, per_frame: int = 3, first_seq: int = 1000) -> list[RtpPacket]:
    """`frames` frames of `per_frame` packets, in order; the last packet of each has the marker."""
    packets = []
    seq = first_seq
    for f in range(frames):
        for i in range(per_frame):
            p = RtpPacket(
                payload_type=96,
                marker=int(i == per_frame - 1),
                sequence_number=seq % 65536,
                timestamp=3000 * (f + 1),
                payload=b"x",
            )
            p._data = bytes([f % 256, i])  # type: ignore[attr-defined]  # what depayload() sets
            packets.append(p)
            seq += 1
    return packets


def feed(buffer: JitterBuffer, packets: list[RtpPacket]) -> list[Emitted]:
    out = []
    for at, packet in enumerate(packets):
        _pli, frame = buffer.add(packet)
        if frame is not None:
            out.append(Emitted(at, frame.timestamp, frame.data))
    return out


def both(packets: list[RtpPacket]) -> tuple[list[Emitted], list[Emitted]]:
    return (
        feed(MarkerJitterBuffer(capacity=CAPACITY, is_video=True), packets),
        feed(JitterBuffer(capacity=CAPACITY, is_video=True), packets),
    )


def whole_frames(sent: list[RtpPacket]) -> dict[int, bytes]:
    """Timestamp -> the complete frame's bytes, from the sender's packets in sending order."""
    frames: dict[int, bytes] = {}
    for p in sent:
        frames[p.timestamp] = frames.get(p.timestamp, b"") + p._data  # type: ignore[attr-defined]
    return frames


def test_in_order_frames_are_released_on_their_marker_packet() -> None:
    packets = stream(10)
    ours, theirs = both(packets)
    # The first frame's head is unknown (the stream may have been joined mid-frame): it leaves by
    # aiortc's rule; every later frame leaves on its marker packet.
    assert [e.at for e in ours] == [3] + [3 * f + 2 for f in range(1, 10)]
    # aiortc waits for the next frame's first packet (and never releases the last frame).
    assert [e.at for e in theirs] == [3 * f + 3 for f in range(9)]
    assert [(e.timestamp, e.data) for e in ours[:9]] == [(e.timestamp, e.data) for e in theirs]
    assert ours[0].data == bytes([0, 0, 0, 1, 0, 2])


def test_single_packet_frames_are_never_later_than_aiortc() -> None:
    # One frame per add(): once a fallback release leaves a complete frame behind, single-packet
    # frames keep that one-frame lag (as in aiortc); multi-packet frames catch up at their marker.
    ours, theirs = both(stream(5, per_frame=1))
    assert ours == theirs
    ours, _ = both(stream(3, per_frame=1) + stream(2, per_frame=3, first_seq=1003)[:3])
    assert [e.at for e in ours] == [1, 2, 3, 5]


def test_a_frame_without_marker_falls_back_to_the_timestamp_rule() -> None:
    packets = stream(4)
    packets[5].marker = 0  # frame 1's marker bit never shows up
    ours, theirs = both(packets)
    assert [e.at for e in ours] == [3, 6, 8, 11]  # frame 1 leaves when frame 2 begins
    assert [e.data for e in ours[:3]] == [e.data for e in theirs]


def test_lost_marker_packet_holds_the_frame_until_it_is_retransmitted() -> None:
    packets = stream(4)
    lost = packets.pop(5)  # frame 1's marker packet
    ours, theirs = both(packets)
    # Frame 1 is incomplete: nothing after frame 0 is released, by either buffer.
    assert [e.timestamp for e in ours] == [3000]
    assert [e.timestamp for e in theirs] == [3000]
    ours, theirs = both([*packets, lost])  # the NACKed packet comes back last
    whole = whole_frames(stream(4))
    assert ours[-1].at == len(packets) and ours[-1].data == whole[6000]
    assert theirs[-1].data == whole[6000]


def test_lost_middle_packet_never_yields_a_partial_frame() -> None:
    packets = stream(4)
    del packets[4]  # frame 1's middle packet, gone for good
    ours, theirs = both(packets)
    assert [e.timestamp for e in ours] == [3000]
    assert all(e.data == whole_frames(stream(4))[e.timestamp] for e in ours)
    assert [e.timestamp for e in theirs] == [3000]


def test_reordered_packets_release_the_frame_when_it_is_whole() -> None:
    packets = stream(3)
    packets[3], packets[4], packets[5] = packets[5], packets[3], packets[4]  # marker first
    ours, theirs = both(packets)
    whole = whole_frames(stream(3))
    assert [e.at for e in ours] == [4, 5, 8]
    assert [e.data for e in ours] == [whole[3000], whole[6000], whole[9000]]
    assert [e.data for e in theirs] == [whole[3000], whole[6000]]


def test_duplicates_never_release_a_frame_twice() -> None:
    packets = stream(3)
    dup = [*packets[:2], packets[1], packets[2], packets[2], packets[0], *packets[3:], packets[5]]
    ours, theirs = both(dup)
    assert [e.timestamp for e in ours] == [3000, 6000, 9000]
    assert [e.data for e in ours[:2]] == [e.data for e in theirs]


def test_late_packets_with_a_released_timestamp_are_dropped() -> None:
    packets = stream(3)
    pad = RtpPacket(payload_type=96, sequence_number=1003, timestamp=3000)  # padding after frame 0
    pad._data = b""  # type: ignore[attr-defined]
    rest = [RtpPacket(payload_type=96, marker=p.marker, sequence_number=p.sequence_number + 1,
                      timestamp=p.timestamp) for p in packets[3:]]  # fmt: skip
    for old, new in zip(packets[3:], rest, strict=True):
        new._data = old._data  # type: ignore[attr-defined]
    ours = feed(MarkerJitterBuffer(capacity=CAPACITY, is_video=True), [*packets[:3], pad, *rest])
    assert [e.timestamp for e in ours] == [3000, 6000, 9000]


def test_sequence_number_wrap() -> None:
    packets = stream(8, per_frame=4, first_seq=65530)
    ours, theirs = both(packets)
    whole = whole_frames(packets)
    assert [e.at for e in ours] == [4] + [4 * f + 3 for f in range(1, 8)]
    assert [e.data for e in ours] == [whole[e.timestamp] for e in ours]
    assert [e.data for e in ours[:7]] == [e.data for e in theirs]


@pytest.mark.parametrize("seed", range(25))
def test_random_loss_reorder_and_duplicates_match_aiortc_or_better(seed: int) -> None:
    rng = random.Random(seed)
    sent = stream(60, per_frame=rng.randint(1, 6), first_seq=rng.randrange(65536))
    received = []
    for p in sent:
        if rng.random() < 0.05:
            continue  # lost
        received.append(p)
        if rng.random() < 0.05:
            received.append(p)  # duplicated
    for i in range(len(received) - 1):
        if rng.random() < 0.1:  # reordered with the next packet
            received[i], received[i + 1] = received[i + 1], received[i]
    ours, theirs = both(received)
    whole = whole_frames(sent)
    released_by_aiortc = {(e.timestamp, e.data): e.at for e in theirs}
    assert len({e.timestamp for e in ours}) == len(ours), "a frame was released twice"
    for e in ours:
        key = (e.timestamp, e.data)
        # Only whole frames, or exactly the (partial) frame aiortc itself would hand out.
        assert e.data == whole[e.timestamp] or key in released_by_aiortc
        if key in released_by_aiortc:
            assert e.at <= released_by_aiortc[key], "released later than aiortc would"
    assert {k for k in released_by_aiortc if k[1] == whole[k[0]]} <= {(e.timestamp, e.data) for e in ours}


class FakeReceiver:
    def __init__(self, buffer: object) -> None:
        self._RTCRtpReceiver__jitter_buffer = buffer


def test_install_keeps_the_buffered_packets() -> None:
    buffer = JitterBuffer(capacity=CAPACITY, is_video=True)
    packets = stream(3)
    feed(buffer, packets[:2])
    receiver = FakeReceiver(buffer)
    assert complete_frames_on_marker(receiver)  # type: ignore[arg-type]
    assert isinstance(receiver._RTCRtpReceiver__jitter_buffer, MarkerJitterBuffer)
    emitted = feed(buffer, packets[2:])
    assert [(e.at, e.data) for e in emitted[:2]] == [
        (1, bytes([0, 0, 0, 1, 0, 2])),
        (3, bytes([1, 0, 1, 1, 1, 2])),
    ]
    assert complete_frames_on_marker(receiver)  # type: ignore[arg-type]  # idempotent


def test_install_on_a_real_video_receiver() -> None:
    async def scenario() -> object:
        pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
        try:
            transceiver = pc.addTransceiver("video", direction="recvonly")
            assert complete_frames_on_marker(transceiver.receiver)
            return getattr(transceiver.receiver, jitter._BUFFER_ATTR)
        finally:
            await pc.close()

    assert isinstance(asyncio.run(scenario()), MarkerJitterBuffer)


@pytest.mark.parametrize(
    "buffer",
    [
        JitterBuffer(capacity=16, prefetch=4),  # an audio buffer
        object(),  # internals changed
        None,  # attribute gone
    ],
)
def test_unknown_internals_are_left_alone_with_one_warning(
    buffer: object, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jitter, "_warned", False)
    receiver = FakeReceiver(buffer)
    with caplog.at_level(logging.WARNING, logger="decart_nb"):
        assert not complete_frames_on_marker(receiver)  # type: ignore[arg-type]
        assert not complete_frames_on_marker(receiver)  # type: ignore[arg-type]
    assert receiver._RTCRtpReceiver__jitter_buffer is buffer
    assert len([r for r in caplog.records if "marker" in r.getMessage()]) == 1


def test_untested_aiortc_version_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jitter, "_warned", False)
    monkeypatch.setattr(aiortc, "__version__", "99.0.0")
    buffer = JitterBuffer(capacity=CAPACITY, is_video=True)
    assert not complete_frames_on_marker(FakeReceiver(buffer))  # type: ignore[arg-type]
    assert type(buffer) is JitterBuffer
