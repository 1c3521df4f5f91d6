"""Dispatch: items to a thread pool, a concurrent.futures Executor or a Dask Client, at most
`inflight` at once (the next item goes to the next free worker); a task that dies (a worker process
lost) is resubmitted once, then its item recorded as failed."""

from __future__ import annotations

import concurrent.futures
import logging
import queue
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from .items import Item
from .lanes import Outcome, RunSpec, SweepStopped, close_lanes, run_item, stop_run
from .rows import error_row

if TYPE_CHECKING:  # for the type checker only: typing has TypeIs from Python 3.13
    from typing_extensions import TypeIs

__all__ = ["DaskClient", "Executor", "default_inflight", "dispatch", "is_dask_client"]

logger = logging.getLogger("decart_nb")


class TaskFuture(Protocol):
    """A concurrent.futures Future or a Dask one, as dispatch uses them."""

    def result(self) -> Outcome: ...

    def cancel(self) -> bool: ...

    def add_done_callback(self, fn: Callable[[TaskFuture], object], /) -> None: ...


class DaskClient(Protocol):
    """What dispatch uses of a dask.distributed Client (not a dependency of decart_nb)."""

    def nthreads(self) -> Mapping[str, int]: ...

    def submit(
        self, fn: Callable[[RunSpec, Item], Outcome], spec: RunSpec, item: Item, /, *, pure: bool, key: str
    ) -> TaskFuture: ...

    def run(self, fn: Callable[[str], int], run_id: str, /) -> object: ...


Executor = concurrent.futures.Executor | DaskClient


def is_dask_client(executor: object) -> TypeIs[DaskClient]:
    return type(executor).__module__.split(".")[0] == "distributed" and hasattr(executor, "nthreads")


def default_inflight(executor: Executor) -> int:
    """All of a cluster's worker threads; a concurrent.futures pool's workers."""
    if is_dask_client(executor):
        return max(1, sum(executor.nthreads().values()))
    return max(1, int(getattr(executor, "_max_workers", 1)))


def dispatch(
    executor: Executor,
    spec: RunSpec,
    items: Sequence[Item],
    inflight: int,
    on_done: Callable[[Outcome], None],
) -> None:
    """Run every item; `on_done` gets each outcome in the caller's thread, as it completes."""
    # Never more than `inflight` futures are outstanding, so this queue is bounded by them.
    done: queue.Queue[TaskFuture] = queue.Queue(maxsize=inflight)
    pending = deque(items)
    running: dict[TaskFuture, tuple[Item, int]] = {}

    def submit(item: Item, tries: int) -> None:
        future: TaskFuture
        if is_dask_client(executor):
            future = executor.submit(
                run_item, spec, item, pure=False, key=f"decart_nb-{spec.run_id}-{item.index}-{tries}"
            )
        else:
            future = executor.submit(run_item, spec, item)
        running[future] = (item, tries)
        future.add_done_callback(done.put)

    try:
        while pending or running:
            while pending and len(running) < inflight:
                submit(pending.popleft(), 1)
            future = _next_done(done)
            item, tries = running.pop(future)
            try:
                outcome = future.result()
            except SweepStopped:
                raise
            except Exception as exc:  # noqa: BLE001 - the task died (a lost worker): retried, then a row
                logger.warning(
                    "decart_nb sweep: task for item %s failed (try %s): %r", item.index, tries, exc
                )
                if tries == 1:
                    submit(item, 2)
                    continue
                outcome = {"row": error_row(item, spec.enhance, exc) | {"attempts": 2}, "files": {}}
            on_done(outcome)
    except BaseException:
        _stop(executor, spec.run_id, list(running))
        raise
    finally:
        _close(executor, spec.run_id)


def _next_done(done: queue.Queue[TaskFuture]) -> TaskFuture:
    while True:  # a timeout keeps the wait interruptible by Ctrl-C on every platform
        try:
            return done.get(timeout=0.5)
        except queue.Empty:
            continue


def _stop(executor: Executor, run_id: str, futures: list[TaskFuture]) -> None:
    """Ctrl-C or a failure: cancel what has not started, and end the run's sessions everywhere."""
    for future in futures:
        future.cancel()
    if is_dask_client(executor):
        executor.run(stop_run, run_id)
    stop_run(run_id)  # this process's lanes (a thread pool's)


def _close(executor: Executor, run_id: str) -> None:
    if is_dask_client(executor):
        executor.run(close_lanes, run_id)
    close_lanes(run_id)
