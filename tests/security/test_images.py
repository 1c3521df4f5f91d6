"""Attacks on image inputs: a file or an array that costs the kernel memory (issue 19, item 6).

Anyone who hands the kernel an image (a reference image in the panel's upload, a shared notebook's
path, a sweep's items) must not make it decode more than a model needs. The worst input of each
kind is loaded in a fresh Python process, which reports its peak resident size beyond what it had
before the call (Pillow's memory is not Python's, so tracemalloc cannot see it; numpy's is, and the
array tests use it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from decart_nb import DecartNBError, ErrorCode
from decart_nb.images import MAX_ARRAY_PIXELS, load_image

MB = 1 << 20
BUDGET_MB = 200  # the worst accepted input costs about 145 MB (a 16 MP palette PNG, max_side=None)
ARRAY_BUDGET_MB = 100  # numpy's share: 86 MB at most here (the subsampled copy, row blocks, the output)

# Run in a fresh interpreter: the peak resident size during the call (VmHWM, reset first through
# clear_refs), minus the size before it. Not ru_maxrss: it counts the parent's size at the fork.
_PROBE = """
import json, sys
from decart_nb.images import MAX_ARRAY_PIXELS, load_image
from decart_nb.errors import DecartNBError

def status_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

data = open(sys.argv[1], "rb").read()
side = None if sys.argv[2] == "none" else int(sys.argv[2])
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # VmHWM := VmRSS
before = status_kb("VmRSS")
try:
    shape, code = list(load_image(data, max_side=side).shape), None
except DecartNBError as exc:
    shape, code = None, exc.code
peak_mb = (status_kb("VmHWM") - before) / 1024
print(json.dumps({"peak_mb": peak_mb, "shape": shape, "code": code}))
"""


def probe(path: Path, side: int | None) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), "none" if side is None else str(side)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _save(path: Path, mode: str, size: tuple[int, int], fmt: str, **options: object) -> Path:
    """A flat image: decoding it costs what its size says, and its file stays small."""
    Image.new(mode, size, (90,) * len(mode) if mode != "P" else 3).save(path, format=fmt, **options)
    return path


Make = Callable[[Path], Path]
# (name, how the file is made, what load_image must do: "ok" or "refused")
CASES: list[tuple[str, Make, str]] = [
    # Just under the old 40 MP cap: 530 MB and about 1 s to decode (PNG is decoded whole).
    ("png-rgba-40mp", lambda d: _save(d / "a.png", "RGBA", (6324, 6324), "PNG"), "refused"),
    # WebP: libwebp and Pillow hold three copies while it decodes (290 MB at 16 MP).
    ("webp-16mp", lambda d: _save(d / "a.webp", "RGB", (4096, 4096), "WEBP", quality=10), "refused"),
    # A progressive JPEG keeps all its coefficients, whatever the draft scale.
    (
        "jpeg-progressive-24mp",
        lambda d: _save(d / "p.jpg", "RGB", (6000, 4000), "JPEG", progressive=True),
        "refused",
    ),
    # A 48 MP phone photo (baseline) loads, decoded at 1/2 to 1/8 of its size.
    ("jpeg-48mp-phone", lambda d: _save(d / "b.jpg", "RGB", (8000, 6000), "JPEG", quality=80), "ok"),
    # The largest baseline JPEG accepted (refused before), and the largest RGBA PNG (223 MB before).
    # The other largest accepted inputs: tests/test_images.py.
    ("jpeg-64mp", lambda d: _save(d / "c.jpg", "RGB", (8192, 8192), "JPEG"), "ok"),
    ("png-rgba-16mp", lambda d: _save(d / "b.png", "RGBA", (4096, 4096), "PNG"), "ok"),
]


@pytest.mark.parametrize("side", [512, None], ids=["reference", "source"])
@pytest.mark.parametrize(("make", "outcome"), [pytest.param(m, o, id=n) for n, m, o in CASES])
def test_an_image_file_costs_at_most_the_budget(
    tmp_path: Path, make: Make, outcome: str, side: int | None
) -> None:
    path = make(tmp_path)
    assert path.stat().st_size < 10 * MB
    result = probe(path, side)
    assert result["peak_mb"] < BUDGET_MB, result  # type: ignore[operator]
    if outcome == "refused":
        assert result["code"] == ErrorCode.INVALID_INPUT, result
    else:
        assert result["code"] is None, result
        shape = result["shape"]
        assert isinstance(shape, list) and max(shape[:2]) == (side or 2560) and shape[2] == 3


def _traced_peak(call: Callable[[], object]) -> tuple[object, int]:
    """What `call` returned (or raised), and numpy's peak allocation while it ran."""
    tracemalloc.start()
    try:
        try:
            result: object = call()
        except DecartNBError as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_array_over_the_cap_is_refused_from_its_shape() -> None:
    """A grey 9000x9000 view of one byte: tripled into RGB (243 MB) before the check, once."""
    huge = np.broadcast_to(np.uint8(7), (9000, 9000))
    assert huge.shape[0] * huge.shape[1] > MAX_ARRAY_PIXELS
    error, peak = _traced_peak(lambda: load_image(huge))
    assert isinstance(error, DecartNBError) and error.code == ErrorCode.INVALID_INPUT, error
    assert "shrink it first" in error.message
    assert peak < MB, f"{peak / MB:.0f} MB allocated before the refusal"


