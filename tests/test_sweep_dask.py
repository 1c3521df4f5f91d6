"""sweep(executor=<Dask Client>): a LocalCluster of two worker processes on 127.0.0.1, each running
its own sessions; rows and files stream back into one run folder. The cluster's processes are
always gone after the module (checked)."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from decart_nb import DecartNBError
from decart_nb.experiments import COLUMNS, sweep
from decart_nb.sweeps.runfolder import RunFolder
from tests.sweep_helpers import Calls, item_threads, lane_count

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

PROMPTS = ["anime", "film noir", "pencil sketch", "watercolor painting", "neon", "sepia"]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",  # loopback only, ports chosen by the system
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    try:
        with distributed.Client(cluster) as c:
            c.wait_for_workers(2, timeout=60)
            yield c
    finally:
        cluster.close(timeout=30)
        # multiprocessing's resource tracker is Python's own helper, shared and ended with this process.
        left = [p for p in me.children(recursive=True) if p.pid not in before and not _tracker(p)]
        _, alive = psutil.wait_procs(left, timeout=30)
        for p in alive:  # never leave a worker behind, even when close() did not finish the job
            p.kill()
        assert not alive, f"cluster processes left running: {alive}"


def _tracker(process: Any) -> bool:
    try:
        return "multiprocessing.resource_tracker" in " ".join(process.cmdline())
    except psutil.Error:  # already gone
        return False


def test_a_sweep_runs_on_two_worker_processes_into_one_folder(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads, calls = item_threads(monkeypatch), Calls()

    def width(snapshot: Image.Image, row: dict[str, Any]) -> dict[str, Any]:
        return {"width": snapshot.width, "pid": os.getpid()}  # runs on the worker

    result = sweep(
        PROMPTS,
        source="pattern",
        seconds=0,
        frames=2,
        executor=client,
        metrics=width,
        tracker=calls,
        out_dir=tmp_path,
    )
    assert [r["prompt"] for r in result.rows] == PROMPTS and not result.failed
    pids = {r["pid"] for r in result.rows}
    assert len(pids) == 2 and os.getpid() not in pids  # both workers ran items, none ran here
    assert {r["worker"].split(":")[1] for r in result.rows} == {str(p) for p in pids}
    assert all(r["width"] == 1280 and Path(r["snapshot"]).is_file() for r in result.rows)
    assert result.passthrough is not None and result.passthrough.is_file()
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["prompt"] for r in lines) == sorted(PROMPTS)
    # Rows reach the tracker on the coordinator's (this) thread, the tracker logs from its one thread.
    assert threads == [threading.get_ident()] * len(PROMPTS) and len(calls.threads) == 1
    assert calls.kinds.count("item") == len(PROMPTS) and not result.tracker_errors
    # The workers' sessions were closed at the end (not left streaming on the cluster).
    assert set(client.run(lane_count).values()) == {0}


def test_a_resumed_cluster_sweep_submits_only_what_is_missing(client: Any, tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {
        "source": "pattern",
        "seconds": 0,
        "frames": 2,
        "executor": client,
        "out_dir": tmp_path,
    }
    sweep(PROMPTS[:2], **kwargs)
    result = sweep(PROMPTS[:3], **kwargs)
    assert result.skipped == 2 and [r["prompt"] for r in result.rows] == PROMPTS[:3]
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["prompt"] for line in lines) == sorted(PROMPTS[:3])  # nothing twice


def test_the_coordinator_holds_the_folder_for_the_whole_cluster_run(client: Any, tmp_path: Path) -> None:
    """A worker process (on this host) that tries the folder while the run is on finds it taken;
    after the run the folder is free again."""
    out = str(tmp_path)

    def busy(snapshot: Image.Image, row: dict[str, Any]) -> dict[str, Any]:
        try:
            with RunFolder(Path(out), COLUMNS).locked():
                return {"busy": False}
        except DecartNBError as exc:
            return {"busy": "Another sweep is using" in exc.message}

    result = sweep(
        PROMPTS[:2], source="pattern", seconds=0, frames=2, executor=client, metrics=busy, out_dir=out
    )
    assert [r["busy"] for r in result.rows] == [True, True] and not result.failed
    # Released once the run returned: taking it raises no FOLDER_BUSY.
    with RunFolder(tmp_path, COLUMNS).locked():
        pass
