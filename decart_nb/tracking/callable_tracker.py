"""A user's tracker function, `fn(kind, data)`, called from the Tracker's one logging thread.

Kinds, in order: "start" (data: name, params), "item" (data: row, files) per item, "file" (data:
path) per file of the whole run, "end" (data: {}). One thread makes every call, so the function
needs no locks; whatever it raises is a TRACKER_ERROR for that call, and the next calls go on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from .params import ParamValue

__all__ = ["CallableBackend", "TrackerFunction"]

TrackerFunction = Callable[[str, Mapping[str, object]], None]


class CallableBackend:
    """The Backend for a tracker function (see base.Backend)."""

    needs_start = False  # "item" calls do not depend on "start" having worked

    def __init__(self, fn: TrackerFunction) -> None:
        self._fn = fn
        self.label = f"the tracker function {getattr(fn, '__qualname__', type(fn).__name__)}"

    def start(self, name: str, params: Mapping[str, ParamValue]) -> None:
        self._fn("start", {"name": name, "params": dict(params)})

    def item(self, row: Mapping[str, object], files: Mapping[str, Path]) -> None:
        self._fn("item", {"row": dict(row), "files": dict(files)})

    def file(self, path: Path) -> None:
        self._fn("file", {"path": path})

    def end(self) -> None:
        self._fn("end", {})
