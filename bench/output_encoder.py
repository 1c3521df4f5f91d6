"""What the speed of the kernel's WebRTC output encoder (rtc/encoder.py) costs and buys.

    python -m bench.output_encoder [--speeds -6,-8] [--pictures detailed,plain]
        [--styles ,anime,film noir] [--frames 90] [--rounds 3] [--kbps 1500]

For each picture (harness/pictures.py: "detailed" is a real camera's texture and noise, "plain" the
test card), each local style ("" is passthrough: the camera itself) and each libvpx `cpu-used`
speed: the 720p frames go through OutputVp8Encoder as the kernel sends them (one thread, CBR),
then through libvpx's decoder. Per setting: the median over rounds of the encode's p50 (wall ms,
the first 10 frames left out while the rate control settles), with the rounds' range, the luma
PSNR of the decoded frames (p50, dB) and the bitrate delivered. The speeds take turns within a
round, in reverse order every other round, so a drift of the machine falls on all of them. Pinned
to one CPU, as the kernel's encoder has one; run it under the bench lock: the figures are timings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from decart_nb.engines.local import LocalEngine
from decart_nb.media.frames import plane_view
from decart_nb.rtc.encoder import OutputVp8Encoder
from decart_nb.state import GenerationState

__all__ = ["Cost", "encode", "main", "psnr", "turns"]

SETTLE = 10  # frames left out of the figures while the rate control settles
_TIME_BASE = Fraction(1, 90_000)


@dataclass
class Cost:
    """One setting's figures, a value per round."""

    encode_ms: list[float] = field(default_factory=list)
    psnr_db: list[float] = field(default_factory=list)
    kbps: list[float] = field(default_factory=list)

    def line(self) -> str:
        ms = self.encode_ms
        return (
            f"encode p50 {statistics.median(ms):6.2f} ms ({min(ms):.2f}-{max(ms):.2f}), "
            f"PSNR {statistics.median(self.psnr_db):5.2f} dB, {statistics.median(self.kbps):5.0f} kbps"
        )


def psnr(a: av.VideoFrame, b: av.VideoFrame) -> float:
    """Luma PSNR of `b` against `a`, in dB (100 for identical pictures)."""
    diff = plane_view(a.planes[0]).astype(np.float64) - plane_view(b.planes[0]).astype(np.float64)
    mse = float(np.mean(diff * diff))
    return 100.0 if mse == 0 else 10 * float(np.log10(255.0**2 / mse))


def encode(
    frames: Sequence[av.VideoFrame], speed: int, kbps: float, fps: float = 30.0
) -> tuple[float, float, float]:
    """(encode ms p50, PSNR dB p50, delivered kbps) of `frames` at one speed, after SETTLE frames."""
    encoder = OutputVp8Encoder()
    encoder.speed, encoder.target_bitrate = speed, round(kbps * 1000)
    decoder = av.CodecContext.create("libvpx", "r")
    times, quality, sizes = [], [], []
    for n, frame in enumerate(frames):
        frame.pts, frame.time_base = round(n * 90_000 / fps), _TIME_BASE
        frame.pict_type = av.video.frame.PictureType.NONE  # a clip's frames say I: all key frames
        if encoder.codec is None:
            encoder.codec = encoder._open(frame.width, frame.height)
        start = time.perf_counter()
        packets = encoder.codec.encode(frame)
        times.append((time.perf_counter() - start) * 1000)
        for packet in packets:
            sizes.append(packet.size)
            quality += [psnr(frame, out) for out in decoder.decode(packet)]
    kept = max(1, len(sizes) - SETTLE)
    kbps_out = sum(sizes[SETTLE:]) * 8 * fps / kept / 1000
    ms, db = statistics.median(times[SETTLE:] or times), statistics.median(quality[SETTLE:] or quality)
    return ms, db, kbps_out


def turns(speeds: Sequence[int], rounds: int) -> list[int]:
    """The order the speeds run in: each round once each, every other round reversed."""
    return [s for r in range(rounds) for s in (speeds if r % 2 == 0 else list(reversed(speeds)))]


def picture_frames(picture: str, count: int) -> list[av.VideoFrame]:
    """`count` 720p frames of the fake camera's `picture` (harness/pictures.py), as PyAV decodes them."""
    from harness.pictures import write_clip

    with tempfile.TemporaryDirectory() as tmp:
        path = write_clip(Path(tmp) / "clip.y4m", picture, seconds=count / 30)
        with av.open(str(path)) as clip:
            return [frame.reformat(format="yuv420p") for frame in clip.decode(video=0)][:count]


def styled(frames: list[av.VideoFrame], style: str) -> list[av.VideoFrame]:
    if not style:
        return frames
    engine, state = LocalEngine(), GenerationState(prompt=style)
    return [engine.process(frame, state) for frame in frames]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.output_encoder", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--speeds", default="-6,-8", help="libvpx cpu-used values, comma-separated")
    parser.add_argument("--pictures", default="detailed,plain")
    parser.add_argument("--styles", default=",anime,film noir", help="local styles; empty: passthrough")
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kbps", type=float, default=1500.0)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    speeds = [int(s) for s in args.speeds.split(",")]
    for picture in args.pictures.split(","):
        frames = picture_frames(picture, args.frames)
        for style in args.styles.split(","):
            source, costs = styled(frames, style), {s: Cost() for s in speeds}
            for speed in turns(speeds, args.rounds):
                ms, db, kbps = encode(source, speed, args.kbps)
                costs[speed].encode_ms.append(ms)
                costs[speed].psnr_db.append(db)
                costs[speed].kbps.append(kbps)
            for speed, cost in costs.items():
                name = style or "passthrough"
                print(f"{picture:8s} {name:12s} cpu-used {speed:3d}: {cost.line()}", flush=True)


if __name__ == "__main__":
    main()
