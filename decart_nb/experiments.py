"""Sweeps: one connected Session, one results row per (prompt, reference image).

    >>> from decart_nb.experiments import sweep
    >>> result = sweep(["anime", "film noir"], images=[None, "ref.png"], source="pattern")
    >>> result                  # a table with thumbnails in a notebook
    >>> result.contact_sheet()  # a labelled grid of the snapshots

Every item goes through the same session (a set() per item, as with Decart: no reconnect for a new
prompt), so the figures compare prompts and images, not connection set-ups. A failing item (a bad
image, a timeout) is recorded in its row with its error code and the sweep goes on.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import html
import io
import math
import numbers
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiortc.mediastreams import MediaStreamError
from PIL import Image, ImageDraw, ImageFont

from . import _loop
from .checks import check_bool, check_number
from .errors import DecartNBError, ErrorCode
from .images import ImageInput
from .media.frames import meta_of, recv_video
from .media.relay import BroadcastTrack
from .session import Session
from .state import validate_enhance, validate_prompt

__all__ = ["sweep", "SweepResult", "COLUMNS", "LABEL_HEIGHT", "THUMB_WIDTH"]

#: The columns of results.csv, in order.
COLUMNS = (
    "index",
    "prompt",
    "image",
    "enhance",
    "state_version",
    "first_frame_ms",
    "fps_out",
    "latency_ms_p50",
    "latency_ms_p95",
    "model_ms_p50",
    "frames_out",
    "frames_dropped",
    "mean_r",
    "mean_g",
    "mean_b",
    "diff_vs_passthrough",
    "snapshot",
    "clip",
    "error_code",
    "error",
    "engine_errors",
)
LABEL_HEIGHT = 30  # pixels under each contact-sheet thumbnail: prompt line, image line
THUMB_WIDTH = 256
FRAME_TIMEOUT_S = 15.0  # generous: the machine may be busy; a real stall still shows as FRAME_TIMEOUT
_METRIC_SIZE = (160, 90)  # metrics are computed on a small copy: colours and looks, not pixels


def sweep(
    prompts: Sequence[str | None] | str,
    images: Sequence[ImageInput | None] | ImageInput | None = (None,),
    *,
    source: Any = "pattern",
    model: str = "lucy-latest",
    engine: Any = "local",
    enhance: bool = True,
    seconds: float = 2.0,
    frames: int | None = None,
    record_seconds: float = 0.0,
    controls: dict[str, float] | None = None,
    out_dir: str | os.PathLike[str] = "out/sweep",
    session: Session | None = None,
    progress: bool = False,
) -> SweepResult:
    """Run every (prompt, image) combination through one session and measure each.

    Per item: set(prompt, image, enhance); wait for the first frame of the new state; let it run
    `seconds` (or until `frames` frames of the new state came out); snapshot; optionally record
    `record_seconds` of video. Writes the snapshots, results.csv, results.md and contact_sheet.png
    into `out_dir`. Pass a connected `session` (e.g. the camera one) to sweep over it; otherwise
    a session is made from `source`, `model`, `engine` and `controls` and closed at the end.
    """
    # A lone prompt or image is one item (not a sequence of characters, or of array rows).
    prompts = _prompt_list(prompts)
    images = _image_list(images)
    _check_args(prompts, images, seconds, frames, record_seconds)
    validate_enhance(enhance)
    check_bool("progress", progress)
    if session is not None and not isinstance(session, Session):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"session must be a Session, not {type(session).__name__}"
        )
    own = session is None
    # Built (every argument checked) before out_dir is made; connected only in the try below.
    live = session or Session(model=model, engine=engine, source=source, controls=controls)
    out = _make_out_dir(out_dir)
    result = SweepResult(rows=[], out_dir=out, grid_columns=len(images))
    log = _FrameLog()
    failures: list[DecartNBError] = []

    def watch(event: str, payload: Any) -> None:
        if event == "error":  # a watcher, not on(): on() events are held while a cell runs
            failures.append(payload)

    live._events.watch(watch)
    try:
        live.connect()
        _loop.run(log.start(live), timeout=10)
        result.passthrough = _save_passthrough(live, out)
        reference = None
        if result.passthrough is not None:
            with Image.open(result.passthrough) as im:
                reference = _small(im)
        labels = _image_labels(images)
        combos = [(p, img, lbl) for p in prompts for img, lbl in zip(images, labels, strict=True)]
        for index, (prompt, image, label) in enumerate(combos):
            item = _Item(index, prompt, image, label, enhance)
            row = item.run(live, log, failures, seconds, frames, record_seconds, out, reference)
            result.rows.append(row)
            if progress:
                print(_progress_line(row, len(combos)), flush=True)
    finally:
        live._events.unwatch(watch)
        if live.state != "disconnected":
            _loop.run(log.stop(), timeout=10)
        if own:
            live.disconnect()
    result.save()
    return result


def _image_list(images: Any) -> list[ImageInput | None]:
    return list(images) if isinstance(images, (list, tuple)) else [images]


def _prompt_list(prompts: object) -> list[str | None]:
    """The sweep's prompts, each checked now (None: an image-only item), not item by item."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"prompts must be a list of strings, not {type(prompts).__name__}"
        )
    checked: list[str | None] = []
    for i, prompt in enumerate(prompts):
        try:
            checked.append(None if prompt is None else validate_prompt(prompt))
        except DecartNBError as exc:
            raise DecartNBError(exc.code, f"prompts[{i}]: {exc.message}", data=exc.data) from None
    return checked


