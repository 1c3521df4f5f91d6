import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from decart_nb import DecartNBError, ErrorCode
from decart_nb.images import MAX_IMAGE_BYTES, load_image
from tests.helpers import png_bytes, png_claiming
from tests.security.test_images import BUDGET_MB, probe


def test_every_input_kind_becomes_rgb(tmp_path: Path) -> None:
    data = png_bytes((10, 200, 30))
    path = tmp_path / "ref.png"
    path.write_bytes(data)
    for image in (data, path, str(path), Image.open(path), np.asarray(Image.open(path))):
        arr = load_image(image)
        assert arr.dtype == np.uint8 and arr.shape == (48, 64, 3)
        assert tuple(arr[0, 0]) == (10, 200, 30)


def test_rgba_grey_and_float_arrays_are_converted() -> None:
    assert load_image(np.zeros((4, 6), np.uint8)).shape == (4, 6, 3)
    assert load_image(np.zeros((4, 6, 4), np.uint8)).shape == (4, 6, 3)
    assert load_image(np.ones((4, 6, 3), np.float32))[0, 0, 0] == 255


def test_large_images_are_shrunk_for_the_engine() -> None:
    arr = load_image(np.zeros((2000, 1000, 3), np.uint8))
    assert max(arr.shape[:2]) == 512


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"not an image at all",
        png_bytes()[:40],  # truncated
        png_claiming(20000, 20000),  # a bomb header
        np.zeros((4, 4, 5), np.uint8),
        12345,
    ],
)
def test_bad_images_are_invalid_input(bad: object) -> None:
    with pytest.raises(DecartNBError) as info:
        load_image(bad)  # type: ignore[arg-type]
    assert info.value.code == ErrorCode.INVALID_INPUT


def test_oversized_and_missing_files_are_invalid_input(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(png_bytes() + b"\0" * (MAX_IMAGE_BYTES + 1))
    for path in (big, tmp_path / "missing.png"):
        with pytest.raises(DecartNBError) as info:
            load_image(path)
        assert info.value.code == ErrorCode.INVALID_INPUT
    with pytest.raises(DecartNBError, match="10 MB"):
        load_image(big.read_bytes())


@pytest.mark.parametrize(
    ("name", "mode", "size", "options"),
    [
        ("p.png", "P", (4096, 4096), {}),  # PNG, GIF, BMP: up to 16.8 MP (a 5K screenshot is 14.7)
        ("b.webp", "RGB", (4096, 2048), {"quality": 10}),  # WebP: half that (a 4K frame fits)
        ("q.jpg", "RGB", (4096, 4096), {"progressive": True}),  # a progressive JPEG: 16.8 MP
    ],
)
@pytest.mark.parametrize("side", [512, None])
def test_the_largest_accepted_images_load_within_the_budget(
    tmp_path: Path, name: str, mode: str, size: tuple[int, int], options: dict[str, object], side: int | None
) -> None:
    path = tmp_path / name
    Image.new(mode, size).save(path, **options)  # type: ignore[arg-type]
    result = probe(path, side)
    assert result["code"] is None and result["peak_mb"] < BUDGET_MB, result  # type: ignore[operator]
    assert result["shape"] == ([512, 512, 3] if side else [2560, 2560, 3]) or name == "b.webp", result


@pytest.mark.parametrize("mode", ["1", "L", "LA", "La", "P", "PA", "I", "I;16", "F", "RGBA", "RGBa", "CMYK"])
def test_every_pil_mode_becomes_rgb_without_a_warning(mode: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arr = load_image(Image.new(mode, (1200, 800)))
    assert arr.dtype == np.uint8 and arr.shape == (341, 512, 3)


def test_a_palette_png_with_a_transparent_colour_loads_without_a_warning() -> None:
    buf = io.BytesIO()
    Image.new("P", (1000, 600), 5).save(buf, "PNG", transparency=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(buf.getvalue()).shape == (307, 512, 3)


def test_bytes_are_named_and_decoded_only_as_the_formats_asked_for() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (9, 9, 9)).save(buf, format="GIF")
    with pytest.raises(DecartNBError) as info:
        load_image(buf.getvalue(), name="anim.gif", formats=("PNG", "JPEG", "WEBP"))
    assert info.value.code == ErrorCode.INVALID_INPUT
    assert info.value.message.startswith("anim.gif is not a readable PNG, JPEG or WebP image (")
    assert load_image(buf.getvalue()).shape == (30, 40, 3)  # GIF stays readable from a cell
    with pytest.raises(
        DecartNBError, match=r"] the image bytes is not a readable PNG, JPEG, WebP, GIF or BMP image"
    ):
        load_image(png_bytes(size=(400, 300))[:120])
