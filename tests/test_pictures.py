"""The fake camera's pictures (harness/pictures.py): the detailed one is what a real camera sends
(fine texture, motion, noise that changes every frame) and still carries a readable frame stamp."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from decart_nb.media.stamp import STAMP_ROWS, read_stamp, stamp_width
from decart_nb.media.vp8 import Vp8Decoder, Vp8Encoder
from harness.pictures import CLEAN_ROWS, PICTURES, detailed_frames, write_clip


def _frame(planes: tuple[np.ndarray, ...]) -> av.VideoFrame:
    y, u, v = planes
    stacked = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(-1, y.shape[1])
    return av.VideoFrame.from_ndarray(stacked, format="yuv420p")


def _y4m_frames(path: Path) -> list[np.ndarray]:
    """The luma planes of a 1280x720 yuv420p y4m clip."""
    raw = path.read_bytes()
    header, _, body = raw.partition(b"\n")
    assert header.startswith(b"YUV4MPEG2 W1280 H720 F30:1"), header
    size = 1280 * 720 * 3 // 2
    frames = body.split(b"FRAME\n")[1:]
    assert all(len(f) == size for f in frames)
    return [np.frombuffer(f[: 1280 * 720], np.uint8).reshape(720, 1280) for f in frames]


def test_the_detailed_clip_is_stamped_y4m_at_30_fps(tmp_path: Path) -> None:
    assert "detailed" in PICTURES
    lumas = _y4m_frames(write_clip(tmp_path / "clip.y4m", "detailed", seconds=0.2))
    assert len(lumas) == 6
    assert [read_stamp(y) for y in lumas] == list(range(6))


def test_the_stamp_rows_carry_no_noise() -> None:
    """The stamp's rows hold only the stamp's black and white blocks, and a flat margin under them:
    a codec smears noise and texture across block edges into the stamp."""
    for y, _, _ in detailed_frames(3):
        top = y[:CLEAN_ROWS]
        assert set(np.unique(top[:STAMP_ROWS, : stamp_width(1280)])) <= {16, 235}
        assert (top[:STAMP_ROWS, stamp_width(1280) :] == top[0, -1]).all()
        assert (top[STAMP_ROWS:] == top[STAMP_ROWS, 0]).all()


def test_the_detailed_picture_is_seeded() -> None:
    first = [p.copy() for p in next(iter(detailed_frames(1)))]
    again = next(iter(detailed_frames(1)))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_it_has_fine_detail_and_noise_that_changes_every_frame(tmp_path: Path) -> None:
    (y0, u0, _), (y1, u1, _) = list(detailed_frames(2))
    body0, body1 = y0[CLEAN_ROWS:].astype(int), y1[CLEAN_ROWS:].astype(int)
    plain = _y4m_frames(write_clip(tmp_path / "plain.y4m", "plain", seconds=0.1))[0][CLEAN_ROWS:].astype(int)
    # Fine texture: neighbouring pixels differ a lot, everywhere (the plain picture is smooth).
    assert np.abs(np.diff(body0, axis=1)).mean() > 20
    assert np.abs(np.diff(plain, axis=1)).mean() < 2
    blocks = np.abs(np.diff(body0, axis=1))[:, :1264].reshape(-1, 16, 79, 16).mean(axis=(1, 3))
    assert (blocks > 5).mean() > 0.95  # no flat part the encoder could skip
    # Frame to frame, every part changes (motion and noise), the chroma too.
    assert np.abs(body1 - body0).mean() > 10
    assert np.abs(u1.astype(int) - u0.astype(int)).mean() > 1


def test_the_noise_is_not_the_same_twice() -> None:
    """Sensor noise is new in every frame: two frames aligned by the pan still differ."""
    from harness.pictures import PAN_PX

    (y0, _, _), (y1, _, _) = list(detailed_frames(2))
    dx, dy = PAN_PX
    # Frame 1 shows the scene moved by the pan: align it with frame 0, above the moving object.
    rows = slice(CLEAN_ROWS, 720 // 3)
    a = y0[rows.start + dy : rows.stop + dy, dx : 1280 - 8 + dx].astype(int)
    b = y1[rows, : 1280 - 8].astype(int)
    residual = (b - a).std()
    assert 4 < residual < 12, residual  # two frames' noise of sigma NOISE_SIGMA: about 7


@pytest.mark.parametrize("kbps", [500.0, 2000.0])
def test_its_stamp_survives_the_codec_transports_vp8_at_every_rung(kbps: float) -> None:
    frames = [_frame(p) for p in detailed_frames(8)]
    for width, height in ((1280, 720), (640, 360), (320, 180)):
        encoder, decoder = Vp8Encoder(), Vp8Decoder()
        stamps = []
        for n, frame in enumerate(frames):
            data, _ = encoder.encode(frame, width, height, kbps, 30.0, key=n == 0)
            out = decoder.decode(data)
            assert out is not None
            luma = decoder.scaled(out, 1280, 720).to_ndarray()[:720]
            stamps.append(read_stamp(luma))
        assert stamps == list(range(8)), (width, height, stamps)


def test_an_unknown_picture_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="detailed"):
        write_clip(tmp_path / "x.y4m", "snow")
