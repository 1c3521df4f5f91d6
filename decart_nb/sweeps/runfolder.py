"""The run folder: every finished row is appended to results.jsonl (and results.csv) as it lands,
so a re-run with the same folder skips what is done and an interrupted run loses only items in flight.

results.jsonl is the record resume reads: one JSON object per line, written with one write() of a
whole line, flushed and fsynced before the next item counts as done. A line cut short by a crash
(the only damage an interrupted append can leave) is dropped on the next start and its item re-run.
Files (snapshots, clips) are written first, to a temporary name renamed into place, so a row never
points at half a file.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["RunFolder", "RESULTS_JSONL"]

logger = logging.getLogger("decart_nb")

RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"


class RunFolder:
    """Appends rows and files to a sweep's folder; knows which item keys are done."""

    def __init__(self, out: Path, columns: Sequence[str]) -> None:
        self.out = out
        self.columns = tuple(columns)
        self.jsonl = out / RESULTS_JSONL
        self.csv = out / RESULTS_CSV

    # -- reading -------------------------------------------------------------------------------
    def load(self) -> tuple[dict[str, dict[str, Any]], int]:
        """Rows by key (a later row of a key wins: a retried item), and how many torn lines were dropped."""
        if not self.jsonl.exists():
            return {}, 0
        data = self.jsonl.read_bytes()
        lines = data.splitlines(keepends=True)
        rows: dict[str, dict[str, Any]] = {}
        good_end, torn = 0, 0
        for n, line in enumerate(lines):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("no newline: the write was cut short")
                row = json.loads(line)
                rows[row["key"]] = self._absolute(row)
            except (ValueError, KeyError, TypeError) as exc:
                if n != len(lines) - 1:  # only the last line can be torn by an interrupted append
                    raise ValueError(f"{self.jsonl} is damaged at line {n + 1}: {exc}") from exc
                torn += 1
                logger.warning("decart_nb sweep: dropped a torn last line of %s (%s)", self.jsonl, exc)
            else:
                good_end += len(line)
        if good_end < len(data):
            with self.jsonl.open("r+b") as f:  # cut the torn tail so the next append starts a new line
                f.truncate(good_end)
        return rows, torn

    def _absolute(self, row: dict[str, Any]) -> dict[str, Any]:
        """Files are stored relative to the folder (it may move); rows in memory carry full paths."""
        for name in ("snapshot", "clip"):
            if row.get(name):
                row[name] = str(self.out / row[name])
        return row

    # -- starting ------------------------------------------------------------------------------
    def start_over(self) -> int:
        """resume=False: set earlier results aside (renamed, never deleted); returns their count."""
        if not self.jsonl.exists():
            self._write_csv([])
            return 0
        earlier, _ = self.load()
        os.replace(self.jsonl, self.jsonl.with_suffix(".jsonl.previous"))
        self._write_csv([])
        return len(earlier)

    def begin(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """The CSV mirrors the rows kept from earlier runs before new ones are appended."""
        self._write_csv(rows)

    # -- appending -----------------------------------------------------------------------------
    def write_file(self, name: str, data: bytes) -> Path:
        path = self.out / name
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path

    def append(self, row: Mapping[str, Any]) -> None:
        stored = dict(row)
        for name in ("snapshot", "clip"):
            if stored.get(name):
                stored[name] = os.path.relpath(stored[name], self.out)
        line = (json.dumps(stored, default=_jsonable) + "\n").encode()
        fd = os.open(self.jsonl, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write of the whole line
            os.fsync(fd)
        finally:
            os.close(fd)
        with self.csv.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writerow(_cells(row))

    def rewrite_csv(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
        """At the end: the CSV in item order, with the metric columns (atomic replace)."""
        self._write_csv(rows, columns)

    def _write_csv(self, rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> None:
        tmp = self.csv.with_name(f".{self.csv.name}.part")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=tuple(columns or self.columns), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(_cells(r) for r in rows)
        os.replace(tmp, self.csv)


def _cells(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: "" if v is None else v for k, v in row.items()}


def _jsonable(value: Any) -> Any:
    """numpy scalars and the like from a metrics hook: their Python value, else their text."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)
