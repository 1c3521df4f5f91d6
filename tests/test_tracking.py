"""decart_nb.tracking: MLflow (the real library, a local store), W&B offline, a tracker function.

The MLflow test reads the runs back through MLflow's own API (MlflowClient.search_runs). No test
reaches anything but the local store: MLflow's telemetry is turned off, W&B runs offline, and
the suite runs inside a loopback-only namespace.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from decart_nb.errors import DecartNBError, ErrorCode
from decart_nb.secret_key import SecretKey
from decart_nb.sweeps.rows import COLUMNS
from decart_nb.tracking import TRACKERS, Tracker, check_tracker, open_tracker
from decart_nb.tracking.callable_tracker import CallableBackend

ENV_KEY = "dct_" + "Zq81envKeyOfThisTest0000abcdEF"
SECRET_PARAMS: dict[str, object] = {
    "api_key": "plain-words-but-named-key",
    "engine_options": {"token": "named-token", "speed": "fast", "auth": SecretKey("x" * 40)},
    "key_from_env": ENV_KEY,  # named like a key and valued like one
    "note": ENV_KEY,  # an innocent name, the key's value
    "client": "ek_" + "a1b2c3d4e5f6a7b8c9d0wxyz",  # a client token
}
SECRETS = ("plain-words-but-named-key", "named-token", ENV_KEY, "ek_a1b2c3d4e5f6", "x" * 40)
WAIT_S = 120.0


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DECART_API_KEY", ENV_KEY)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "WANDB_MODE", "WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))


def sweep_params() -> dict[str, object]:
    return {"model": "lucy-test-model", "seconds": 0.5, "engine_options": {"speed": "fast"}} | SECRET_PARAMS


def item_files(folder: Path, index: int, clip: bool) -> dict[str, Path]:
    """A real PNG snapshot (and a real mp4 clip) made here."""
    folder.mkdir(parents=True, exist_ok=True)
    snapshot = folder / f"{index:02d}_item.png"
    Image.new("RGB", (64, 36), (10 * index % 255, 80, 160)).save(snapshot)
    files = {"snapshot": snapshot}
    if clip:
        files["clip"] = write_clip(folder / f"{index:02d}_item.mp4")
    return files


def write_clip(path: Path, frames: int = 6) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for n in range(frames):
            image = np.full((48, 64, 3), 20 * n, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def row(index: int, prompt: str = "anime", *, error: str | None = None) -> dict[str, object]:
    return dict.fromkeys(COLUMNS) | {
        "index": index,
        "prompt": prompt,
        "image": "none",
        "source": "pattern",
        "seed": 7,
        "repeat": index % 2,
        "enhance": True,
        "fps_out": 20.0 + index,
        "frames_out": 40 + index,
        "latency_ms_p50": 12.5,
        "error_code": error,
        "error": "it failed" if error else None,
        "worker": "host:1:main",
        "key": f"{index:020x}",
        "snapshot": f"{index:02d}_item.png",
        "my_metric": 0.5 * index,  # a metrics hook's column
        "session_token": "named-token",  # must never reach a tracker: by its name
        "notes": ENV_KEY,  # nor by its value
    }


# -- MLflow ---------------------------------------------------------------------------------------
def test_mlflow_parent_and_child_runs_from_many_threads(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="decart_nb[mlflow] is not installed")
    from mlflow import MlflowClient

    from decart_nb.tracking.mlflow_tracker import default_tracking_uri

    opening_ms = int(time.time() * 1000)
    tracker = open_tracker("mlflow", name="sweep-under-test", params=sweep_params(), out_dir=tmp_path)
    opened_ms = int(time.time() * 1000)
    threads, per_thread = 8, 3

    def worker(t: int) -> None:
        for j in range(per_thread):
            i = t * per_thread + j
            tracker.log_item(
                row(i, f"prompt {i}", error="FRAME_TIMEOUT" if i == 5 else None),
                item_files(tmp_path / "items", i, clip=i % 4 == 0),
            )

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(WAIT_S)
    (tmp_path / "results.csv").write_text("index,prompt\n0,anime\n")
    tracker.log_run_file(tmp_path / "results.csv")
    assert tracker.close() == []

    client = MlflowClient(tracking_uri=default_tracking_uri(tmp_path))
    experiment = client.get_experiment_by_name("decart_nb")
    assert experiment is not None and experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert [p.info.run_name for p in parents] == ["sweep-under-test"]
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert opening_ms <= parent.info.start_time <= opened_ms  # when the sweep opened it, not later
    assert parent.data.params["model"] == "lucy-test-model"
    assert parent.data.params["engine_options.speed"] == "fast"
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["results.csv"]

    assert len(children) == threads * per_thread
    by_index = {int(c.data.params["index"]): c for c in children}
    assert sorted(by_index) == list(range(threads * per_thread))  # every item, once
    for i, child in by_index.items():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["decart_nb.key"] == f"{i:020x}"
        assert child.info.run_name == f"{i} prompt {i}"
        assert child.data.params["prompt"] == f"prompt {i}" and child.data.params["seed"] == "7"
        assert child.data.params["enhance"] == "True" and child.data.params["source"] == "pattern"
        assert child.data.metrics["fps_out"] == 20.0 + i and child.data.metrics["my_metric"] == 0.5 * i
        assert "session_token" not in child.data.params and "session_token" not in child.data.metrics
        assert child.info.status == ("FAILED" if i == 5 else "FINISHED")
        logged = {a.path for a in client.list_artifacts(child.info.run_id, "snapshot")}
        assert logged == {f"snapshot/{i:02d}_item.png"}
        clips = {a.path for a in client.list_artifacts(child.info.run_id, "clip")}
        assert clips == ({f"clip/{i:02d}_item.mp4"} if i % 4 == 0 else set())
    assert by_index[5].data.params["error_code"] == "FRAME_TIMEOUT"
    assert_no_secret_in(tmp_path / "mlruns")
    for run in runs:
        assert not any(s in str(v) for s in SECRETS for v in run.data.params.values())


def test_mlflow_honours_tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow", reason="decart_nb[mlflow] is not installed")
    from mlflow import MlflowClient

    elsewhere = "sqlite:///" + str(tmp_path / "elsewhere.db")
    # A user's SQLite URI keeps MLflow's own artifact root, ./mlruns: here, not the checkout.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    tracker = open_tracker("mlflow", name="s", params={}, out_dir=tmp_path / "out")
    item_files(tmp_path / "out", 0, clip=False)
    tracker.log_item(row(0), {"snapshot": Path("00_item.png")})  # a row's file name: from out_dir
    assert tracker.close() == []
    client = MlflowClient(tracking_uri=elsewhere)
    experiment = client.get_experiment_by_name("mine")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    (child,) = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert [a.path for a in client.list_artifacts(child.info.run_id, "snapshot")] == ["snapshot/00_item.png"]
    assert not (tmp_path / "out" / "mlruns").exists()


def assert_no_secret_in(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in data, f"{secret!r} reached {path}"


# -- W&B ------------------------------------------------------------------------------------------
def test_wandb_offline_run_with_a_step_and_a_table_row_per_item(tmp_path: Path) -> None:
    pytest.importorskip("wandb", reason="decart_nb[wandb] is not installed")
    import json

    tracker = open_tracker("wandb", name="wandb-sweep", params=sweep_params(), out_dir=tmp_path)
    for i in range(3):
        tracker.log_item(row(i, f"prompt {i}"), item_files(tmp_path / "items", i, clip=i == 0))
    (tmp_path / "results.csv").write_text("index\n0\n")
    tracker.log_run_file(tmp_path / "results.csv")
    assert tracker.close() == []

    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    (table_file,) = run_dir.glob("files/media/table/items_*.table.json")
    table = json.loads(table_file.read_text())
    assert [r[table["columns"].index("prompt")] for r in table["data"]] == [
        "prompt 0",
        "prompt 1",
        "prompt 2",
    ]
    assert "session_token" not in table["columns"] or all(
        r[table["columns"].index("session_token")] is None for r in table["data"]
    )
    assert len(list(run_dir.glob("files/media/images/snapshot_*.png"))) == 3
    # The table's media go to W&B's artifact staging (uploaded by `wandb sync`); the cells say which.
    videos = [r[table["columns"].index("clip_video")] for r in table["data"]]
    assert videos == ["Video", None, None]
    assert (run_dir / "files" / "results.csv").exists()
    # The run's config, in W&B's own record of the run (its core process may still be writing it).
    record = next(run_dir.glob("run-*.wandb"))
    deadline = time.monotonic() + WAIT_S
    while b"lucy-test-model" not in record.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert b"lucy-test-model" in record.read_bytes()
    assert_no_secret_in(tmp_path / "wandb")


def test_wandb_keeps_the_users_wandb_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb", reason="decart_nb[wandb] is not installed")
    monkeypatch.setenv("WANDB_MODE", "disabled")  # the user's choice wins over offline
    tracker = open_tracker("wandb", name="off", params={}, out_dir=tmp_path)
    tracker.log_item(row(0), item_files(tmp_path / "items", 0, clip=False))
    assert tracker.close() == []
    assert not list((tmp_path / "wandb").glob("offline-run-*"))


# -- a tracker function ---------------------------------------------------------------------------
def test_a_failing_tracker_function_yields_failures_and_the_rest_still_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, no_leaked_threads: None
) -> None:
    calls: list[tuple[str, Mapping[str, object]]] = []
    callers: set[int] = set()

    def fn(kind: str, data: Mapping[str, object]) -> None:
        callers.add(threading.get_ident())
        item = data.get("row")
        if isinstance(item, Mapping) and item["prompt"] == "boom":
            raise ValueError(f"cannot log {ENV_KEY}")  # the message quotes the key: redacted
        calls.append((kind, data))

    with caplog.at_level(logging.ERROR, logger="decart_nb"):
        tracker = open_tracker(fn, name="fn-sweep", params=sweep_params(), out_dir=tmp_path)
        prompts = ["a", "boom", "b", "boom", "c"]
        pool = [
            threading.Thread(target=tracker.log_item, args=(row(i, p), {"snapshot": tmp_path / f"{i}.png"}))
            for i, p in enumerate(prompts)
        ]
        for t in pool:
            t.start()
        for t in pool:
            t.join(WAIT_S)
        tracker.log_run_file(tmp_path / "run.json")
        failures = tracker.close()

    assert [f.code for f in failures] == [ErrorCode.TRACKER_ERROR] * 2
    assert all("ValueError" in f.message and ENV_KEY not in f.message for f in failures)
    assert sorted(f.data["what"] for f in failures) == ["item 1", "item 3"]  # type: ignore[type-var]
    assert [r.levelno for r in caplog.records if "TRACKER_ERROR" in r.getMessage()] == [logging.ERROR] * 2
    kinds = [k for k, _ in calls]
    assert kinds == ["start", "item", "item", "item", "file", "end"]
    assert sorted(d["row"]["prompt"] for k, d in calls if k == "item") == ["a", "b", "c"]  # type: ignore[index]
    assert calls[0][1]["name"] == "fn-sweep"
    start_params = calls[0][1]["params"]
    assert isinstance(start_params, dict) and start_params["engine_options.speed"] == "fast"
    assert not any(s in repr(d) for s in SECRETS for _, d in calls)  # params and rows filtered
    item_row = next(d["row"] for k, d in calls if k == "item")
    assert (
        isinstance(item_row, dict)
        and "session_token" not in item_row
        and item_row["notes"] is None
        and item_row["key"]
    )
    assert calls[-2][1] == {"path": tmp_path / "run.json"}
    assert len(callers) == 1 and threading.get_ident() not in callers  # one thread, not the callers'


def test_log_item_waits_while_the_queue_is_full(tmp_path: Path, no_leaked_threads: None) -> None:
    release = threading.Event()
    logged: list[int] = []

    def slow(kind: str, data: Mapping[str, object]) -> None:
        if kind == "item":
            assert release.wait(WAIT_S)
            item = data["row"]
            assert isinstance(item, Mapping)
            logged.append(int(item["index"]))  # type: ignore[call-overload]

    tracker = Tracker(CallableBackend(slow), name="slow", params={}, queue_size=2)
    handed: list[int] = []

    def produce() -> None:
        for i in range(10):
            tracker.log_item(row(i), {})
            handed.append(i)

    producer = threading.Thread(target=produce)
    producer.start()
    # The thread holds item 0 (waiting for `release`), the queue holds 2: the 4th hand-off waits.
    deadline = time.monotonic() + WAIT_S
    while len(handed) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # room for a wrong, unbounded hand-off to run ahead
    assert handed == [0, 1, 2] and tracker._jobs.qsize() == 2
    release.set()
    producer.join(WAIT_S)
    assert handed == list(range(10))
    assert tracker.close() == []
    assert logged == list(range(10))  # nothing dropped, in order


# -- check_tracker ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["nope", "MLflow", 42, True, ["mlflow"], dict])
def test_check_tracker_refuses_unknown_trackers(bad: object) -> None:
    with pytest.raises(DecartNBError) as info:
        check_tracker(bad)
    assert info.value.code == ErrorCode.INVALID_INPUT and "mlflow" in info.value.message


def test_check_tracker_names_the_extra_of_a_missing_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TRACKERS, "mlflow", ("decart_nb_no_such_module", "mlflow"))
    with pytest.raises(DecartNBError) as info:
        check_tracker("mlflow")
    assert info.value.code == ErrorCode.SDK_NOT_INSTALLED
    assert "pip install 'decart_nb[mlflow]'" in info.value.message
    with pytest.raises(DecartNBError):
        open_tracker("mlflow", name="s", params={}, out_dir=Path("unused"))
    check_tracker(None)
    check_tracker(lambda kind, data: None)
    assert open_tracker(None, name="s", params={}, out_dir=Path("unused")).close() == []


def test_a_tracker_that_cannot_start_logs_nothing_and_says_so(tmp_path: Path) -> None:
    def broken(kind: str, data: Mapping[str, object]) -> None:
        raise OSError("no store")

    backend = CallableBackend(broken)
    backend.needs_start = True  # as MLflow and W&B: nothing to log into without a run
    tracker = Tracker(backend, name="s", params={})
    for i in range(3):
        tracker.log_item(row(i), {})
    failures = tracker.close()
    assert [f.code for f in failures] == [ErrorCode.TRACKER_ERROR] * 2
    assert "could not log the run" in failures[0].message and "4 later calls" in failures[1].message
