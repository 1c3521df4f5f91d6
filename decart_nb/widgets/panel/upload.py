"""Reading a reference image from the FileUpload widget: one image, or INVALID_INPUT.

Every message names the file (the upload's own name) and lists the formats the picker offers,
exactly (`PICKER`, from which `ACCEPT` is built): a file that gets past the picker (a renamed GIF,
a drag and drop) is checked by its content, not its name, and decoded only as one of those.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from ...errors import DecartNBError, ErrorCode
from ...images import MAX_IMAGE_BYTES, format_names, load_image, not_raster

__all__ = ["ACCEPT", "FORMATS", "UploadedImage", "read_upload", "thumbnail_png"]

# What the file picker offers: Pillow's format name -> its file extensions and MIME type.
PICKER: dict[str, tuple[str, ...]] = {
    "PNG": (".png", "image/png"),
    "JPEG": (".jpg", ".jpeg", "image/jpeg"),
    "WEBP": (".webp", "image/webp"),
}
FORMATS = tuple(PICKER)
_KINDS = [kind for kinds in PICKER.values() for kind in kinds]
ACCEPT = ",".join([k for k in _KINDS if k.startswith(".")] + [k for k in _KINDS if not k.startswith(".")])
THUMB_SIDE = 160
_NAME_CHARS = 80  # of a file's name, in a message


class UploadedImage(np.ndarray):
    """An upload's pixels that carry its file name (`name`) to the session, whose snapshot and
    clip labels name the reference image; a plain array everywhere else."""

    name: str = "image"

    def __array_finalize__(self, obj: object) -> None:
        self.name = getattr(obj, "name", "image")


def read_upload(value: Sequence[Mapping[str, Any]]) -> tuple[str, np.ndarray]:
    """The file's name and its pixels (RGB uint8, an UploadedImage) from a FileUpload value."""
    if not value:
        raise DecartNBError(ErrorCode.INVALID_INPUT, "No file was uploaded")
    item = value[0]
    name = str(item.get("name") or "image")
    shown = name if len(name) <= _NAME_CHARS else name[: _NAME_CHARS - 1] + "…"
    data = bytes(item.get("content", b""))
    size = max(len(data), int(item.get("size") or 0))
    if size > MAX_IMAGE_BYTES:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"{shown} is {size / 1e6:.1f} MB; the limit is {MAX_IMAGE_BYTES / 1e6:.0f} MB",
            data={"bytes": size, "limit": MAX_IMAGE_BYTES},
        )
    kind = _format_of(data, shown)
    if kind not in FORMATS:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"{shown} is not a {format_names(FORMATS)} image ({_what_it_is(data, kind)})",
            data={"name": name, "format": kind},
        )
    pixels = load_image(data, name=shown, formats=FORMATS).view(UploadedImage)
    pixels.name = name
    return name, pixels


def _what_it_is(data: bytes, kind: str | None) -> str:
    if kind:
        return f"it is {kind}"
    if not data:
        return "it is empty"
    other = not_raster(data)
    return f"it is {other}" if other else "it could not be read"


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
    im = Image.fromarray(np.asarray(pixels))
    im.thumbnail((side, side))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()
