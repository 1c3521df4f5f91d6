"""Reading a reference image from the FileUpload widget: one image, or INVALID_INPUT."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from ...errors import DecartNBError, ErrorCode
from ...images import MAX_IMAGE_BYTES, load_image

__all__ = ["ACCEPT", "read_upload", "thumbnail_png"]

# What the file picker offers; a file that gets past it is still checked by content, not name.
ACCEPT = ".png,.jpg,.jpeg,.webp,image/png,image/jpeg,image/webp"
_FORMATS = {"PNG", "JPEG", "WEBP"}
THUMB_SIDE = 160


def read_upload(value: Sequence[Mapping[str, Any]]) -> tuple[str, np.ndarray]:
    """The file's name and its pixels (RGB uint8) from a FileUpload value."""
    if not value:
        raise DecartNBError(ErrorCode.INVALID_INPUT, "No file was uploaded")
    item = value[0]
    name = str(item.get("name", "image"))
    data = bytes(item.get("content", b""))
    size = max(len(data), int(item.get("size") or 0))
    if size > MAX_IMAGE_BYTES:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"{name} is {size / 1e6:.1f} MB; the limit is {MAX_IMAGE_BYTES / 1e6:.0f} MB",
            data={"bytes": size, "limit": MAX_IMAGE_BYTES},
        )
    kind = _format_of(data, name)
    if kind not in _FORMATS:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"{name} is not a PNG, JPEG or WebP image"
            + (f" (it is {kind})" if kind else " (it could not be read)"),
            data={"name": name, "format": kind},
        )
    return name, load_image(data)


def _format_of(data: bytes, name: str) -> str | None:
    """PIL's name for the format the bytes claim (header only; decoding comes later)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.format
    except Image.DecompressionBombError as exc:  # a readable header claiming a huge canvas
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"{name} claims a canvas too large to decode (a decompression bomb?)",
            cause=exc,
        ) from exc
    except (OSError, SyntaxError, ValueError):
        return None


def thumbnail_png(pixels: np.ndarray, side: int = THUMB_SIDE) -> bytes:
    im = Image.fromarray(pixels)
    im.thumbnail((side, side))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()
