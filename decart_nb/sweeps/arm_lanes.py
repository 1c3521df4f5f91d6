"""Arms sweeps: one Comparison per source (every arm sees the same input frames), each combination
set on all arms at once, measured and snapshotted per arm: one row per arm, with its own files.

Runs in the caller's thread: a comparison already runs its arms side by side. A comparison that
fails (any arm's session fault) is closed and the combination retried once on a new one; the
caller's own comparison (`comparison=`) is used as it is and left open.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from itertools import groupby
from typing import TYPE_CHECKING

import numpy as np

from .. import _loop, ui_pump
from ..errors import DecartNBError
from ..session import Session
from ..session_port import port_of
from .arm_specs import enhance_for
from .items import Item
from .lane_figures import LaneFigures
from .lanes import Outcome, RunSpec, metric_columns, png_bytes, record_clip
from .measure import FRAME_TIMEOUT_S, FrameLog, dropped, looks, settle, small, timings
from .rows import ITEM_FAULTS, Row, error_row, new_row

if TYPE_CHECKING:
    from ..arms import Arm
    from ..comparison import Comparison

__all__ = ["ArmLane", "run_arms"]

logger = logging.getLogger("decart_nb")


class _ArmWatch:
    """One arm's frame log, lane figures and asynchronous errors."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.log = FrameLog()
        self.figures = LaneFigures(session)
        self.failures: list[DecartNBError] = []

    def __call__(self, event: str, payload: object) -> None:  # a port listener: any thread
        self.figures.watch(event, payload)
        if event == "error" and isinstance(payload, DecartNBError):
            self.failures.append(payload)


class ArmLane:
    """A connected Comparison serving one source, and what each arm reports."""

    def __init__(
        self, spec: RunSpec, arms: Sequence[Arm] | None, source: object, comparison: Comparison | None = None
    ) -> None:
        self.own = comparison is None
        if comparison is None:
            from ..comparison import compare

            comparison = compare(list(arms or ()), source=source)
        self.comparison = comparison
        self.arms = {a.name: a for a in arms or ()}
        self.watches = {name: _ArmWatch(s) for name, s in comparison.arms.items()}
        self.source_id = ""
        self.references: dict[str, np.ndarray] = {}
        self.passthrough: bytes | None = None
        self._closed = False

    def open(self) -> ArmLane:
        cmp = self.comparison
        for watch in self.watches.values():
            port_of(watch.session).listen(watch)
        try:
            measured = cmp.input.state == "disconnected"  # not a caller's connected comparison
            if measured:
                for watch in self.watches.values():
                    watch.figures.connecting()
                cmp.connect()
                for watch in self.watches.values():
                    watch.figures.connected()
            for name, watch in self.watches.items():
                picture = watch.session.snapshot(timeout=FRAME_TIMEOUT_S)  # the arm's first output frame
                if measured:
                    watch.figures.first_frame()
                # The shared input makes no output of its own: an arm still in passthrough shows
                # the untouched input, diff_vs_passthrough's base for that arm.
                if watch.session.generation.is_passthrough:
                    self.references[name] = small(picture)
                    if self.passthrough is None:
                        self.passthrough = png_bytes(picture)
            for watch in self.watches.values():
                _loop.run(watch.log.start(watch.session), timeout=10)
        except BaseException:
            self.close()
            raise
        return self

    @property
    def healthy(self) -> bool:
        states = [w.session.state for w in self.watches.values()]
        return not self._closed and all(s in ("connected", "generating") for s in states)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for watch in self.watches.values():
                port_of(watch.session).unlisten(watch)
                if watch.session.state != "disconnected":
                    _loop.run(watch.log.stop(), timeout=10)
        finally:
            if self.own:
                self.comparison.disconnect()

    # -- one combination on every arm ------------------------------------------------------------
    def run(self, items: list[Item], spec: RunSpec) -> list[Outcome]:
        """`items`: one combination's items, one per arm (those not done yet)."""
        first = items[0]
        outcomes = {it.arm: Outcome(row=new_row(it, self._enhance(spec, it)), files={}) for it in items}
        if self.passthrough is not None:
            outcomes[first.arm]["files"][spec.passthrough_name(first.source_label)] = self.passthrough
            self.passthrough = None
        start = {}
        for name, watch in self.watches.items():
            watch.log.clear()
            start[name] = (len(watch.failures), dropped(watch.session), watch.figures.billed_seconds())
        try:
            t_set = self._set(first, spec)
        except DecartNBError as exc:  # the item's own input (a bad image): every arm's row says so
            for outcome in outcomes.values():
                outcome["row"] |= {"error_code": exc.code, "error": exc.message}
        else:
            self._measure(items, outcomes, spec, t_set)
        for item in items:
            watch, row = self.watches[str(item.arm)], outcomes[item.arm]["row"]
            failures, dropped0, billed0 = start[str(item.arm)]
            row["frames_dropped"] = dropped(watch.session) - dropped0
            row |= watch.figures.row_figures(billed0)
            errors = {e.code for e in watch.failures[failures:]}
            row["engine_errors"] = " ".join(sorted(errors)) or None
        return [outcomes[it.arm] for it in items]

    def _enhance(self, spec: RunSpec, item: Item) -> bool:
        return enhance_for(spec.enhance, self.arms.get(item.arm))

    def _set(self, item: Item, spec: RunSpec) -> dict[str, float]:
        """All arms to the item's state at once; per arm, one after another, only when their
        enhance differs. Returns when each arm's set began (its first_frame_ms counts from there)."""
        wanted = {name: enhance_for(spec.enhance, self.arms.get(name)) for name in self.watches}
        if len(set(wanted.values())) == 1:
            began = time.perf_counter()
            self.comparison.set(prompt=item.prompt, image=item.image, enhance=next(iter(wanted.values())))
            return dict.fromkeys(wanted, began)
        t_set: dict[str, float] = {}
        for name, enhance in wanted.items():
            t_set[name] = time.perf_counter()
            self.comparison.set(prompt=item.prompt, image=item.image, enhance=enhance, arm=name)
        return t_set

    def _measure(
        self, items: list[Item], outcomes: dict[str | None, Outcome], spec: RunSpec, t_set: dict[str, float]
    ) -> None:
        versions: dict[str, int] = {}
        for item in items:  # each arm's first frame of the new state
            name = str(item.arm)
            session = self.watches[name].session
            try:
                versions[name] = session.generation.version
                session.snapshot(timeout=FRAME_TIMEOUT_S)
            except DecartNBError as exc:
                outcomes[item.arm]["row"] |= {"error_code": exc.code, "error": exc.message}
        if spec.frames is None:
            ui_pump.sleep(spec.seconds)  # every arm runs for the same time
        for item in items:
            name = str(item.arm)
            if name in versions and not outcomes[item.arm]["row"]["error_code"]:
                self._finish_arm(item, outcomes[item.arm], versions[name], spec, t_set[name])

    def _finish_arm(self, item: Item, outcome: Outcome, version: int, spec: RunSpec, t_set: float) -> None:
        watch, row, files = self.watches[str(item.arm)], outcome["row"], outcome["files"]
        try:
            if spec.frames is not None:
                settle(watch.log, 0, version, 0.0, spec.frames)
            picture = watch.session.snapshot(timeout=FRAME_TIMEOUT_S)
            files[f"{item.stem}.png"] = png_bytes(picture)
            row["snapshot"] = f"{item.stem}.png"
            if spec.record_seconds > 0:
                files[f"{item.stem}.mp4"] = record_clip(watch.session, spec.record_seconds)
                row["clip"] = f"{item.stem}.mp4"
        except DecartNBError as exc:
            row |= {"error_code": exc.code, "error": exc.message}
            return
        row["state_version"] = version
        row |= timings(list(watch.log.frames), version, t_set)
        row |= looks(picture, self.references.get(str(item.arm)))
        row |= metric_columns(spec.metrics, picture, row)


