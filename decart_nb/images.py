"""Reference images: every accepted input becomes one RGB uint8 array, or INVALID_INPUT."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

from .checks import looks_like_url
from .errors import DecartNBError, ErrorCode

__all__ = ["ImageInput", "load_image", "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "encode_jpeg"]

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray]  # noqa: UP007

MAX_IMAGE_BYTES = 10 * 1024 * 1024  # Decart's documented maximum for a reference image
MAX_IMAGE_PIXELS = 40_000_000  # a decompression-bomb guard: a small file can claim a huge canvas
WORKING_SIDE = 512
# Raster formats only: Pillow would hand EPS to Ghostscript, and other plugins are rarely needed.
DECODE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
# Files people try that are not raster images, by their first bytes: a clearer message than "unreadable".
_NOT_RASTER = ((b"%PDF", "a PDF"), (b"<svg", "an SVG"), (b"<?xml", "XML (an SVG?)"), (b"<!DOCTYPE", "HTML"))


def load_image(image: ImageInput, max_side: int | None = WORKING_SIDE) -> np.ndarray:
    """Decode a path, encoded bytes, a PIL image or an array into an RGB uint8 array.

    Reference images are shrunk to `max_side` (engines need colours and gist, not pixels).
    """
    try:
        if isinstance(image, np.ndarray):
            return _shrink(_from_array(image), max_side)
        if isinstance(image, Image.Image):
            return _shrink(_from_pil(image), max_side)
        if isinstance(image, (bytes, bytearray, memoryview)):
            return _shrink(_decode(bytes(image), "the image bytes", max_side), max_side)
        if looks_like_url(image):
            raise _invalid(
                f"{str(image)[:60]!r} is a URL: decart_nb never fetches (or decodes) URLs. "
                "Download the image and pass its path, its bytes, a PIL image or an array"
            )
        if isinstance(image, (str, os.PathLike)):
            return _shrink(_decode(_read_file(Path(image)), str(image), max_side), max_side)
    except DecartNBError:
        raise
    except Exception as exc:
        raise _invalid(f"Could not read the image: {exc}", exc) from exc
    raise _invalid(
        f"Unsupported image type {type(image).__name__}: pass a path, bytes, a PIL image or an array"
    )


def _read_file(path: Path) -> bytes:
    try:
        if path.is_dir():
            raise _invalid(f"{path} is a directory, not an image file")
        if not path.is_file():
            raise _invalid(f"No image file at {str(path)[:200]}")
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise _too_big(size)
        return path.read_bytes()
    except OSError as exc:  # a name too long, a permission: still the user's path to fix
        raise _invalid(f"Cannot read the image file {str(path)[:200]}: {exc.strerror or exc}", exc) from exc


def _decode(data: bytes, what: str, max_side: int | None) -> np.ndarray:
    if not data:
        raise _invalid(f"{what}: empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise _too_big(len(data))
    head = data[:256].lstrip()
    for magic, kind in _NOT_RASTER:
        if head.startswith(magic):
            raise _invalid(f"{what} is {kind}, not a raster image: convert it to PNG or JPEG first")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=DECODE_FORMATS) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise _invalid(
                        f"{what}: {im.width}x{im.height} is over {MAX_IMAGE_PIXELS} pixels",
                        data={"width": im.width, "height": im.height},
                    )
                if max_side:
                    im.draft("RGB", (max_side, max_side))  # JPEG: decode at reduced size
                return _from_pil(im)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise _invalid(
                f"{what}: the image is over {MAX_IMAGE_PIXELS} pixels (Pillow: {exc})", exc
            ) from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise _invalid(
                f"{what} is not a readable PNG, JPEG, WebP, GIF or BMP image ({exc})", exc
            ) from exc


def _from_pil(im: Image.Image) -> np.ndarray:
    if im.width * im.height > MAX_IMAGE_PIXELS:
        raise _invalid(f"Image {im.width}x{im.height} is over {MAX_IMAGE_PIXELS} pixels")
    if im.mode != "RGB":
        im = im.convert("RGBA").convert("RGB") if "A" in im.mode or im.mode == "P" else im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def _from_array(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise _invalid(f"Image array must be HxW, HxWx3 or HxWx4, got shape {arr.shape}")
    if arr.shape[0] * arr.shape[1] > MAX_IMAGE_PIXELS:
        raise _invalid(f"Image array {arr.shape} is over {MAX_IMAGE_PIXELS} pixels")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and np.nanmax(arr) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr[:, :, :3])


def _shrink(arr: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = arr.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return arr
    im = Image.fromarray(arr)
    im.thumbnail((max_side, max_side))
    return np.asarray(im, dtype=np.uint8)


def encode_jpeg(arr: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _too_big(size: int) -> DecartNBError:
    return _invalid(
        f"Image is {size / 1e6:.1f} MB; the limit is {MAX_IMAGE_BYTES / 1e6:.0f} MB",
        data={"bytes": size, "limit": MAX_IMAGE_BYTES},
    )


def _invalid(
    message: str, cause: BaseException | None = None, data: dict[str, object] | None = None
) -> DecartNBError:
    return DecartNBError(ErrorCode.INVALID_INPUT, message, cause=cause, data=data)