def _check_args(
    prompts: list[Any], images: list[Any], seconds: object, frames: object, record_seconds: object
) -> None:
    if not prompts or not images:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, "A sweep needs at least one prompt and one image (or None)"
        )
    check_number("seconds", seconds, 0, 600)
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, numbers.Integral)):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"frames must be a whole number or None, not {frames!r:.40}"
        )
    if frames is not None:
        check_number("frames", frames, 1, 10_000)
    check_number("record_seconds", record_seconds, 0, 3600)


def _make_out_dir(out_dir: object) -> Path:
    if not isinstance(out_dir, (str, os.PathLike)):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"out_dir must be a folder path, not {type(out_dir).__name__}"
        )
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, a read-only place
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"Cannot use {out} as the sweep's folder: {exc.strerror or exc}",
            cause=exc,
        ) from exc
    return out


def _save_passthrough(session: Session, out: Path) -> Path | None:
    """The untouched input, as the baseline for `diff_vs_passthrough` (only if the state is empty)."""
    if not session.generation.is_passthrough:
        return None
    path = out / "passthrough.png"
    session.snapshot(timeout=FRAME_TIMEOUT_S).save(path)
    return path


# -- one item ---------------------------------------------------------------------------------
@dataclass
class _Item:
    index: int
    prompt: str | None
    image: ImageInput | None
    label: str
    enhance: bool

    @property
    def stem(self) -> str:
        return f"{self.index:02d}_{_slug(self.prompt or 'no-prompt')}_{_slug(self.label)}"

    def run(
        self,
        session: Session,
        log: _FrameLog,
        failures: list[DecartNBError],
        seconds: float,
        frames: int | None,
        record_seconds: float,
        out: Path,
        reference: np.ndarray | None,
    ) -> dict[str, Any]:
        row: dict[str, Any] = dict.fromkeys(COLUMNS)
        row |= {"index": self.index, "prompt": self.prompt or "", "image": self.label}
        row["enhance"] = self.enhance
        first_failure, start, dropped0 = len(failures), len(log.frames), _dropped(session)
        t_set = time.perf_counter()
        try:
            session.set(prompt=self.prompt, image=self.image, enhance=self.enhance)
            version = session.generation.version
            session.snapshot(timeout=FRAME_TIMEOUT_S)  # returns once a frame of this state is out
            _settle(log, start, version, seconds, frames)
            picture = session.snapshot(timeout=FRAME_TIMEOUT_S)
            row["snapshot"] = str(out / f"{self.stem}.png")
            picture.save(row["snapshot"])
            if record_seconds > 0:
                row["clip"] = str(session.record(out / f"{self.stem}.mp4", record_seconds))
        except DecartNBError as exc:
            row |= {"error_code": exc.code, "error": exc.message}
        else:
            row["state_version"] = version
            row |= _timings(log.frames[start:], version, t_set)
            row |= _looks(picture, reference)
        row["frames_dropped"] = _dropped(session) - dropped0
        row["engine_errors"] = " ".join(sorted({e.code for e in failures[first_failure:]})) or None
        return row


def _dropped(session: Session) -> int:
    return int(session.stats.get("frames_dropped", 0))


def _settle(log: _FrameLog, start: int, version: int, seconds: float, frames: int | None) -> None:
    """Let the new state run: `seconds`, or until `frames` of its frames came out."""
    if frames is None:
        time.sleep(seconds)
        return
    deadline = time.monotonic() + FRAME_TIMEOUT_S + seconds
    while sum(1 for f in log.frames[start:] if f[2] == version) < frames:
        if time.monotonic() > deadline:
            raise DecartNBError(
                ErrorCode.FRAME_TIMEOUT, f"Fewer than {frames} frames of the new state within the timeout"
            )
        time.sleep(0.02)


