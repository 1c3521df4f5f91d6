"""The fake camera's pictures: which clip Chromium's fake camera loops in a bench run.

"plain" is write_stamped_clip (smooth bars and a moving disc: cheap to encode). Every picture
carries the frame stamp (decart_nb.media.stamp) that the bench reads to count presented frames.
"""

from __future__ import annotations

from pathlib import Path

from .lab import write_stamped_clip

__all__ = ["PICTURES", "write_clip"]

PICTURES = ("plain",)


def write_clip(path: Path, picture: str = "plain", seconds: float = 4.0) -> Path:
    """A stamped 1280x720@30 y4m clip of the named picture."""
    if picture == "plain":
        return write_stamped_clip(path, seconds=seconds)
    raise ValueError(f"unknown picture {picture!r}; pictures: {', '.join(PICTURES)}")
