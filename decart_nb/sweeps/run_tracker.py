"""A sweep's experiment tracker (`tracker=`: "mlflow", "wandb" or a callable; decart_nb/tracking/):
one tracker run per sweep, each finished row a child item with its files, the run's files at the
end. The tracker never stops a sweep nor loses a row (the run folder is the record): its failures
(TRACKER_ERROR) are logged as they happen, collected, warned about once at the end and kept on the
result (`SweepResult.tracker_errors`) and in run.json.

Rows reach the tracker from `finished`, on the caller's thread (dispatch hands every outcome
there, whatever runs the items: this thread, a pool, a Dask cluster); the tracker itself logs
from its one thread (MLflow's fluent API is not thread-safe).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

from ..errors import DecartNBError, ErrorCode
from ..tracking import Tracker, TrackerSpec, open_tracker
from ..tracking import check_tracker as _check
from .rows import Row

__all__ = ["RunTracker", "check_tracker"]

logger = logging.getLogger("decart_nb")

FILE_COLUMNS = ("snapshot", "clip")


def check_tracker(tracker: object) -> None:
    """INVALID_INPUT or SDK_NOT_INSTALLED up front, before the run folder is made."""
    _check(tracker)


class RunTracker:
    """The sweep's one tracker run, or nothing (tracker=None)."""

    def __init__(
        self, tracker: TrackerSpec, *, name: str, params: Mapping[str, object], out_dir: Path
    ) -> None:
        self.errors: list[DecartNBError] = []
        self._tracker: Tracker | None = None
        if tracker is None:
            return
        try:
            self._tracker = open_tracker(tracker, name=name, params=params, out_dir=out_dir)
        except Exception as exc:  # noqa: BLE001 - the sweep goes on without it; said at the end
            self._failed("open the tracker run", exc)

    @property
    def active(self) -> bool:
        return self._tracker is not None

    def item(self, row: Row) -> None:
        """A finished row and its files (caller's thread; the tracker hands it to its own thread)."""
        if self._tracker is None:
            return
        files = {c: Path(row[c]) for c in FILE_COLUMNS if row.get(c)}
        try:
            self._tracker.log_item(dict(row), files)
        except Exception as exc:  # noqa: BLE001 - the row is in the folder already
            self._failed(f"log item {row.get('index')}", exc)

    def finish(self, files: list[Path]) -> list[DecartNBError]:
        """Log the run's files, close the tracker run; returns every failure of this run's
        tracking (and warns once if there were any)."""
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            for path in files:
                if path.is_file():
                    try:
                        tracker.log_run_file(path)
                    except Exception as exc:  # noqa: BLE001 - the file is in the folder
                        self._failed(f"log {path.name}", exc)
            try:
                self.errors += tracker.close()
            except Exception as exc:  # noqa: BLE001 - as above
                self._failed("close the tracker run", exc)
        if self.errors:
            codes = "; ".join(e.message for e in self.errors[:3])
            more = f" (and {len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
            warnings.warn(
                f"decart_nb sweep: the tracker failed {len(self.errors)} time(s): {codes}{more}. "
                "Every row and file is in the run folder; result.tracker_errors lists the failures.",
                RuntimeWarning,
                stacklevel=3,
            )
        return self.errors

    def _failed(self, doing: str, exc: Exception) -> None:
        error = (
            exc
            if isinstance(exc, DecartNBError) and exc.code == ErrorCode.TRACKER_ERROR
            else DecartNBError(ErrorCode.TRACKER_ERROR, f"The tracker could not {doing}: {exc}", cause=exc)
        )
        logger.warning("decart_nb sweep: %s", error.message)
        self.errors.append(error)