def _timings(frames: list[_Frame], version: int, t_set: float) -> dict[str, Any]:
    """Rate and latency of this item's own frames (not a rolling window over earlier items)."""
    mine = [f for f in frames if f[2] == version]
    if not mine:
        return {"frames_out": 0}
    arrivals = [f[0] for f in mine]
    span = arrivals[-1] - arrivals[0]
    latency = np.array([(f[0] - f[1]) * 1000.0 for f in mine])
    return {
        "first_frame_ms": round((arrivals[0] - t_set) * 1000.0, 1),
        "fps_out": round((len(mine) - 1) / span, 1) if span > 0 else None,
        "latency_ms_p50": round(float(np.percentile(latency, 50)), 1),
        "latency_ms_p95": round(float(np.percentile(latency, 95)), 1),
        "model_ms_p50": round(float(np.median([f[3] for f in mine])), 1),
        "frames_out": len(mine),
    }


def _looks(picture: Image.Image, reference: np.ndarray | None) -> dict[str, Any]:
    """Mean colour, and the mean absolute difference from the passthrough input (0-255)."""
    small = _small(picture)
    r, g, b = (round(float(c), 1) for c in small.reshape(-1, 3).mean(axis=0))
    diff = None if reference is None else round(float(np.abs(small - reference).mean()), 1)
    return {"mean_r": r, "mean_g": g, "mean_b": b, "diff_vs_passthrough": diff}


def _small(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture.convert("RGB").resize(_METRIC_SIZE, Image.Resampling.BILINEAR), np.int16)


# -- watching the output ------------------------------------------------------------------------
_Frame = tuple[float, float, int, float]  # (arrival, t_in, state version, model ms)


class _FrameLog:
    """Every output frame's timing, appended on the loop thread and read from the sweep's."""

    def __init__(self) -> None:
        self.frames: list[_Frame] = []
        self._track: BroadcastTrack | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, session: Session) -> None:
        pipeline = session._require_pipeline()
        self._track = pipeline.broadcast.subscribe()
        self._task = asyncio.get_running_loop().create_task(self._watch(self._track))

    async def _watch(self, track: BroadcastTrack) -> None:
        try:
            while True:
                frame = await recv_video(track)
                meta = meta_of(frame)
                self.frames.append((time.perf_counter(), meta.t_in, meta.version, meta.model_ms))
        except MediaStreamError:
            return  # the pipeline stopped

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._track is not None:
            self._track.stop()


