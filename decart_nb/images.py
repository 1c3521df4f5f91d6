"""Reference images: every accepted input becomes one RGB uint8 array, or INVALID_INPUT.

A decode budget bounds what any input costs: engines need no more than a model's frame (at most
1280x720, decart_nb/models.py), and reference images are shrunk to `max_side` (512) anyway.
- At most MAX_IMAGE_PIXELS (16.8 MP, 4096x4096) are decoded or converted at full size. PNG, GIF
  and BMP decode whole, so that is their canvas's cap (a 5K screenshot is 14.7 MP); WebP's is half
  of it (libwebp and Pillow hold three copies of a WebP while it decodes: a 4K frame fits).
- A baseline JPEG decodes at 1/2, 1/4 or 1/8 of its size (Pillow's draft mode, libjpeg's scaled
  IDCT), so its canvas may be up to MAX_JPEG_PIXELS (67 MP): a 48 MP phone photo (8000x6000)
  decodes at 4000x3000 for a source, 1000x750 for a reference image. A progressive JPEG keeps
  every coefficient of its canvas in memory whatever the scale: MAX_IMAGE_PIXELS.
- An array or a PIL image is already in memory: its size is checked from its shape first
  (MAX_ARRAY_PIXELS), then it is subsampled to the budget before any conversion, and a dtype
  conversion goes by blocks of rows.
- Each image is shrunk (an integer reduce, then a resample) before its mode is converted; an
  alpha channel is dropped band by band (Pillow's reduce and convert would copy it whole).
The worst accepted inputs cost about 130 MB and half a second here, where a 40 MP PNG cost 530 MB
and a 40 MP float array 3.7 GB before (tests/security/test_images.py).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

from .checks import looks_like_url
from .errors import DecartNBError, ErrorCode

__all__ = [
    "DECODE_SIDE",
    "MAX_ARRAY_PIXELS",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_JPEG_PIXELS",
    "MAX_WEBP_PIXELS",
    "ImageInput",
    "encode_jpeg",
    "format_names",
    "load_image",
    "not_raster",
]

ImageInput = Union[str, os.PathLike[str], bytes, bytearray, memoryview, Image.Image, np.ndarray]  # noqa: UP007

MAX_IMAGE_BYTES = 10 * 1024 * 1024  # Decart's documented maximum for a reference image
MAX_IMAGE_PIXELS = 4096 * 4096  # the decode budget, and the canvas of formats decoded whole
MAX_WEBP_PIXELS = MAX_IMAGE_PIXELS // 2  # three copies while it decodes
MAX_JPEG_PIXELS = 8192 * 8192  # a baseline JPEG's canvas: it decodes at a fraction of its size
MAX_ARRAY_PIXELS = 8192 * 8192  # an array's or PIL image's size, checked from its shape
WORKING_SIDE = 512
# The longest side returned for max_side=None (a source, resized next to the model's size, at
# most 1280x720): twice that, so the resize still averages.
DECODE_SIDE = 2560
_ROW_BLOCK = 1 << 20  # array elements converted at once (float64 temporaries of 8 MB)
# Raster formats only: Pillow would hand EPS to Ghostscript, and other plugins are rarely needed.
DECODE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
_FORMAT_NAMES = {"WEBP": "WebP"}  # as people write them; the others are Pillow's names
# Modes Image.reduce takes; others (P, 1, I;16) are converted first.
_REDUCIBLE = ("L", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "F")
_WITH_ALPHA = {"RGBA": "RGB", "LA": "L"}  # dropped band by band: the colour bands kept
_TO_ALPHA = {"P": "RGBA", "PA": "RGBA", "La": "LA", "RGBa": "RGBA"}  # (P: with a transparent colour)
# Files people try that are not raster images, by their first bytes: a clearer message than "unreadable".
_NOT_RASTER = ((b"%PDF", "a PDF"), (b"<svg", "an SVG"), (b"<?xml", "XML (an SVG?)"), (b"<!DOCTYPE", "HTML"))


def load_image(
    image: ImageInput,
    max_side: int | None = WORKING_SIDE,
    *,
    name: str | None = None,
    formats: Sequence[str] = DECODE_FORMATS,
) -> np.ndarray:
    """Decode a path, encoded bytes, a PIL image or an array into an RGB uint8 array.

    Reference images are shrunk to `max_side` (engines need colours and gist, not pixels);
    None keeps up to DECODE_SIDE. Encoded bytes are called `name` in messages (an upload's file
    name; default "the image bytes") and decoded only as one of `formats` (DECODE_FORMATS'
    names; the upload offers fewer), which the messages list.
    """
    side = max_side or DECODE_SIDE
    formats = tuple(f for f in formats if f in DECODE_FORMATS) or DECODE_FORMATS
    try:
        if isinstance(image, np.ndarray):
            return _shrink(_from_array(image), side)
        if isinstance(image, Image.Image):
            return _from_pil(image, side)
        if isinstance(image, (bytes, bytearray, memoryview)):
            return _decode(bytes(image), name or "the image bytes", side, formats)
        if looks_like_url(image):
            raise _invalid(
                f"{str(image)[:60]!r} is a URL: decart_nb never fetches (or decodes) URLs. "
                "Download the image and pass its path, its bytes, a PIL image or an array"
            )
        if isinstance(image, (str, os.PathLike)):
            return _decode(_read_file(Path(image)), str(image), side, formats)
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


def format_names(formats: Sequence[str]) -> str:
    """("PNG", "JPEG", "WEBP") -> "PNG, JPEG or WebP", as messages list them."""
    names = [_FORMAT_NAMES.get(f, f) for f in formats]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def not_raster(data: bytes) -> str | None:
    """What a file people try instead of an image is ("a PDF", "an SVG", ...), by its first bytes."""
    head = data[:256].lstrip()
    return next((kind for magic, kind in _NOT_RASTER if head.startswith(magic)), None)


def _decode(data: bytes, what: str, side: int, formats: tuple[str, ...] = DECODE_FORMATS) -> np.ndarray:
    if not data:
        raise _invalid(f"{what}: empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise _too_big(len(data), what)
    kind = not_raster(data)
    if kind is not None:
        raise _invalid(f"{what} is {kind}, not a raster image: convert it to PNG or JPEG first")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=formats) as im:
                _check_canvas(im, what)
                if im.format == "JPEG":
                    im.draft("RGB", _fit(im.size, side))  # decodes at 1/2, 1/4 or 1/8 where that suffices
                _check_pixels(im.size, MAX_IMAGE_PIXELS, what)  # what will be decoded
                return _to_rgb(im, side)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise _invalid(
                f"{what}: the image is over {MAX_JPEG_PIXELS} pixels (Pillow: {exc})", exc
            ) from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise _invalid(f"{what} is not a readable {format_names(formats)} image ({exc})", exc) from exc


def _check_canvas(im: Image.Image, what: str) -> None:
    """The canvas the header claims, before a pixel is decoded."""
    if im.format == "JPEG" and "progressive" not in im.info:
        _check_pixels(im.size, MAX_JPEG_PIXELS, what)
        return
    limit = MAX_WEBP_PIXELS if im.format == "WEBP" else MAX_IMAGE_PIXELS
    if im.width * im.height > limit:
        kind = "progressive JPEG" if im.format == "JPEG" else im.format
        raise _invalid(
            f"{what}: {im.width}x{im.height} is over {limit} pixels, the most a {kind} image may "
            f"have (it is decoded whole; a baseline JPEG may have {MAX_JPEG_PIXELS}): shrink it first",
            data={"width": im.width, "height": im.height, "limit": limit},
        )


def _check_pixels(size: tuple[int, int], limit: int, what: str) -> None:
    width, height = size
    if width * height > limit:
        raise _invalid(
            f"{what}: {width}x{height} is over {limit} pixels: shrink it first",
            data={"width": width, "height": height, "limit": limit},
        )


def _from_pil(im: Image.Image, side: int) -> np.ndarray:
    """A caller's PIL image (never changed), subsampled to the budget before any conversion."""
    _check_pixels(im.size, MAX_ARRAY_PIXELS, "the image")
    step = _step(im.width, im.height)
    if step > 1:  # nearest: no full-size copy, whatever the mode
        im = im.resize((im.width // step, im.height // step), Image.Resampling.NEAREST)
    return _to_rgb(im, side)


def _to_rgb(im: Image.Image, side: int) -> np.ndarray:
    """An image within the budget as RGB uint8, its longest side at most `side`: shrunk first, so
    the mode conversion costs the small size."""
    if im.mode in _TO_ALPHA and (im.mode != "P" or "transparency" in im.info):
        im = im.convert(_TO_ALPHA[im.mode])  # Pillow converts these (or warns) through their alpha
    if im.mode in _WITH_ALPHA:
        colour = _WITH_ALPHA[im.mode]
        im = Image.merge(colour, [_shrunk(im.getchannel(band), side) for band in colour])
    elif im.mode not in _REDUCIBLE:  # P, 1, I;16: resize and reduce take none of these
        im = im.convert("RGB")
    im = _shrunk(im, side)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def _shrunk(im: Image.Image, side: int) -> Image.Image:
    """`im` with its longest side at most `side`: a box reduce by an integer factor, then bicubic."""
    if max(im.size) <= side:
        return im
    return im.resize(_fit(im.size, side), Image.Resampling.BICUBIC, reducing_gap=2.0)


def _from_array(arr: np.ndarray) -> np.ndarray:
    """HxW, HxWx3 or HxWx4 of any real dtype -> HxWx3 uint8. The size comes from the shape, before
    any copy; an array over the budget is subsampled (a view) before it is converted."""
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or 0 in arr.shape[:2]:
        raise _invalid(f"Image array must be HxW, HxWx3 or HxWx4, got shape {arr.shape}")
    height, width = arr.shape[:2]
    if height * width > MAX_ARRAY_PIXELS:
        raise _invalid(
            f"Image array {arr.shape} is over {MAX_ARRAY_PIXELS} pixels: shrink it first",
            data={"width": width, "height": height, "limit": MAX_ARRAY_PIXELS},
        )
    view = arr[:, :, :3] if arr.ndim == 3 else arr[:, :, None]
    step = _step(width, height)
    view = view[::step, ::step]
    rgb = view if view.dtype == np.uint8 else _to_uint8(view)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return np.ascontiguousarray(rgb)


def _to_uint8(view: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (float) or [0, 255] -> uint8, a block of rows at a time: the float64
    temporaries stay small whatever the array's size."""
    scale = 255.0 if np.issubdtype(view.dtype, np.floating) and np.nanmax(view) <= 1.0 else 1.0
    out = np.empty(view.shape, np.uint8)
    rows = max(1, _ROW_BLOCK // (view.shape[1] * view.shape[2]))
    for top in range(0, view.shape[0], rows):
        block = view[top : top + rows].astype(np.float64)
        if scale != 1.0:
            block *= scale
        np.nan_to_num(block, copy=False)
        np.clip(block, 0, 255, out=block)
        out[top : top + rows] = block
    return out


def _step(width: int, height: int) -> int:
    """The subsampling step that brings width x height within MAX_IMAGE_PIXELS."""
    step = max(1, math.ceil(math.sqrt(width * height / MAX_IMAGE_PIXELS)))
    while math.ceil(width / step) * math.ceil(height / step) > MAX_IMAGE_PIXELS:
        step += 1
    return step


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """`size` scaled so that its longest side is `side` (the aspect kept)."""
    width, height = size
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _shrink(arr: np.ndarray, side: int) -> np.ndarray:
    if max(arr.shape[:2]) <= side:
        return arr
    return _to_rgb(Image.fromarray(arr), side)


def encode_jpeg(arr: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _too_big(size: int, what: str = "Image") -> DecartNBError:
    return _invalid(
        f"{what} is {size / 1e6:.1f} MB; the limit is {MAX_IMAGE_BYTES / 1e6:.0f} MB",
        data={"bytes": size, "limit": MAX_IMAGE_BYTES},
    )


def _invalid(
    message: str, cause: BaseException | None = None, data: dict[str, object] | None = None
) -> DecartNBError:
    return DecartNBError(ErrorCode.INVALID_INPUT, message, cause=cause, data=data)
