"""Provenance (issue 23): run.json per run folder, the cost and start-up columns (queue wait,
generation seconds, time to first frame), older folders resuming, and no secret anywhere."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from decart_nb import GenerationTick, QueuePosition, __version__
from decart_nb.experiments import sweep
from decart_nb.sweeps.lane_figures import LaneFigures
from decart_nb.sweeps.provenance import safe_options
from decart_nb.sweeps.rows import ADDED_COLUMNS

KEY = "sk-provenance-4f1b9c77e0"  # a key that must not show up in any file of the run folder


def invert(frame: np.ndarray, state: object) -> np.ndarray:
    return 255 - frame


def _runs(out: Path) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = json.loads((out / "run.json").read_text())["runs"]
    return runs


def _no_trace(out: Path, secret: str, caplog: pytest.LogCaptureFixture) -> None:
    for path in out.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in caplog.text


def test_run_json_says_what_the_run_ran_on_and_keeps_each_runs_entry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="decart_nb")
    kwargs: dict[str, Any] = {
        "engine": invert,
        "seconds": 0,
        "frames": 2,
        "out_dir": tmp_path,
        "api_key": KEY,
    }
    first = sweep(["a", "b"], **kwargs)
    (run,) = _runs(tmp_path)
    assert run["status"] == "finished" and run["started_at"] <= run["ended_at"]
    assert run["decart_nb"] == __version__ and run["python"]["version"].count(".") == 2
    assert {"aiortc", "av", "numpy", "pillow"} <= set(run["packages"])
    assert run["machine"]["cpu_count"] >= 1 and run["machine"]["memory_bytes"] > 0
    assert run["model"]["requested"] == "lucy-latest" and run["model"]["resolved"]["width"] == 1280
    assert run["model"]["server_resolves_alias"] is True  # Decart resolves -latest on its side
    assert run["engine"]["engine"] == "function:invert" and run["engine"]["billed"] is False
    assert run["transport"] == {"mode": "headless", "transport": None, "pipe": None}
    assert run["arms"] is None and run["rows_written"] == 2
    # The lane-level figures on every row of a local run: no queue, a first frame, nothing billed.
    assert all(r["queue_wait_s"] == 0.0 and r["generation_s"] is None for r in first.rows)
    assert all(r["time_to_first_frame_ms"] > 0 and r["arm"] is None for r in first.rows)
    again = sweep(["a", "b", "c"], **kwargs)  # resumed: its own entry after the first
    runs = _runs(tmp_path)
    assert [r["status"] for r in runs] == ["finished", "finished"]
    assert runs[0] == run and (runs[1]["skipped"], runs[1]["rows_written"]) == (2, 1)
    assert runs[1]["run_id"] != run["run_id"] and again.skipped == 2
    _no_trace(tmp_path, KEY, caplog)


def test_a_folder_written_before_the_new_columns_resumes(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {"engine": invert, "seconds": 0, "frames": 2, "out_dir": tmp_path}
    sweep(["a", "b"], **kwargs)
    jsonl = tmp_path / "results.jsonl"
    old = [
        {k: v for k, v in json.loads(line).items() if k not in ADDED_COLUMNS}
        for line in jsonl.read_text().splitlines()
    ]
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in old))  # as an older decart_nb wrote it
    result = sweep(["a", "b", "c"], **kwargs)
    assert result.skipped == 2 and not result.failed
    # The keys the code before these columns gave the same items: an older folder's rows match.
    assert [r["key"] for r in result.rows[:2]] == ["712923cbbfb1e1c2da99", "395bb006dfad8d14819e"]
    assert all(result.rows[0][c] is None for c in ADDED_COLUMNS)  # not measured then
    assert result.rows[2]["time_to_first_frame_ms"] is not None
    assert "generation_s" in result.blank_notes()


def test_options_are_written_without_secrets() -> None:
    options = {
        "api_key": KEY,
        "Token": "t0k",
        "base_url": "wss://user:pw@api.example.com:8443/v1/stream?api_key=" + KEY,
        "speed": "fast",
        "resolution": "720p",
        "sdk": object(),
    }
    safe = safe_options(options)
    assert safe == {
        "api_key": "***",
        "Token": "***",
        "base_url": "wss://api.example.com:8443/v1/stream",
        "speed": "fast",
        "resolution": "720p",
        "sdk": "<object>",
    }


def test_lane_figures_count_the_queue_and_billed_ticks_across_server_sessions() -> None:
    class Billing:
        owns_connection_state = True

    class Fake:
        engine = Billing()

    figures = LaneFigures(Fake())  # type: ignore[arg-type]
    figures.connecting()
    figures.watch("queue_position", QueuePosition(2, 3))
    time.sleep(0.05)
    figures.watch("queue_position", QueuePosition(1, 3))
    figures.connected()
    assert figures.queue_wait_s is not None and figures.queue_wait_s >= 0.05
    for seconds in (1, 2):
        figures.watch("generation_tick", GenerationTick(seconds))
    before = figures.billed_seconds()
    for seconds in (3, 1, 2):  # a reconnect's new server session counts from 1 again
        figures.watch("generation_tick", GenerationTick(seconds))
    assert figures.row_figures(before)["generation_s"] == 3.0


# -- against the fake Decart server -----------------------------------------------------------------
@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    pytest.importorskip("decart", reason='needs pip install "decart_nb[decart]"')
    from tests.fakes.decart_server import serving

    with serving(monkeypatch) as fake:
        yield fake


@pytest.mark.webrtc
def test_a_decart_sweep_records_its_queue_wait_and_billed_seconds_and_never_its_key(
    server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.fakes.decart_server import VALID_KEY

    caplog.set_level(logging.DEBUG)
    server.script.queue = [2, 1]  # two positions, 0.05 s apart, before the room
    server.script.tick_every_s = 0.2  # a billed "second" every 0.2 s: several per item
    result = sweep(
        ["anime", "film noir"],
        engine="decart",
        model="lucy-2.1",
        api_key=VALID_KEY,
        engine_options={"resolution": "720p"},
        seconds=1.0,
        out_dir=tmp_path,
    )
    assert not result.failed, result.failed
    for row in result.rows:
        assert row["queue_wait_s"] >= 0.05  # lane-level: the same on every row
        assert row["time_to_first_frame_ms"] >= row["queue_wait_s"] * 1000
        assert row["generation_s"] >= 1  # Decart's ticks while the item ran
    assert len({r["queue_wait_s"] for r in result.rows}) == 1
    (run,) = _runs(tmp_path)
    assert run["engine"]["billed"] is True
    assert run["engine"]["options"] == {"resolution": "720p"}
    assert run["engine"]["running_options"]["resolution"] == "720p"
    assert run["engine"]["running_options"]["codec"] == "h264"
    _no_trace(tmp_path, VALID_KEY, caplog)


def test_an_interrupted_run_says_so_and_the_next_run_appends(tmp_path: Path) -> None:
    def ctrl_c_on_b(snapshot: object, row: dict[str, Any]) -> dict[str, Any]:
        if row["prompt"] == "b":
            raise KeyboardInterrupt  # as Ctrl-C would, in the middle of the second item
        return {}

    kwargs: dict[str, Any] = {"engine": invert, "seconds": 0, "frames": 2, "out_dir": tmp_path}
    with pytest.raises(KeyboardInterrupt):
        sweep(["a", "b"], metrics=ctrl_c_on_b, **kwargs)
    (run,) = _runs(tmp_path)
    assert (run["status"], run["rows_written"]) == ("interrupted", 1) and run["ended_at"]
    sweep(["a", "b"], **kwargs)
    assert [r["status"] for r in _runs(tmp_path)] == ["interrupted", "finished"]
    sweep(["a"], resume=False, **kwargs)  # starting over sets the results aside, not the history
    assert [r["resume"] for r in _runs(tmp_path)] == [True, True, False]


@pytest.mark.webrtc
def test_a_decart_arms_sweep_measures_each_arms_cost(server: Any, tmp_path: Path) -> None:
    """Is the fast tier worth it: two Decart arms on the same input, each with its own figures."""
    from decart_nb.arms import Arm
    from tests.fakes.decart_server import VALID_KEY

    server.script.tick_every_s = 0.2
    arms = [
        Arm(name="standard", model="lucy-2.5", engine="decart", api_key=VALID_KEY),
        Arm(
            name="fast",
            model="lucy-2.5",
            engine="decart",
            api_key=VALID_KEY,
            engine_options={"speed": "fast"},
        ),
    ]
    result = sweep(["anime"], arms=arms, seconds=1.0, out_dir=tmp_path)
    assert not result.failed, result.failed
    assert [r["arm"] for r in result.rows] == ["standard", "fast"]
    assert all(r["generation_s"] >= 1 and r["queue_wait_s"] == 0.0 for r in result.rows)
    assert {c.query.get("speed", "") for c in server.conns} == {"", "fast"}  # each arm's own tier
    (run,) = _runs(tmp_path)
    assert [a["engine"]["running_options"]["speed"] for a in run["arms"]] == [None, "fast"]
    assert all(a["engine"]["billed"] for a in run["arms"])
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert VALID_KEY.encode() not in path.read_bytes(), path


def test_the_key_never_travels_to_an_executor_and_a_session_sweep_names_its_transport(tmp_path: Path) -> None:
    import concurrent.futures

    from decart_nb import DecartNBError, ErrorCode, Session

    with concurrent.futures.ThreadPoolExecutor(1) as pool, pytest.raises(DecartNBError) as info:
        sweep(["a"], api_key=KEY, executor=pool, out_dir=tmp_path / "pool")
    assert info.value.code == ErrorCode.INVALID_INPUT and KEY not in str(info.value)
    assert not (tmp_path / "pool").exists()
    with Session(engine=invert, source="pattern") as live:
        sweep(["a"], session=live, seconds=0, frames=2, out_dir=tmp_path / "live")
    transport = _runs(tmp_path / "live")[0]["transport"]
    assert transport["mode"] == "session" and transport["source"] == "pattern"
    assert transport["transport"] is None  # no camera widget: no page transport


def test_a_damaged_run_json_is_set_aside_not_lost(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{ not a run record")
    sweep(["a"], engine=invert, seconds=0, frames=2, out_dir=tmp_path)
    assert (tmp_path / "run.damaged.json").read_text() == "{ not a run record"
    assert [r["status"] for r in _runs(tmp_path)] == ["finished"]
