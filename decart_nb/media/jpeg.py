"""JPEG <-> yuv420p frames, for the widget's comm transport (frames over the Jupyter comm).

Both directions are CPU work of a few milliseconds per 720p frame: call them off the media loop
(its executor), never on it.
"""

from __future__ import annotations

import io

import av
from PIL import Image

from ..errors import DecartNBError, ErrorCode
from .frames import to_rgb

__all__ = ["JPEG_QUALITY", "decode_jpeg", "encode_jpeg"]

JPEG_QUALITY = 70
# A page sends at most the model's size; anything much larger is not a camera frame.
MAX_PIXELS = 4096 * 4096


def decode_jpeg(data: bytes, width: int, height: int) -> av.VideoFrame:
    """A yuv420p frame of `width` x `height` from JPEG (or PNG) bytes, scaled if it differs."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise DecartNBError(
                    ErrorCode.INVALID_INPUT, f"A {image.width}x{image.height} frame is too big"
                )
            rgb = image.convert("RGB")
    except DecartNBError:
        raise
    except Exception as exc:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"The page sent a frame that is not an image: {exc}"
        ) from exc
    frame: av.VideoFrame = av.VideoFrame.from_image(rgb)  # type: ignore[no-untyped-call]  # PyAV 14-16 stub
    # swscale turns full-range RGB into the limited-range yuv420p the encoders and models expect.
    return frame.reformat(width=width, height=height, format="yuv420p")


def encode_jpeg(frame: av.VideoFrame, quality: int = JPEG_QUALITY) -> bytes:
    """The frame as JPEG bytes (4:2:0, like the frame itself)."""
    buf = io.BytesIO()
    Image.fromarray(to_rgb(frame)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
