"""sweep(tracker=...) (issue 23): one tracker run per sweep, every finished row logged with its
files from the caller's thread (whatever ran the item), the run's files at the end; a failing
tracker never stops a sweep nor loses a row."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from decart_nb import DecartNBError, ErrorCode
from decart_nb.experiments import sweep
from tests.sweep_helpers import Calls, item_threads

RUN: dict[str, Any] = {"engine": "local", "seconds": 0, "frames": 2}


def invert(frame: np.ndarray, state: object) -> np.ndarray:
    return 255 - frame


def test_one_tracker_run_per_sweep_rows_from_the_callers_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads, calls = item_threads(monkeypatch), Calls()
    result = sweep(
        ["a", "b", "c", "d"],
        engine=invert,
        seconds=0,
        frames=2,
        concurrency=2,
        tracker=calls,
        out_dir=tmp_path,
    )
    assert not result.failed and result.tracker_errors == []
    # Pool threads ran the items ...
    assert all(r["worker"].rsplit(":", 1)[1].startswith("decart_nb-sweep") for r in result.rows)
    assert threads == [threading.get_ident()] * 4  # ... and every row reached the tracker here
    assert calls.kinds[0] == "start" and calls.kinds[-1] == "end"
    run_id = json.loads((tmp_path / "run.json").read_text())["runs"][0]["run_id"]
    assert calls.data[0]["params"]["run_id"] == run_id  # type: ignore[index]  # the tracker run names its run.json entry
    assert calls.kinds.count("item") == 4 and len(calls.threads) == 1  # the tracker's own one thread
    items = [d for k, d in zip(calls.kinds, calls.data, strict=True) if k == "item"]
    assert all(Path(str(d["files"]["snapshot"])).is_file() for d in items)  # type: ignore[index]
    files = [Path(str(d["path"])).name for k, d in zip(calls.kinds, calls.data, strict=True) if k == "file"]
    assert files == ["run.json", "results.csv", "contact_sheet.png"]


def test_a_failing_tracker_loses_no_row_and_says_so(tmp_path: Path) -> None:
    calls = Calls(fail_on="item")
    with pytest.warns(RuntimeWarning, match="the tracker failed"):
        result = sweep(["a", "b"], tracker=calls, out_dir=tmp_path, **RUN)
    assert not result.failed and len(result.rows) == 2
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 2
    assert result.tracker_errors and {e.code for e in result.tracker_errors} == {ErrorCode.TRACKER_ERROR}
    assert "tracker_errors" in (tmp_path / "run.json").read_text()


def test_a_bad_tracker_fails_before_the_folder_is_made(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for tracker in ("no-such-tracker", 3):
        with pytest.raises(DecartNBError) as info:
            sweep(["a"], tracker=tracker, out_dir=out, **RUN)  # type: ignore[arg-type]
        assert info.value.code == ErrorCode.INVALID_INPUT
    assert not out.exists()


def test_an_arms_sweep_logged_to_mlflow_reads_back_with_no_key(tmp_path: Path) -> None:
    """The real MLflow library on a local store: the sweep's run, a child per row (per arm), the
    run's files, and no trace of an arm's API key."""
    pytest.importorskip("mlflow", reason="decart_nb[mlflow] is not installed")
    from mlflow import MlflowClient

    from decart_nb.arms import Arm
    from decart_nb.tracking.mlflow_tracker import default_tracking_uri

    key = "sk-tracked-arm-91c3d2"
    arms = [Arm(name="inv", engine=invert, api_key=key), Arm(name="plain", engine="local")]
    result = sweep(["a", "b"], arms=arms, tracker="mlflow", out_dir=tmp_path, seconds=0, frames=2)
    assert not result.failed and result.tracker_errors == []
    client = MlflowClient(tracking_uri=default_tracking_uri(tmp_path))
    experiment = client.get_experiment_by_name("decart_nb")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4
    assert sorted(c.data.params["arm"] for c in children) == ["inv", "inv", "plain", "plain"]
    logged = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"run.json", "results.csv", "contact_sheet.png"} <= logged
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
