"""The results row: its columns, and rows for items that could not run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from PIL import Image

from ..errors import DecartNBError
from .items import Item

__all__ = [
    "ADDED_COLUMNS",
    "COLUMNS",
    "ITEM_FAULTS",
    "Metrics",
    "Row",
    "error_row",
    "new_row",
    "row_problem",
    "upgrade",
]

# A results row: a JSON object of the COLUMNS (their types in _KINDS) and a metrics hook's own
# columns (any JSON value). Rows are read by column name, by this package and by users alike.
Row = dict[str, Any]
# The user's hook: the item's snapshot and a copy of its row; returns extra columns.
Metrics = Callable[[Image.Image, Row], Mapping[str, object]]

# -- the columns and a stored row's shape (checked on resume: the file may have been edited) ----
_TEXT = (str,)
_NUMBER = (int, float)
_KINDS: dict[str, tuple[tuple[type, ...], bool]] = {  # column: (allowed types, None allowed), in order
    "index": ((int,), False),
    "prompt": (_TEXT, False),
    "image": (_TEXT, False),
    "source": (_TEXT, False),
    "arm": (_TEXT, True),
    "seed": ((int,), True),
    "repeat": ((int,), False),
    "enhance": ((bool,), False),
    "state_version": ((int,), True),
    "first_frame_ms": (_NUMBER, True),
    "fps_out": (_NUMBER, True),
    "latency_ms_p50": (_NUMBER, True),
    "latency_ms_p95": (_NUMBER, True),
    "model_ms_p50": (_NUMBER, True),
    "frames_out": ((int,), True),
    "frames_dropped": ((int,), True),
    "generation_s": (_NUMBER, True),
    "queue_wait_s": (_NUMBER, True),
    "time_to_first_frame_ms": (_NUMBER, True),
    "mean_r": (_NUMBER, True),
    "mean_g": (_NUMBER, True),
    "mean_b": (_NUMBER, True),
    "diff_vs_passthrough": (_NUMBER, True),
    "snapshot": (_TEXT, True),
    "clip": (_TEXT, True),
    "error_code": (_TEXT, True),
    "error": (_TEXT, True),
    "engine_errors": (_TEXT, True),
    "attempts": ((int,), True),
    "worker": (_TEXT, True),
    "key": (_TEXT, False),
}
#: The columns of results.csv, in order (a metrics hook's columns follow them).
COLUMNS = tuple(_KINDS)
#: Columns added after run folders were first written (issue 23): a stored row without them is
#: still a row (resume reads it as None), so folders written before them resume.
ADDED_COLUMNS = ("arm", "generation_s", "queue_wait_s", "time_to_first_frame_ms")

# Failures that are the item's own (its input, the user's metrics hook): a new session would fail
# the same way, so they are recorded at once. Every other failure is the session's: it is replaced
# and the item retried once.
METRICS_ERROR = "METRICS_ERROR"
ITEM_FAULTS = frozenset({"INVALID_INPUT", METRICS_ERROR})


def new_row(item: Item, enhance: bool) -> Row:
    return dict.fromkeys(COLUMNS) | item.describe() | {"enhance": enhance}


def error_row(item: Item, enhance: bool, exc: BaseException) -> Row:
    row = new_row(item, enhance)
    if isinstance(exc, DecartNBError):
        return row | {"error_code": exc.code, "error": exc.message}
    return row | {"error_code": type(exc).__name__, "error": str(exc) or repr(exc)}


_TYPE_NAMES = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}


def row_problem(row: object) -> str | None:
    """What is wrong with a stored row's shape, or None. Metric columns (not built in) may hold any
    JSON value; every built-in column must be there with its type."""
    if not isinstance(row, dict):
        return f"a row is a JSON object, not {_json_kind(row)}"
    for column, (kinds, nullable) in _KINDS.items():
        if column not in row and column in ADDED_COLUMNS:
            continue  # an older folder's row (upgrade() fills it in)
        if column not in row:
            return f"the column {column!r} is missing"
        value = row[column]
        if value is None and nullable:
            continue
        # bool is an int in Python, not in a row: true is no frame count
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            what = " or ".join(_TYPE_NAMES[k] for k in kinds) + (" or null" if nullable else "")
            return f"{column!r} must be {what}, not {_json_kind(value)}"
    if not row["key"]:
        return "'key' is empty"
    return None


def upgrade(row: Row) -> Row:
    """A checked stored row with the columns added since it was written (None: not measured then)."""
    for column in ADDED_COLUMNS:
        row.setdefault(column, None)
    return row


def _json_kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}
    if isinstance(value, bool) or type(value) in names:
        return names[type(value)]
    return "a number" if isinstance(value, (int, float)) else type(value).__name__
