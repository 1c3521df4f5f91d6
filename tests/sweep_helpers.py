"""Helpers for the sweep tests (importable by a Dask worker process: `client.run` pickles them by
reference, and the worker imports this module from the same tree)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import pytest

from decart_nb.sweeps import lanes
from decart_nb.tracking import Tracker


def lane_count() -> int:
    """How many sweep lanes (open sessions) this process holds."""
    with lanes._lanes_lock:
        return len(lanes._lanes)


class Calls:
    """A tracker function fn(kind, data), and the threads log_item was called on."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.kinds: list[str] = []
        self.data: list[Mapping[str, object]] = []
        self.threads: set[int] = set()
        self.fail_on = fail_on

    def __call__(self, kind: str, data: Mapping[str, object]) -> None:
        self.threads.add(threading.get_ident())
        self.kinds.append(kind)
        self.data.append(data)
        if kind == self.fail_on:
            raise ConnectionError("the tracking server is gone")


def item_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The threads Tracker.log_item is called on (the sweep's `finished`)."""
    seen: list[int] = []
    log_item = Tracker.log_item

    def recorded(self: Tracker, row: Mapping[str, object], files: Mapping[str, Path]) -> None:
        seen.append(threading.get_ident())
        log_item(self, row, files)

    monkeypatch.setattr(Tracker, "log_item", recorded)
    return seen
