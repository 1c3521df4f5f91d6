"""SweepResult: a sweep's rows and files, as a table (HTML, Markdown, CSV, pandas) and a contact sheet."""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from PIL import Image, ImageDraw, ImageFont

from ..errors import DecartNBError, ErrorCode
from .columns import BLANK, MEANING, blank_notes, why_blank
from .folder_io import replace_file
from .rows import COLUMNS, Row

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LABEL_HEIGHT", "THUMB_WIDTH", "SweepResult"]

LABEL_HEIGHT = 30  # pixels under each contact-sheet thumbnail: prompt line, image line
THUMB_WIDTH = 256
# A 1,000-item study would make a 40,000-pixel-tall sheet and a notebook cell of megabytes of
# thumbnails: the views show the first rows; every row is in results.csv / results.jsonl.
SHEET_LIMIT = 240
HTML_LIMIT = 200


# -- results ------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    """The rows of a sweep (dicts with COLUMNS), where its files are, and views of it."""

    rows: list[Row]
    out_dir: Path
    grid_columns: int = 0
    passthrough: Path | None = None  # the (first) source's untouched input
    passthroughs: dict[str, Path] = field(default_factory=dict)  # by source label
    skipped: int = 0  # rows taken from an earlier run of the same folder (resume)
    #: The tracker's failures (TRACKER_ERROR): the rows and files are all in out_dir regardless.
    tracker_errors: list[DecartNBError] = field(default_factory=list)
    _thumbs: dict[tuple[str, int], Image.Image] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        resumed = f", {self.skipped} from an earlier run" if self.skipped else ""
        return f"<SweepResult {len(self.rows)} rows, {len(self.failed)} failed{resumed}, in {self.out_dir}>"

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r["error_code"]]

    @property
    def columns(self) -> tuple[str, ...]:
        """COLUMNS, then the metrics hook's columns in the order they first appear."""
        extra: dict[str, None] = {}
        for row in self.rows:
            extra |= dict.fromkeys(k for k in row if k not in COLUMNS)
        return COLUMNS + tuple(extra)

    def save(self) -> None:
        """Write results.csv (in item order), results.md and contact_sheet.png into out_dir, each
        whole (a new file renamed into place, never written through a link)."""
        replace_file(self.out_dir / "results.csv", self._write_csv)  # the appended CSV is replaced whole
        markdown = (self.to_markdown(relative_to=self.out_dir) + "\n").encode()
        replace_file(self.out_dir / "results.md", lambda f: f.write(markdown))
        if self.rows:
            sheet = self.contact_sheet()
            replace_file(self.out_dir / "contact_sheet.png", lambda f: sheet.save(f, format="PNG"))

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        with path.open("wb") as f:
            self._write_csv(f)
        return path

    def _write_csv(self, f: BinaryIO) -> None:
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        writer = csv.DictWriter(text, fieldnames=self.columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in self.rows)
        text.flush()
        text.detach()  # f stays open: its owner closes it

    def to_markdown(self, relative_to: str | os.PathLike[str] | None = None) -> str:
        """A GitHub-flavoured table; snapshot links are made relative to `relative_to` if given.
        A blank measurement shows as a dash, and a footnote under the table says why."""
        arms = self.has_arms
        head = ["#", "prompt", "image", *(["arm"] if arms else []), "first frame ms", "fps"]
        head += ["latency p50/p95 ms", "dropped", "diff", "snapshot", "error"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            link = _link(r["snapshot"], relative_to)
            cells = [r["index"], r["prompt"], r["image"], *([r["arm"]] if arms else [])]
            cells += [_shown(r, "first_frame_ms"), _shown(r, "fps_out")]
            cells += [_latency(r), _shown(r, "frames_dropped"), _shown(r, "diff_vs_passthrough")]
            cells += [f"[png]({link})" if link else BLANK, _error_text(r)]
            lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
        notes = self.blank_notes(_SHOWN)
        if notes:
            lines.append("")
            lines += [f"- **{_HEADER[c]}** {BLANK} {_md('; '.join(why))}" for c, why in notes.items()]
        return "\n".join(lines)

    @property
    def has_arms(self) -> bool:
        """An arms sweep (its views show the arm of each row)."""
        return any(r.get("arm") for r in self.rows)

    def blank_notes(self, columns: tuple[str, ...] | None = None) -> dict[str, list[str]]:
        """For each column (of `columns`, default all) with blank cells: why they are blank."""
        return blank_notes(self.rows, self.columns if columns is None else columns)

    def to_pandas(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame (pandas is not a dependency: install it to use this).
        `df.attrs["columns"]` says what each column means, `df.attrs["blank"]` why a column has
        blank (NaN/None) cells in this result."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise DecartNBError(ErrorCode.INVALID_INPUT, "to_pandas() needs pandas installed") from exc
        frame = pd.DataFrame(self.rows, columns=list(self.columns))
        frame.attrs["columns"] = {c: MEANING.get(c, "a column of the metrics hook") for c in self.columns}
        frame.attrs["blank"] = {c: "; ".join(why) for c, why in self.blank_notes().items()}
        return frame

    def _repr_html_(self) -> str:
        shown = self.rows[:HTML_LIMIT]
        arms = self.has_arms
        heads = _HTML_HEAD[:4] + ((("arm", "arm"),) if arms else ()) + _HTML_HEAD[4:]
        out = ["<table><thead><tr>", *(_th(h, key) for h, key in heads), "</tr></thead><tbody>"]
        for r in shown:
            thumb = self._thumb(r, 160)
            img = "" if thumb is None else f'<img src="data:image/jpeg;base64,{_jpeg_b64(thumb)}"/>'
            cells = [_td(r["index"]), f"<td>{img}</td>" if img else _td_blank(r, "snapshot")]
            cells += [_td(r["prompt"]), _td(r["image"]), *([_td(r["arm"])] if arms else [])]
            cells += [
                _td_value(r, "first_frame_ms"),
                _td_value(r, "fps_out"),
            ]
            latency = _latency(r)
            cells += [_td(latency) if latency != BLANK else _td_blank(r, "latency_ms_p50")]
            cells += [
                _td_value(r, "frames_dropped"),
                _td_value(r, "diff_vs_passthrough"),
                _td(_error_text(r)),
            ]
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
        notes = blank_notes(shown, _SHOWN)
        if notes:
            items = "".join(
                f"<li><b>{html.escape(_HEADER[c])}</b> {BLANK} {html.escape('; '.join(why))}</li>"
                for c, why in notes.items()
            )
            out.append(f'<ul class="dnb-sweep-notes">{items}</ul>')
        if len(self.rows) > HTML_LIMIT:
            more = len(self.rows) - HTML_LIMIT
            out.append(
                f"<p>... and {more} more rows: result.to_pandas(), or results.csv in {self.out_dir}</p>"
            )
        return "".join(out)

    def contact_sheet(
        self, columns: int | None = None, thumb_width: int = THUMB_WIDTH, limit: int | None = SHEET_LIMIT
    ) -> Image.Image:
        """A grid of labelled thumbnails (prompt, then image name; failed items show their code).

        One row per prompt by default (columns = the number of images; in an arms sweep each
        image's arms side by side, left to right in the order given, as in the live view); each cell is
        `thumb_width` x (thumb height + LABEL_HEIGHT), thumb height keeping the video's aspect.
        The first `limit` rows only (None: all of them).
        """
        rows = self.rows if limit is None else self.rows[:limit]
        if not rows:
            raise DecartNBError(ErrorCode.INVALID_INPUT, "The sweep has no rows")
        columns = columns or self.grid_columns or math.ceil(math.sqrt(len(rows)))
        if columns < 1:
            raise DecartNBError(ErrorCode.INVALID_INPUT, "columns must be at least 1")
        columns = min(columns, len(rows))
        thumb_h = self._thumb_height(thumb_width)
        cell_h = thumb_h + LABEL_HEIGHT
        n_rows = math.ceil(len(rows) / columns)
        sheet = Image.new("RGB", (columns * thumb_width, n_rows * cell_h), "white")
        draw = ImageDraw.Draw(sheet)
        font = ImageFont.load_default()
        varies = [a for a in ("source", "seed", "repeat") if len({r.get(a) for r in rows}) > 1]
        for i, row in enumerate(rows):
            x, y = (i % columns) * thumb_width, (i // columns) * cell_h
            thumb = self._thumb(row, thumb_width)
            if thumb is None:
                draw.rectangle((x, y, x + thumb_width - 1, y + thumb_h - 1), fill=(90, 90, 90))
                draw.text((x + 6, y + 6), str(row["error_code"] or "no frame"), fill="white", font=font)
            else:
                sheet.paste(thumb.resize((thumb_width, thumb_h)), (x, y))
            draw.rectangle((x, y, x + thumb_width - 1, y + cell_h - 1), outline="white", width=2)
            for line, text in enumerate((row["prompt"] or "(no prompt)", _second_line(row, varies))):
                label = _fit(draw, str(text), font, thumb_width - 8)
                draw.text((x + 4, y + thumb_h + 2 + 14 * line), label, fill="black", font=font)
        return sheet

    def _thumb(self, row: Row, width: int) -> Image.Image | None:
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
def _second_line(row: Row, varies: list[str]) -> str:
    """The arm (an arms sweep), the image's name, then the other axes that differ between rows
    (source, seed, repeat)."""
    parts = ([str(row["arm"])] if row.get("arm") else []) + [str(row["image"])]
    parts += [f"{row[a]}" if a == "source" else f"{a} {row[a]}" for a in varies]
    return " | ".join(parts)


def _fit(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int
) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


# The HTML table's columns: header, the row column that explains it (None: never blank).
_HTML_HEAD: tuple[tuple[str, str | None], ...] = (
    ("#", "index"),
    ("snapshot", "snapshot"),
    ("prompt", "prompt"),
    ("image", "image"),
    ("first frame ms", "first_frame_ms"),
    ("fps", "fps_out"),
    ("latency p50/p95 ms", "latency_ms_p50"),
    ("dropped", "frames_dropped"),
    ("diff", "diff_vs_passthrough"),
    ("error", "error_code"),
)
_HEADER = {key: head for head, key in _HTML_HEAD if key is not None}
# The measured columns the views show, whose blanks get a dash and a footnote (a blank error is
# no error, which its header says).
_SHOWN = ("snapshot", "first_frame_ms", "fps_out", "latency_ms_p50", "frames_dropped", "diff_vs_passthrough")


def _th(head: str, key: str | None) -> str:
    meaning = MEANING.get(key or "", "")
    title = f' title="{html.escape(meaning, quote=True)}"' if meaning else ""
    return f"<th{title}>{html.escape(head)}</th>"


def _td(value: object) -> str:
    return f"<td>{html.escape(_fmt(value))}</td>"


def _td_value(row: Row, column: str) -> str:
    return _td(row[column]) if why_blank(row, column) is None else _td_blank(row, column)


def _td_blank(row: Row, column: str) -> str:
    why = why_blank(row, column) or ""
    return f'<td title="{html.escape(why, quote=True)}">{BLANK}</td>'


def _shown(row: Row, column: str) -> object:
    return BLANK if why_blank(row, column) is not None else row[column]


def _latency(row: Row) -> str:
    if why_blank(row, "latency_ms_p50") is not None:
        return BLANK
    return f"{_fmt(row['latency_ms_p50'])} / {_fmt(row['latency_ms_p95'])}"


def _fmt(value: object) -> str:
    return "" if value is None else str(value)


def _md(value: object) -> str:
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


def _error_text(row: Row) -> str:
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