@pytest.mark.parametrize(
    "array",
    [
        pytest.param(np.broadcast_to(np.float32(0.5), (6000, 6000)), id="grey-float32-36mp"),
        pytest.param(np.broadcast_to(np.float32(0.5), (5000, 5000, 4)), id="rgba-float32-25mp"),
        pytest.param(np.broadcast_to(np.int64(300), (8192, 8192, 3)), id="rgb-int64-67mp"),
    ],
)
@pytest.mark.parametrize("side", [512, None], ids=["reference", "source"])
def test_an_array_converts_within_the_budget(array: np.ndarray, side: int | None) -> None:
    """Converted (dtype, channels) after it is subsampled to the budget, by blocks of rows: before,
    each conversion step copied the whole array (1.3 GB for the grey one)."""
    out, peak = _traced_peak(lambda: load_image(array, max_side=side))
    assert isinstance(out, np.ndarray), out
    assert out.dtype == np.uint8 and out.shape[2] == 3
    assert max(out.shape[:2]) == side if side else 2000 < max(out.shape[:2]) <= 2560, out.shape
    assert peak < ARRAY_BUDGET_MB * MB, f"{peak / MB:.0f} MB"
    expected = 255 if array.dtype == np.int64 else 127  # 0.5 of 255; 300 clipped to 255
    assert int(out[0, 0, 0]) == expected


def test_an_iterator_frame_over_the_cap_is_refused_from_its_shape() -> None:
    """A source's frame of 9000x9000 (one byte, broadcast): before, PIL copied it whole (243 MB) to
    resize it, on every frame."""
    from decart_nb.media.sources import ArrayTrack

    huge = np.broadcast_to(np.uint8(7), (9000, 9000, 3))
    track = ArrayTrack([huge], 640, 360, 30)
    try:
        error, peak = _traced_peak(track._next_frame)
    finally:
        track.stop()
    assert isinstance(error, DecartNBError) and error.code == ErrorCode.SOURCE_ERROR, error
    assert peak < MB, f"{peak / MB:.0f} MB allocated before the refusal"


def test_a_functions_huge_result_is_refused_from_its_shape() -> None:
    """A user function that returns a 9000x9000 float view: before, clip + astype copied it twice
    (1.9 GB) before anything looked at its size."""
    import av

    from decart_nb.engines.function import CallableEngine

    engine = CallableEngine(lambda frame, state: frame)
    frame = av.VideoFrame(64, 48, "yuv420p")
    huge = np.broadcast_to(np.float32(0.5), (9000, 9000, 3))
    error, peak = _traced_peak(lambda: engine.finish(huge, frame))
    assert isinstance(error, DecartNBError) and error.code == ErrorCode.ENGINE_ERROR, error
    assert peak < MB, f"{peak / MB:.0f} MB allocated before the refusal"


def test_a_sweep_item_of_a_huge_array_is_named_without_a_copy() -> None:
    """A sweep's item identity hashes an array's pixels: a 9000x9000 broadcast view was copied whole
    (twice: contiguous, then bytes); now an array over the cap is named by its shape (its row then
    fails in load_image) and a smaller one is hashed a row at a time, to the same digest as before."""
    import hashlib

    from decart_nb.sweeps.items import digest_image

    huge = np.broadcast_to(np.uint8(7), (9000, 9000, 3))
    name, peak = _traced_peak(lambda: digest_image(huge))
    assert name == "array:(9000, 9000, 3)uint8"
    assert peak < MB, f"{peak / MB:.0f} MB allocated"
    small = np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3)
    whole = hashlib.sha256(f"{small.shape}{small.dtype}".encode() + small.tobytes()).hexdigest()
    assert digest_image(small) == whole  # rows or whole: one identity, so resumed runs still match
