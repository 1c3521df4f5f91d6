"""Experiment trackers for sweeps: MLflow, Weights & Biases, or a function of yours.

    >>> from decart_nb.tracking import check_tracker, open_tracker
    >>> check_tracker("mlflow")          # before a run starts: INVALID_INPUT or SDK_NOT_INSTALLED
    >>> tracker = open_tracker("mlflow", name="sweep 3fa2", params={"model": "lucy"}, out_dir=out)
    >>> tracker.log_item(row, {"snapshot": out / "00_anime.png"})   # any thread; returns at once
    >>> tracker.log_run_file(out / "results.csv")
    >>> failures = tracker.close()       # [DecartNBError(TRACKER_ERROR), ...], already logged

- "mlflow": one parent run per sweep (named `name`, with `params`), one nested child run per item
  (the row's text/bool columns and axes as params, its numbers as metrics, the snapshot and clip as
  artifacts). Store: MLFLOW_TRACKING_URI, else a local SQLite store in `out_dir/mlruns/`.
- "wandb": one run per sweep (offline unless WANDB_MODE says otherwise, files in `out_dir/wandb/`),
  a step per item and an `items` table.
- a function `fn(kind, data)`: kind "start" (name, params), "item" (row, files), "file" (path),
  "end" ({}), called from one thread.

All logging happens on the tracker's one thread (base.Tracker). Nothing that looks like the API
key reaches a tracker (params.py). A tracker's failure never stops a sweep: the run folder has
everything, and close() returns what failed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path

from ..errors import DecartNBError, ErrorCode
from .base import Backend, Tracker
from .callable_tracker import CallableBackend
from .mlflow_tracker import MlflowBackend
from .wandb_tracker import WandbBackend

__all__ = ["TRACKERS", "Tracker", "TrackerSpec", "check_tracker", "open_tracker"]

#: tracker=: "mlflow", "wandb", a function fn(kind, data), or None (no tracker).
TrackerSpec = str | Callable[[str, Mapping[str, object]], None] | None

#: The trackers by name: (the module to import, the pip extra that installs it).
TRACKERS: dict[str, tuple[str, str]] = {"mlflow": ("mlflow", "mlflow"), "wandb": ("wandb", "wandb")}


def check_tracker(tracker: object) -> None:
    """Raise DecartNBError now, before a run starts, if `tracker` cannot be used: INVALID_INPUT
    for an unknown name or a wrong type, SDK_NOT_INSTALLED when its library is missing."""
    if tracker is None or (callable(tracker) and not isinstance(tracker, (str, type))):
        return
    if not isinstance(tracker, str):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            'tracker must be "mlflow", "wandb", a function fn(kind, data) or None, '
            f"not {type(tracker).__name__}",
            data={"tracker": type(tracker).__name__},
        )
    if tracker not in TRACKERS:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f'unknown tracker {tracker!r}: use "mlflow", "wandb", a function fn(kind, data) or None',
            data={"tracker": tracker},
        )
    module, extra = TRACKERS[tracker]
    if importlib.util.find_spec(module) is None:  # found, not imported: importing mlflow takes seconds
        raise DecartNBError(
            ErrorCode.SDK_NOT_INSTALLED,
            f"tracker={tracker!r} needs the {module} package: pip install 'decart_nb[{extra}]'",
            data={"tracker": tracker, "package": module},
        )


def open_tracker(tracker: TrackerSpec, *, name: str, params: Mapping[str, object], out_dir: Path) -> Tracker:
    """A Tracker whose thread starts the parent run (`name`, `params` without secrets) at once.
    `tracker=None` gives one that logs nothing. Checks `tracker` first (see check_tracker).
    Relative file paths given to the Tracker (a row's file names) are taken from `out_dir`."""
    check_tracker(tracker)
    backend: Backend | None
    if tracker is None:
        backend = None
    elif tracker == "mlflow":
        backend = MlflowBackend(Path(out_dir))
    elif tracker == "wandb":
        backend = WandbBackend(Path(out_dir))
    elif callable(tracker):
        backend = CallableBackend(tracker)
    else:  # check_tracker let only these through
        raise AssertionError(tracker)
    return Tracker(backend, name=name, params=params, base_dir=Path(out_dir))
