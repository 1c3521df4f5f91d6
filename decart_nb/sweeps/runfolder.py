"""The run folder: every finished row is appended to results.jsonl (and results.csv) as it lands,
so a re-run with the same folder skips what is done and an interrupted run loses only items in flight.

results.jsonl is the record resume reads: one JSON object per line, written with one write() of a
whole line, flushed and fsynced before the next item counts as done. Files (snapshots, clips) are
written first, to a temporary name renamed into place, so a row never points at half a file.

What a folder promises (issue 19):
- One run at a time: a run holds the folder's lock (`.sweep.lock`, an flock: a crashed run's lock
  is free again at once) from its first read to its last write; a second run stops at once.
- Nothing is replaced: resume=False sets the earlier record and its views aside under the first
  free suffix (`results.jsonl.previous`, then `.previous.1`, ...); an item file whose name is taken
  is written under a new one (`name.1.png`).
- Rows read back are checked: each line must be a row of the right shape, and its files must be
  in the folder (no absolute path, no `..`, no link out); anything else stops the resume with
  INVALID_INPUT naming the line. The one damage a crash can leave, a last line cut short, is
  dropped with a warning and its item runs again.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from filelock import BaseFileLock, FileLock, Timeout

from ..errors import DecartNBError, ErrorCode
from .folder_io import free_name, open_append, replace_file
from .rows import Row, row_problem, upgrade

__all__ = ["LOCK_FILE", "RESULTS_JSONL", "RunFolder"]

logger = logging.getLogger("decart_nb")

RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
CONTACT_SHEET = "contact_sheet.png"
LOCK_FILE = ".sweep.lock"
# What resume=False sets aside: the views first, the record last (a crash in between leaves the
# record in place, and the next run resumes from it).
SET_ASIDE = (RESULTS_CSV, RESULTS_MD, CONTACT_SHEET, RESULTS_JSONL)
FILE_COLUMNS = ("snapshot", "clip")
ITEM_FILE_SUFFIXES = (".png", ".mp4")  # what a worker may hand the coordinator to write


class RunFolder:
    """Appends rows and files to a sweep's folder; knows which item keys are done."""

    def __init__(self, out: Path, columns: Sequence[str]) -> None:
        self.out = out
        self.columns = tuple(columns)
        self.jsonl = out / RESULTS_JSONL
        self.csv = out / RESULTS_CSV
        # Held on the folder, and released explicitly: a failed run's frames (this folder with them)
        # live on in the traceback IPython keeps, so garbage collection would not free the lock.
        self._lock: BaseFileLock | None = None

    # -- one run at a time ---------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """Held for a whole run; released on every exit (an error, Ctrl-C), and by the OS if the
        process dies, so a crash leaves no stale lock behind."""
        path = self.out / LOCK_FILE
        if path.is_symlink():  # older filelock versions open it following links, and truncate
            raise DecartNBError(ErrorCode.INVALID_INPUT, f"Cannot lock {self.out}: {path} is a link")
        lock = FileLock(str(path), blocking=False, thread_local=False)
        try:
            lock.acquire()
        except Timeout as exc:
            raise DecartNBError(
                ErrorCode.FOLDER_BUSY,
                f"Another sweep is using {self.out} (in this process or another): two runs would "
                "both write its results. Wait for that run to end, or pass another out_dir.",
                cause=exc,
            ) from exc
        except OSError as exc:  # a read-only folder, a link put there since the check
            raise DecartNBError(
                ErrorCode.INVALID_INPUT, f"Cannot lock {self.out}: {exc.strerror or exc}", cause=exc
            ) from exc
        self._lock = lock
        try:
            yield
        finally:
            self._lock = None
            lock.release()

    # -- reading -------------------------------------------------------------------------------
    def load(self) -> tuple[dict[str, Row], int]:
        """Rows by key (a later row of a key wins: a retried item), and how many torn lines were
        dropped (0 or 1). A row of the wrong shape stops with INVALID_INPUT naming its line."""
        data = self._read_record()
        *whole, tail = data.split(b"\n")  # tail: after the last newline (b"" in a whole file)
        rows: dict[str, Row] = {}
        for n, line in enumerate(whole, 1):
            if line.strip():  # a blank line (an editor's) holds no row
                row = self._row(line, n)
                rows[row["key"]] = row
        if not tail.strip():  # nothing after the last row (or an editor's spaces): appends follow
            return rows, 0
        last = len(whole) + 1
        if _is_cut_short(tail):
            self._drop_torn(len(data) - len(tail), last)
            return rows, 1
        row = self._row(tail, last)  # a whole row that lacks only its newline (an edited file)
        with os.fdopen(open_append(self.jsonl), "ab") as f:
            f.write(b"\n")  # the next append starts a line of its own
        rows[row["key"]] = row
        return rows, 0

    def _read_record(self) -> bytes:
        try:
            fd = os.open(self.jsonl, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return b""
        except OSError as exc:  # ELOOP: a link where the record should be
            raise self._damaged(
                0, f"it cannot be read ({exc.strerror}; a link is not followed)", exc
            ) from exc
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def _row(self, line: bytes, n: int) -> Row:
        try:
            row: Row = json.loads(line)
        except ValueError as exc:  # not JSON, or not UTF-8
            raise self._damaged(n, f"it is not a JSON row ({exc})", exc) from exc
        problem = row_problem(row)
        if problem is not None:
            raise self._damaged(n, problem)
        upgrade(row)  # a row written before the newer columns existed
        for column in FILE_COLUMNS:
            row[column] = self._inside(row[column], column, n)
        return row

    def _inside(self, value: str | None, column: str, n: int) -> str | None:
        """A row's file, as a full path, if it is a file name in this folder (not a link out)."""
        if not value:
            return None
        if value in (".", "..") or "\0" in value or any(s and s in value for s in (os.sep, os.altsep)):
            raise self._damaged(n, f"its {column} {value[:80]!r} is not a file name in the run folder")
        try:
            resolved = (self.out / value).resolve()
            inside = resolved.parent == self.out.resolve()
        except (OSError, RuntimeError) as exc:  # a link loop
            raise self._damaged(n, f"its {column} {value[:80]!r} cannot be resolved ({exc})", exc) from exc
        if not inside:
            raise self._damaged(n, f"its {column} {value[:80]!r} is a link out of the run folder")
        return str(self.out / value)

    def _drop_torn(self, good_end: int, n: int) -> None:
        """A crash in the middle of an append: the fragment is cut so the next append starts a new
        line; its item was never counted as done, so it runs again."""
        logger.warning(
            "decart_nb sweep: dropped line %s of %s, cut short by an interrupted write; its item runs again",
            n,
            self.jsonl,
        )
        fd = open_append(self.jsonl)
        try:
            os.ftruncate(fd, good_end)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _damaged(self, n: int, what: str, cause: BaseException | None = None) -> DecartNBError:
        where, fix = (f"{self.jsonl}, line {n}", "Fix or delete that line") if n else (self.jsonl, "Fix it")
        return DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"Cannot resume from {where}: {what}. {fix}, or pass resume=False to start over (the "
            "file is then set aside, not deleted).",
            data={"path": str(self.jsonl), "line": n},
            cause=cause,
        )

    # -- starting ------------------------------------------------------------------------------
    def start_over(self) -> tuple[int, str | None]:
        """resume=False: the earlier record and its views are renamed (never replaced or deleted)
        with the first suffix free for all of them; returns the earlier line count and the
        record's new name (None if there was none)."""
        present = [name for name in SET_ASIDE if os.path.lexists(self.out / name)]
        earlier, moved = 0, None
        if present:
            suffix = self._free_suffix()
            if RESULTS_JSONL in present:
                earlier = self._read_record().count(b"\n")  # not checked: a damaged file is set aside too
                moved = RESULTS_JSONL + suffix
            for name in present:
                os.replace(self.out / name, self.out / (name + suffix))
        self._write_csv([])
        return earlier, moved

    def _free_suffix(self) -> str:
        n = 0
        while True:
            suffix = ".previous" if n == 0 else f".previous.{n}"
            if not any(os.path.lexists(self.out / (name + suffix)) for name in SET_ASIDE):
                return suffix
            n += 1

    def begin(self, rows: Iterable[Row]) -> None:
        """The CSV mirrors the rows kept from earlier runs before new ones are appended."""
        self._write_csv(rows)

    # -- appending -----------------------------------------------------------------------------
    def store(self, row: Row, files: Mapping[str, bytes]) -> Row:
        """An item's files first (renamed into place), then its row: a row never points at a
        missing file. Returns the row with full paths to the files as written."""
        problem = row_problem(row)
        if problem is not None:  # a worker's row is checked as resume will check it
            raise DecartNBError(ErrorCode.INVALID_INPUT, f"An item's row cannot be stored: {problem}")
        written: dict[str, Path] = {}
        for name, data in files.items():
            _check_file_name(name)
            if name.startswith("passthrough") and os.path.lexists(self.out / name):
                continue  # the first session of a source wrote it
            written[name] = self.write_file(name, data)
        for column in FILE_COLUMNS:
            ref = row[column]
            if ref and ref not in written:  # a worker's row names only files it sent
                raise DecartNBError(
                    ErrorCode.INVALID_INPUT, f"An item's row names a {column} it did not send: {ref!r:.80}"
                )
            if ref:
                row[column] = str(written[ref])
        self.append(row)
        return row

    def write_file(self, name: str, data: bytes) -> Path:
        """Under `name`, or a free variant of it if that is taken (see free_name)."""
        return replace_file(free_name(self.out / name), lambda f: f.write(data))

    def append(self, row: Row) -> None:
        stored = dict(row)
        for column in FILE_COLUMNS:
            if stored.get(column):
                stored[column] = Path(stored[column]).name  # relative: the folder may move
        line = (json.dumps(stored, default=_jsonable) + "\n").encode()
        fd = open_append(self.jsonl)
        try:
            start = os.fstat(fd).st_size
            if os.write(fd, line) != len(line):  # one write of the whole line; a short one (disk full)
                os.ftruncate(fd, start)  # is taken back, so no half row is left for the next line
                raise OSError(f"could not append a whole row to {self.jsonl} (disk full?)")
            os.fsync(fd)
        finally:
            os.close(fd)
        with os.fdopen(open_append(self.csv), "a", encoding="utf-8", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writerow(_cells(row))

    def _write_csv(self, rows: Iterable[Mapping[str, object]]) -> None:
        def write(f: BinaryIO) -> None:
            text = io.TextIOWrapper(f, encoding="utf-8", newline="")
            writer = csv.DictWriter(text, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(_cells(r) for r in rows)
            text.flush()
            text.detach()  # f is closed by replace_file

        replace_file(self.csv, write)


def _is_cut_short(tail: bytes) -> bool:
    """The last line, with no newline: a row cut short by a crash (the start of a JSON object that
    does not parse; the zeros a power loss can leave) rather than text put there otherwise."""
    if not tail.strip(b"\0"):
        return True
    if not tail.startswith(b"{"):
        return False
    try:
        json.loads(tail)
    except ValueError:
        return True
    return False


def _check_file_name(name: object) -> None:
    """A file a worker sends is an item file in the folder itself: a plain name, nothing else."""
    ok = (
        isinstance(name, str)
        and name == Path(name).name
        and not name.startswith(".")
        and "\\" not in name
        and "\0" not in name
        and name.endswith(ITEM_FILE_SUFFIXES)
    )
    if not ok:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"An item's file name is not a file in the run folder: {name!r:.80}"
        )


def _cells(row: Mapping[str, object]) -> Row:
    return {k: "" if v is None else v for k, v in row.items()}


def _jsonable(value: object) -> object:
    """numpy scalars and the like from a metrics hook: their Python value, else their text."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)
