"""Snapshots and recordings saved next to the notebook: the out folder, file names and labels.

A saved output is named `<date>_<time>_<prompt slug>.<png|mp4>` (sortable by name, readable at a
glance) in the session's `out_dir` (default `out/` in the kernel's working directory, which in
Jupyter is the notebook's folder). A name already taken gets `_02`, `_03`, ... (sorted after it):
a file is created
exclusively (O_EXCL), so nothing is ever overwritten and no link is followed. The label (kind, time,
prompt, reference image, model) goes into the file's metadata too (PNG text chunks, mp4 tags), so
`read_label(path)` gives it back.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import av
from PIL import Image, PngImagePlugin

from .checks import looks_like_url
from .errors import DecartNBError, ErrorCode

__all__ = ["DEFAULT_OUT_DIR", "Label", "check_out_dir", "read_label", "reserve", "save_png"]

DEFAULT_OUT_DIR = "out"
Kind = Literal["snapshot", "clip"]
_SLUG_CHARS = 40  # of the prompt, in a file name
_TEXT_CHARS = 48  # of the prompt, in a label shown next to a preview
_MAX_TRIES = 99  # names tried in one second before giving up (`_02` ... `_99`)
_META_KEY = "decart_nb"  # the PNG text chunk / mp4 comment that holds the label as JSON
_NOT_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class Label:
    """What a saved output shows: its kind, when it was taken and the state it was made with."""

    kind: Kind
    at: str  # local time, ISO 8601 to the second
    prompt: str | None
    image: str | None  # the reference image's name ("image" when it has none), None: no image
    model: str

    @classmethod
    def now(cls, kind: Kind, prompt: str | None, image: str | None, model: str) -> Label:
        return cls(kind, datetime.now().isoformat(timespec="seconds"), prompt, image, model)

    @property
    def text(self) -> str:
        """e.g. "Snapshot 21:35:02 · anime · no image · lucy-latest"."""
        prompt = _shorten(self.prompt, _TEXT_CHARS) if self.prompt else "no prompt"
        image = self.image or "no image"
        return f"{self.kind.capitalize()} {self.at[11:19]} · {prompt} · {image} · {self.model}"

    def file_name(self, suffix: str, n: int = 1) -> str:
        stamp = self.at[:19].replace("T", "_").replace(":", "-")
        slug = _slug(self.prompt)
        return f"{stamp}_{slug}{'' if n == 1 else f'_{n:02d}'}{suffix}"  # '_' sorts after '.'

    def as_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def check_out_dir(out_dir: object) -> Path:
    """Session(out_dir=...): a local folder, made absolute now (a later os.chdir moves nothing)."""
    if not isinstance(out_dir, (str, os.PathLike)) or looks_like_url(out_dir) or not str(out_dir):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"out_dir must be a local folder path, not {out_dir!r:.60}"
        )
    path = Path(out_dir).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise DecartNBError(ErrorCode.INVALID_INPUT, f"out_dir {path} is a file, not a folder")
    return path


def reserve(out_dir: Path, label: Label, suffix: str) -> Path:
    """Create an empty file with the label's name (or the first free `-n` variant) in out_dir."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1, _MAX_TRIES + 1):
            path = out_dir / label.file_name(suffix, n)
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            except FileExistsError:
                continue
            return path
    except OSError as exc:
        raise _cannot_save(out_dir, exc) from exc
    raise _cannot_save(
        out_dir, FileExistsError(f"{_MAX_TRIES} names like {label.file_name(suffix)} are taken")
    )


def save_png(image: Image.Image, label: Label, out_dir: Path) -> Path:
    """Write `image` as a PNG with its label in text chunks; returns its path."""
    path = reserve(out_dir, label, ".png")
    info = PngImagePlugin.PngInfo()
    for key, value in png_text(label).items():
        info.add_itxt(key, value)
    try:
        with path.open("wb") as file:  # the reserved file (made above, so no link to follow)
            image.save(file, format="PNG", pnginfo=info)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise _cannot_save(out_dir, exc) from exc
    return path


def png_text(label: Label) -> dict[str, str]:
    """PNG's own keywords (Title, Description, Creation Time, Software) and the label as JSON."""
    return {
        "Title": label.text,
        "Description": label.prompt or "",
        "Creation Time": label.at,
        "Software": "decart_nb",
        _META_KEY: label.as_json(),
    }


def mp4_tags(label: Label) -> dict[str, str]:
    """Tags the mp4 muxer keeps (title, comment, date, encoder-side `creation_time`)."""
    return {"title": label.text, "comment": label.as_json(), "date": label.at[:10]}


def read_label(path: str | os.PathLike[str]) -> Label | None:
    """The label saved in a PNG's text chunks or an mp4's comment; None if it has none."""
    file = Path(path)
    try:
        if file.suffix.lower() == ".png":
            with Image.open(file) as im:
                raw = im.info.get(_META_KEY)
        else:
            with av.open(str(file)) as container:
                raw = container.metadata.get("comment")
    except (OSError, av.FFmpegError):
        return None
    if not isinstance(raw, str):
        return None
    try:
        return Label(**json.loads(raw))
    except (ValueError, TypeError):
        return None  # someone else's comment


def _slug(prompt: str | None) -> str:
    words = _NOT_WORD.sub("-", (prompt or "").lower()).strip("-")
    if not words:
        return "no-prompt" if not prompt else "prompt"
    cut = words[:_SLUG_CHARS]
    if len(words) > _SLUG_CHARS and "-" in cut:
        cut = cut[: cut.rindex("-")]  # at a word's end
    return cut


def _shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _cannot_save(out_dir: Path, exc: BaseException) -> DecartNBError:
    return DecartNBError(ErrorCode.INVALID_INPUT, f"Cannot save into {out_dir}: {exc}", cause=exc)