def run_arms(
    todo: list[Item],
    spec: RunSpec,
    finished: Callable[[Outcome], None],
    *,
    arms: Sequence[Arm] | None,
    comparison: Comparison | None,
) -> None:
    """Every combination of `todo` on a comparison of the arms (or the caller's), in this thread."""
    lane: ArmLane | None = None
    try:
        for _, grouped in groupby(todo, key=lambda it: it.group):
            group = list(grouped)
            for attempt in (1, 2):
                if lane is not None and (lane.source_id != group[0].source_id or not lane.healthy):
                    if lane.own:
                        lane.close()
                        lane = None
                outcomes, lane = _attempt(lane, group, spec, arms, comparison)
                faults = [o for o in outcomes if _session_fault(o["row"])]
                if not faults or attempt == 2 or comparison is not None:
                    break
                logger.info(
                    "decart_nb sweep: a comparison failed on item %s; retrying on a new one", group[0].index
                )
                if lane is not None:
                    lane.close()
                    lane = None
            for outcome in outcomes:
                outcome["row"] |= {"attempts": attempt, "worker": "inline"}
                finished(outcome)
    finally:
        if lane is not None:
            lane.close()


def _attempt(
    lane: ArmLane | None,
    group: list[Item],
    spec: RunSpec,
    arms: Sequence[Arm] | None,
    comparison: Comparison | None,
) -> tuple[list[Outcome], ArmLane | None]:
    try:
        if lane is None:
            lane = ArmLane(spec, arms, group[0].source, comparison)
            lane.source_id = group[0].source_id
            lane.open()
        return lane.run(group, spec), lane
    except DecartNBError as exc:  # the comparison could not be made or connected
        failed: list[Outcome] = [{"row": error_row(it, spec.enhance, exc), "files": {}} for it in group]
    except Exception as exc:  # a defect: logged with its traceback, in the rows
        logger.exception("decart_nb sweep: item %s failed unexpectedly", group[0].index)
        failed = [{"row": error_row(it, spec.enhance, exc), "files": {}} for it in group]
    if lane is not None:
        try:
            lane.close()
        except Exception:
            logger.exception("decart_nb sweep: closing a failed comparison failed")
    return failed, None


def _session_fault(row: Row) -> bool:
    code = row["error_code"]
    return bool(code) and code not in ITEM_FAULTS