# -- results ------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    """The rows of a sweep (dicts with COLUMNS), where its files are, and views of it."""

    rows: list[dict[str, Any]]
    out_dir: Path
    grid_columns: int = 0
    passthrough: Path | None = None
    _thumbs: dict[tuple[str, int], Image.Image] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"<SweepResult {len(self.rows)} rows, {len(self.failed)} failed, in {self.out_dir}>"

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["error_code"]]

    def save(self) -> None:
        """Write results.csv, results.md and contact_sheet.png into out_dir."""
        self.to_csv(self.out_dir / "results.csv")
        (self.out_dir / "results.md").write_text(self.to_markdown(relative_to=self.out_dir) + "\n")
        if self.rows:
            self.contact_sheet().save(self.out_dir / "contact_sheet.png")

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in self.rows)
        return path

    def to_markdown(self, relative_to: str | os.PathLike[str] | None = None) -> str:
        """A GitHub-flavoured table; snapshot links are made relative to `relative_to` if given."""
        head = ["#", "prompt", "image", "first frame ms", "fps", "latency p50/p95 ms", "dropped"]
        head += ["diff", "snapshot", "error"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            link = _link(r["snapshot"], relative_to)
            cells = [r["index"], r["prompt"], r["image"], r["first_frame_ms"], r["fps_out"]]
            cells += [f"{_fmt(r['latency_ms_p50'])} / {_fmt(r['latency_ms_p95'])}", r["frames_dropped"]]
            cells += [r["diff_vs_passthrough"], f"[png]({link})" if link else "", _error_text(r)]
            lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
        return "\n".join(lines)

    def to_pandas(self) -> Any:
        """The rows as a pandas DataFrame (pandas is not a dependency: install it to use this)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise DecartNBError(ErrorCode.INVALID_INPUT, "to_pandas() needs pandas installed") from exc
        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def _repr_html_(self) -> str:
        head = ["#", "snapshot", "prompt", "image", "first frame ms", "fps", "latency p50/p95 ms"]
        head += ["dropped", "diff", "error"]
        out = ["<table><thead><tr>", *(f"<th>{h}</th>" for h in head), "</tr></thead><tbody>"]
        for r in self.rows:
            thumb = self._thumb(r, 160)
            img = "" if thumb is None else f'<img src="data:image/jpeg;base64,{_jpeg_b64(thumb)}"/>'
            cells = [r["index"], img, r["prompt"], r["image"], r["first_frame_ms"], r["fps_out"]]
            cells += [f"{_fmt(r['latency_ms_p50'])} / {_fmt(r['latency_ms_p95'])}", r["frames_dropped"]]
            cells += [r["diff_vs_passthrough"], _error_text(r)]
            out.append(
                "<tr>"
                + "".join(f"<td>{c if c is img else html.escape(_fmt(c))}</td>" for c in cells)
                + "</tr>"
            )
        out.append("</tbody></table>")
        return "".join(out)

    def contact_sheet(self, columns: int | None = None, thumb_width: int = THUMB_WIDTH) -> Image.Image:
        """A grid of labelled thumbnails (prompt, then image name; failed items show their code).

        One row per prompt by default (columns = the number of images); each cell is
        `thumb_width` x (thumb height + LABEL_HEIGHT), thumb height keeping the video's aspect.
        """
        if not self.rows:
            raise DecartNBError(ErrorCode.INVALID_INPUT, "The sweep has no rows")
        columns = columns or self.grid_columns or math.ceil(math.sqrt(len(self.rows)))
        if columns < 1:
            raise DecartNBError(ErrorCode.INVALID_INPUT, "columns must be at least 1")
        columns = min(columns, len(self.rows))
        thumb_h = self._thumb_height(thumb_width)
        cell_h = thumb_h + LABEL_HEIGHT
        n_rows = math.ceil(len(self.rows) / columns)
        sheet = Image.new("RGB", (columns * thumb_width, n_rows * cell_h), "white")
        draw = ImageDraw.Draw(sheet)
        font = ImageFont.load_default()
        for i, row in enumerate(self.rows):
            x, y = (i % columns) * thumb_width, (i // columns) * cell_h
            thumb = self._thumb(row, thumb_width)
            if thumb is None:
                draw.rectangle((x, y, x + thumb_width - 1, y + thumb_h - 1), fill=(90, 90, 90))
                draw.text((x + 6, y + 6), str(row["error_code"] or "no frame"), fill="white", font=font)
            else:
                sheet.paste(thumb.resize((thumb_width, thumb_h)), (x, y))
            draw.rectangle((x, y, x + thumb_width - 1, y + cell_h - 1), outline="white", width=2)
            for line, text in enumerate((row["prompt"] or "(no prompt)", row["image"])):
                label = _fit(draw, str(text), font, thumb_width - 8)
                draw.text((x + 4, y + thumb_h + 2 + 14 * line), label, fill="black", font=font)
        return sheet

    def _thumb(self, row: dict[str, Any], width: int) -> Image.Image | None:
        if not row["snapshot"]:
            return None
        key = (row["snapshot"], width)
        if key not in self._thumbs:
            with Image.open(row["snapshot"]) as im:
                height = max(1, round(width * im.height / im.width))
                self._thumbs[key] = im.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        return self._thumbs[key]

    def _thumb_height(self, width: int) -> int:
        for row in self.rows:
            thumb = self._thumb(row, width)
            if thumb is not None:
                return thumb.height
        return round(width * 9 / 16)


# -- small helpers ------------------------------------------------------------------------------
def _image_labels(images: list[ImageInput | None]) -> list[str]:
    """A short name per image: the file name, or 'none', or 'image<i>' for in-memory images."""
    labels = []
    for i, image in enumerate(images):
        if image is None:
            labels.append("none")
        elif isinstance(image, (str, os.PathLike)):
            labels.append(Path(image).name or str(image))
        else:
            labels.append(f"image{i}")
    return labels


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x"


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def _fmt(value: Any) -> str:
    return "" if value is None else str(value)


def _md(value: Any) -> str:
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


def _error_text(row: dict[str, Any]) -> str:
    if row["error_code"]:
        return f"{row['error_code']}: {row['error']}"
    return f"engine: {row['engine_errors']}" if row["engine_errors"] else ""


def _link(path: str | None, relative_to: str | os.PathLike[str] | None) -> str:
    if not path:
        return ""
    return os.path.relpath(path, relative_to) if relative_to is not None else path


def _jpeg_b64(picture: Image.Image) -> str:
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=80)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _progress_line(row: dict[str, Any], total: int) -> str:
    what = f"{row['index'] + 1}/{total} {row['prompt'] or '(no prompt)'} / {row['image']}"
    if row["error_code"]:
        return f"{what}: {row['error_code']}"
    return f"{what}: {_fmt(row['fps_out'])} fps, first frame {_fmt(row['first_frame_ms'])} ms"
