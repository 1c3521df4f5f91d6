"""Writing into a run folder without following a link out of it and without replacing a file.

A run folder may be shared or edited (a link planted under one of its names): every file is
written to a fresh temporary name (created exclusively, so never through a link) and renamed into
place, and appends open the file without following a link.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["free_name", "open_append", "replace_file"]

# O_NOFOLLOW is POSIX; where it is missing (Windows) links need privileges to make anyway.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def replace_file(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write `path` whole: `write` fills a new temporary file, renamed over `path` (a link at
    `path` is replaced, never written through). A reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.part")
    if os.path.lexists(tmp):  # a crashed write's leftover (or a planted link): removed, not followed
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def free_name(path: Path) -> Path:
    """`path`, or if that name is taken `stem.1.suffix`, `stem.2.suffix`, ...: a run never
    replaces a file an earlier row points at. Callers hold the folder's lock."""
    n = 0
    candidate = path
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
    return candidate


def open_append(path: Path) -> int:
    """A descriptor appending to `path` (created if missing); a link there is refused (ELOOP)."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o644)
