"""What a picture costs the kernel's VP8 path: encode and decode time per frame, and the bytes the
encoder delivers against the bitrate it was asked for, at each rung of the ladder (issue 24).

`python -m bench.vp8_cost --picture detailed --kbps 2000 --kbps 4000` encodes the fake camera's
picture (harness/pictures.py) with the codec transport's encoder (decart_nb.media.vp8) as the
kernel does (each frame scaled from 1280x720 to the rung), one encoder per rung, and prints per
rung: encode ms per frame (p50 / p90, wall clock, the scaling included), decode ms, the bitrate
delivered over the asked one, and the largest chunk over a period's share. Run it under the bench
lock: the figures are timings. `--threads` and `--option key=value` try other encoder settings.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass

import av
import numpy as np

from decart_nb.media.rate import ladder
from decart_nb.media.vp8 import ENCODER_OPTIONS, Vp8Decoder, Vp8Encoder

__all__ = ["RungCost", "main", "measure"]


@dataclass
class RungCost:
    """One rung's figures over a clip."""

    width: int
    height: int
    kbps: float
    encode_ms: list[float]
    cpu_ms: list[float]  # the encode's CPU time, all its threads
    decode_ms: list[float]
    sizes: list[int]
    fps: float

    @property
    def delivered_kbps(self) -> float:
        return sum(self.sizes[1:]) * 8 / 1000 * self.fps / max(1, len(self.sizes) - 1)

    def line(self) -> str:
        enc, dec = sorted(self.encode_ms), sorted(self.decode_ms)
        share = max(self.sizes[1:], default=0) * 8 / 1000 * self.fps / self.kbps
        return (
            f"{self.width}x{self.height} at {self.kbps:.0f} kbps: encode p50 {_pct(enc, 50):.1f} ms "
            f"p90 {_pct(enc, 90):.1f} (CPU p50 {_pct(sorted(self.cpu_ms), 50):.1f} ms), "
            f"decode p50 {_pct(dec, 50):.1f} ms, delivered "
            f"{self.delivered_kbps:.0f} kbps ({self.delivered_kbps / self.kbps:.2f} x asked), "
            f"largest delta chunk {share:.1f} periods' bits, key {self.sizes[0] / 1000:.0f} KB"
        )


def _pct(values: Sequence[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p / 100))] if values else float("nan")


def _frames(picture: str, count: int) -> list[av.VideoFrame]:
    from harness.pictures import detailed_frames

    if picture != "detailed":
        raise SystemExit("only --picture detailed for now")
    out = []
    for y, u, v in detailed_frames(count):
        planes = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(-1, y.shape[1])
        out.append(av.VideoFrame.from_ndarray(planes, format="yuv420p"))
    return out


def measure(
    frames: list[av.VideoFrame], width: int, height: int, kbps: float, fps: float, threads: int
) -> RungCost:
    """Encode `frames` at one rung as CodecLink does (a key frame first), then decode them."""
    encoder, decoder = Vp8Encoder(threads=threads), Vp8Decoder()
    cost = RungCost(width, height, kbps, [], [], [], [], fps)
    for n, frame in enumerate(frames):
        t, cpu = time.perf_counter(), time.process_time()
        data, _ = encoder.encode(frame, width, height, kbps, fps, key=n == 0)
        cost.encode_ms.append((time.perf_counter() - t) * 1000)
        cost.cpu_ms.append((time.process_time() - cpu) * 1000)
        cost.sizes.append(len(data))
        t = time.perf_counter()
        decoder.decode(data)
        cost.decode_ms.append((time.perf_counter() - t) * 1000)
    return cost


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.vp8_cost")
    parser.add_argument("--picture", default="detailed")
    parser.add_argument("--kbps", type=float, action="append", help="asked bitrate (repeatable)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--option", action="append", default=[], help="an encoder option, key=value")
    args = parser.parse_args(argv)
    for item in args.option:
        key, _, value = item.partition("=")
        ENCODER_OPTIONS[key] = value
    frames = _frames(args.picture, args.frames)
    print(f"options {ENCODER_OPTIONS}, threads {args.threads}")
    for kbps in args.kbps or [2000.0]:
        for rung in ladder(1280, 720):
            cost = measure(frames, rung.width, rung.height, kbps, args.fps, args.threads)
            print(cost.line(), flush=True)


if __name__ == "__main__":
    main()
