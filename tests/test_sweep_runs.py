"""Sweeps at scale: item identity, the resumable run folder, retry/replacement, concurrency,
sources/seeds/repeats, the metrics hook and progress. Sessions here are real (local engine or a
numpy function on the test pattern) except where a fake lane stands in to make a session fail."""

from __future__ import annotations

import _thread
import concurrent.futures
import csv
import importlib.util
import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

from decart_nb import DecartNBError, ErrorCode
from decart_nb.experiments import COLUMNS, sweep
from decart_nb.sweeps import lanes
from decart_nb.sweeps import rows as row_shapes
from decart_nb.sweeps.columns import BLANK
from decart_nb.sweeps.items import build_items
from decart_nb.sweeps.rows import new_row
from decart_nb.sweeps.runfolder import RunFolder
from tests.helpers import wait_until
from tests.sweep_helpers import lane_count

SETTINGS = {"model": "lucy-latest", "engine": "local", "seconds": 1.0}


def invert(frame: np.ndarray, state: object) -> np.ndarray:
    return 255 - frame


def _lines(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _png(path: Path, colour: tuple[int, int, int]) -> Path:
    Image.new("RGB", (64, 48), colour).save(path)
    return path


# -- identity ------------------------------------------------------------------------------------
def test_item_keys_are_stable_and_follow_content_not_names(tmp_path: Path) -> None:
    a, b = _png(tmp_path / "a.png", (200, 0, 0)), _png(tmp_path / "b.png", (0, 200, 0))

    def keys(images: list[Any], settings: dict[str, Any] = SETTINGS) -> list[str]:
        items = build_items(["x", "y"], images, ["l"] * len(images), ["pattern"], [None], 1, settings)
        return [i.key for i in items]

    first = keys([None, a])
    assert first == keys([None, a])  # stable between runs
    assert len(set(first)) == 4
    assert keys([None, b])[1] != first[1]  # another picture: another item
    _png(tmp_path / "a.png", (0, 200, 0))  # a's file now holds b's pixels: b's identity
    assert keys([None, a])[1] == keys([None, b])[1]
    assert keys([None, a], SETTINGS | {"seconds": 2.0})[0] != first[0]  # settings count too


def test_repeated_combinations_are_separate_items_in_source_major_order() -> None:
    items = build_items(["x", "x"], [None], ["none"], ["pattern", "other"], [1, 2], 2, SETTINGS)
    assert len(items) == 2 * 2 * 2 * 2 and len({i.key for i in items}) == 16
    assert [i.source_label for i in items] == ["pattern"] * 8 + ["other"] * 8
    assert [(i.seed, i.repeat) for i in items[:4]] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert [i.index for i in items] == list(range(16))


# -- the run folder ------------------------------------------------------------------------------
def test_run_folder_drops_a_torn_last_line_and_refuses_damage_before_it(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path, COLUMNS)
    items = build_items(["x", "y", "z"], [None], ["none"], ["pattern"], [None], 1, SETTINGS)
    for item in items[:2]:
        folder.append(new_row(item, True) | {"snapshot": str(tmp_path / f"{item.stem}.png")})
    with folder.jsonl.open("ab") as f:
        f.write(b'{"key": "' + items[2].key.encode() + b'", "ind')  # a crash in the middle of a write
    rows, torn = folder.load()
    assert torn == 1 and list(rows) == [items[0].key, items[1].key]
    assert rows[items[0].key]["snapshot"] == str(tmp_path / f"{items[0].stem}.png")  # stored relative
    assert json.loads(folder.jsonl.read_text().splitlines()[0])["snapshot"] == f"{items[0].stem}.png"
    assert folder.jsonl.read_bytes().endswith(b"\n")  # the torn tail was cut: appends start clean
    folder.jsonl.write_text("not json\n" + folder.jsonl.read_text())
    with pytest.raises(DecartNBError, match=r"results\.jsonl, line 1: it is not a JSON row") as caught:
        folder.load()
    assert caught.value.code == ErrorCode.INVALID_INPUT


def test_a_fresh_row_has_the_shape_resume_checks() -> None:
    item = build_items(["x"], [None], ["none"], ["p"], [None], 1, SETTINGS)[0]
    assert row_shapes.row_problem(new_row(item, True)) is None


# -- retry and replacement (a fake lane makes sessions fail on demand) ---------------------------
class FakeLane:
    """Stands in for a session: fails items whose prompt says so, counts sessions opened."""

    opened: ClassVar[list[FakeLane]] = []
    lock = threading.Lock()

    def __init__(self, spec: lanes.RunSpec, source: Any, source_id: str, session: Any = None) -> None:
        self.run_id, self.source_id, self.busy, self.last_used, self.closed = (
            spec.run_id,
            source_id,
            False,
            0.0,
            False,
        )
        self.runs = 0

    def open(self) -> FakeLane:
        with FakeLane.lock:
            FakeLane.opened.append(self)
        return self

    @property
    def healthy(self) -> bool:
        return not self.closed

    def close(self) -> None:
        self.closed = True

    def run(self, item: Any, spec: lanes.RunSpec) -> lanes.Outcome:
        self.runs += 1
        row = new_row(item, spec.enhance) | {"fps_out": 30.0}
        prompt = item.prompt or ""
        fails = prompt == "always" or (prompt == "once" and len(FakeLane.opened) == 1 and self.runs == 1)
        if fails:
            row |= {"error_code": ErrorCode.FRAME_TIMEOUT, "error": "no frame", "fps_out": None}
        if prompt == "bad":
            row |= {"error_code": ErrorCode.INVALID_INPUT, "error": "bad image", "fps_out": None}
        return {"row": row, "files": {}}


@pytest.fixture
def fake_lanes(monkeypatch: pytest.MonkeyPatch) -> list[FakeLane]:
    FakeLane.opened = []
    monkeypatch.setattr(lanes, "Lane", FakeLane)
    return FakeLane.opened


def test_a_failing_session_is_replaced_and_its_item_retried_once(
    fake_lanes: list[FakeLane], tmp_path: Path
) -> None:
    result = sweep(["once", "fine", "bad", "always", "fine2"], source="pattern", out_dir=tmp_path)
    by_prompt = {r["prompt"]: r for r in result.rows}
    assert by_prompt["once"]["attempts"] == 2 and by_prompt["once"]["error_code"] is None
    assert by_prompt["fine"]["attempts"] == 1
    assert (by_prompt["bad"]["attempts"], by_prompt["bad"]["error_code"]) == (1, ErrorCode.INVALID_INPUT)
    assert (by_prompt["always"]["attempts"], by_prompt["always"]["error_code"]) == (
        2,
        ErrorCode.FRAME_TIMEOUT,
    )
    # Sessions: the first, its replacement after "once", two for "always" (each attempt failed).
    assert len(fake_lanes) == 4
    assert all(lane.closed for lane in fake_lanes)  # none left running after the sweep
    assert len(_lines(tmp_path)) == 5


def test_a_task_that_dies_is_resubmitted_once(fake_lanes: list[FakeLane], tmp_path: Path) -> None:
    calls: list[str] = []

    class Flaky(concurrent.futures.ThreadPoolExecutor):
        """A pool whose first task for 'lost' dies (a worker process lost) and whose 'gone' always does."""

        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
            item = args[1]
            calls.append(item.prompt)
            if item.prompt == "gone" or (item.prompt == "lost" and calls.count("lost") == 1):
                future: concurrent.futures.Future[Any] = concurrent.futures.Future()
                future.set_exception(ConnectionError("worker lost"))
                return future
            return super().submit(fn, *args, **kwargs)

    with Flaky(2) as pool:
        result = sweep(["lost", "gone", "fine"], source="pattern", executor=pool, out_dir=tmp_path)
    by_prompt = {r["prompt"]: r for r in result.rows}
    assert calls.count("lost") == 2 and by_prompt["lost"]["error_code"] is None
    assert calls.count("gone") == 2
    assert (by_prompt["gone"]["error_code"], by_prompt["gone"]["attempts"]) == ("ConnectionError", 2)
    assert by_prompt["fine"]["error_code"] is None


def test_concurrency_runs_sessions_side_by_side(
    fake_lanes: list[FakeLane], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    both = threading.Barrier(2, timeout=30)

    class Meeting(FakeLane):
        def run(self, item: Any, spec: lanes.RunSpec) -> lanes.Outcome:
            if item.index < 2:
                both.wait()  # the first two items meet: they can only both get here at once
            return super().run(item, spec)

    monkeypatch.setattr(lanes, "Lane", Meeting)
    result = sweep([f"p{i}" for i in range(6)], source="pattern", concurrency=2, out_dir=tmp_path)
    assert [r["index"] for r in result.rows] == list(range(6))
    assert len({r["worker"] for r in result.rows}) == 2
    assert len(fake_lanes) == 2  # one session per worker, kept across its items
    assert lane_count() == 0


def test_a_stalled_real_session_is_replaced_and_the_item_succeeds_on_the_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leaked_threads: None
) -> None:
    monkeypatch.setattr(lanes, "FRAME_TIMEOUT_S", 5.0)  # the stall shows in 5 s, not 15
    closing = threading.Event()
    stalled: list[int] = []

    def stalls_once(frame: np.ndarray, state: Any) -> np.ndarray:
        if state.prompt == "stall" and not stalled:
            stalled.append(1)
            closing.wait(60)  # the model hangs until the sweep gives up on this session
        return 255 - frame

    close = lanes.Lane.close

    def close_and_release(self: lanes.Lane) -> None:
        closing.set()
        close(self)

    monkeypatch.setattr(lanes.Lane, "close", close_and_release)
    result = sweep(["fine", "stall", "after"], engine=stalls_once, seconds=0, frames=2, out_dir=tmp_path)
    assert [r["error_code"] for r in result.rows] == [None, None, None]
    assert [r["attempts"] for r in result.rows] == [1, 2, 1]
    assert result.rows[1]["frames_out"] >= 2 and stalled == [1]
    assert lane_count() == 0


def test_a_concurrent_futures_executor_runs_real_sessions_and_they_are_closed(tmp_path: Path) -> None:
    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="mine") as pool:
        result = sweep(
            ["a", "b", "c", "d"], engine=invert, seconds=0, frames=2, executor=pool, out_dir=tmp_path
        )
        assert lane_count() == 0  # closed at the end, while the pool's threads live on
    assert not result.failed and [r["prompt"] for r in result.rows] == ["a", "b", "c", "d"]
    assert {r["worker"].rsplit(":", 1)[1] for r in result.rows} == {"mine_0", "mine_1"}
    assert all(r["attempts"] == 1 and r["frames_out"] >= 2 for r in result.rows)


# -- resume, on real sessions --------------------------------------------------------------------
def test_rerun_skips_finished_items_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = sweep(["a", "b"], source="pattern", engine=invert, seconds=0, frames=2, out_dir=tmp_path)
    assert first.skipped == 0 and len(_lines(tmp_path)) == 2
    capsys.readouterr()
    again = sweep(["a", "b", "c"], source="pattern", engine=invert, seconds=0, frames=2, out_dir=tmp_path)
    said = capsys.readouterr().out
    assert "resuming" in said and "2 of 3 items already done (0 failed), 1 to run" in said
    assert again.skipped == 2 and [r["prompt"] for r in again.rows] == ["a", "b", "c"]
    assert [r["prompt"] for r in _lines(tmp_path)] == ["a", "b", "c"]  # a and b were not run again
    assert again.rows[0]["snapshot"] == first.rows[0]["snapshot"]
    with (tmp_path / "results.csv").open() as f:
        assert [r["prompt"] for r in csv.DictReader(f)] == ["a", "b", "c"]
    fresh = sweep(["a"], source="pattern", engine=invert, seconds=0, frames=2, out_dir=tmp_path, resume=False)
    assert "starting over" in capsys.readouterr().out
    assert fresh.skipped == 0 and len(_lines(tmp_path)) == 1
    assert len((tmp_path / "results.jsonl.previous").read_text().splitlines()) == 3


def test_an_interrupted_run_resumes_with_nothing_lost_or_repeated(tmp_path: Path) -> None:
    seen: list[str] = []

    def ctrl_c_on_third(snapshot: Image.Image, row: dict[str, Any]) -> dict[str, Any]:
        seen.append(row["prompt"])
        if row["prompt"] == "p2" and seen.count("p2") == 1:
            raise KeyboardInterrupt  # as Ctrl-C would, in the middle of the third item
        return {"red": float(np.asarray(snapshot)[..., 0].mean())}

    prompts = [f"p{i}" for i in range(5)]
    kwargs: dict[str, Any] = {"source": "pattern", "engine": invert, "seconds": 0, "frames": 2}
    with pytest.raises(KeyboardInterrupt):
        sweep(prompts, metrics=ctrl_c_on_third, out_dir=tmp_path, **kwargs)
    assert [r["prompt"] for r in _lines(tmp_path)] == ["p0", "p1"]  # only the item in flight is lost
    assert lane_count() == 0
    result = sweep(prompts, metrics=ctrl_c_on_third, out_dir=tmp_path, **kwargs)
    assert [r["prompt"] for r in _lines(tmp_path)] == prompts  # each exactly once
    assert [r["prompt"] for r in result.rows] == prompts and not result.failed
    assert seen == ["p0", "p1", "p2", "p2", "p3", "p4"]
    assert all(r["red"] > 0 for r in result.rows)


def test_ctrl_c_during_a_concurrent_run_keeps_finished_rows_and_leaves_nothing_running(
    tmp_path: Path, ctrl_c_raises: None, no_leaked_threads: None
) -> None:
    interrupted = threading.Event()

    def ctrl_c_at_p2(snapshot: Image.Image, row: dict[str, Any]) -> dict[str, Any]:
        if row["prompt"] == "p2" and not interrupted.is_set():
            interrupted.set()
            _thread.interrupt_main()  # Ctrl-C, delivered to the sweep's (main) thread
        return {}

    prompts = [f"p{i}" for i in range(6)]
    kwargs: dict[str, Any] = {"source": "pattern", "engine": invert, "seconds": 0, "frames": 2}
    with pytest.raises(KeyboardInterrupt):
        sweep(prompts, metrics=ctrl_c_at_p2, concurrency=2, out_dir=tmp_path, **kwargs)
    done = [r["key"] for r in _lines(tmp_path)]
    assert len(done) == len(set(done)) < 6  # whole rows only, each once; the rest not run
    assert lane_count() == 0
    result = sweep(prompts, metrics=ctrl_c_at_p2, concurrency=2, out_dir=tmp_path, **kwargs)
    keys = [r["key"] for r in _lines(tmp_path)]
    assert (
        sorted(keys) == sorted(r["key"] for r in result.rows) and len(keys) == 6
    )  # nothing lost or repeated
    assert result.skipped == len(done) and not result.failed


KILLED_RUN = """
import sys
from decart_nb.experiments import sweep
from tests.test_sweep_runs import invert
sweep([f"p{i}" for i in range(8)], engine=invert, seconds=0, frames=2, out_dir=sys.argv[1])
"""


def test_a_killed_process_resumes_with_nothing_lost_or_repeated(tmp_path: Path) -> None:
    """A kernel restart: the process dies at once (SIGKILL), mid-item, with no clean-up at all."""
    jsonl = tmp_path / "results.jsonl"
    root = Path(__file__).resolve().parent.parent
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path)], cwd=root)
    try:
        assert wait_until(lambda: jsonl.exists() and jsonl.read_bytes().count(b"\n") >= 3, timeout=60)
    finally:
        child.kill()
        child.wait(timeout=30)
    before = [r["key"] for r in _lines(tmp_path)]
    assert 3 <= len(before) < 8, "the run ended before it could be killed"
    result = sweep([f"p{i}" for i in range(8)], engine=invert, seconds=0, frames=2, out_dir=tmp_path)
    keys = [r["key"] for r in _lines(tmp_path)]
    assert keys[: len(before)] == before and len(keys) == len(set(keys)) == 8
    assert result.skipped == len(before) and not result.failed


# -- axes, metrics, progress ---------------------------------------------------------------------
def test_sources_seeds_repeats_and_metrics_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    red, blue = _png(tmp_path / "red.png", (220, 30, 30)), _png(tmp_path / "blue.png", (30, 30, 220))

    def redness(snapshot: Image.Image, row: dict[str, Any]) -> dict[str, Any]:
        rgb = np.asarray(snapshot.convert("RGB"), np.float32)
        return {"redness": round(float(rgb[..., 0].mean() - rgb[..., 2].mean()), 1), "seed_seen": row["seed"]}

    result = sweep(
        ["plain"],
        sources=[red, blue],
        seeds=[7, 8],
        repeats=2,
        engine=lambda frame, state: frame,
        seconds=0,
        frames=2,
        metrics=redness,
        out_dir=tmp_path / "out",
        progress="lines",
    )
    assert len(result.rows) == 2 * 2 * 2 and not result.failed
    assert [(r["source"], r["seed"], r["repeat"]) for r in result.rows[:4]] == [
        ("red.png", 7, 0),
        ("red.png", 7, 1),
        ("red.png", 8, 0),
        ("red.png", 8, 1),
    ]
    assert all(r["seed_seen"] == r["seed"] for r in result.rows)
    assert all(r["redness"] > 100 for r in result.rows[:4]) and all(
        r["redness"] < -100 for r in result.rows[4:]
    )
    assert set(result.passthroughs) == {"red.png", "blue.png"}
    assert all(p.is_file() for p in result.passthroughs.values())
    with (tmp_path / "out" / "results.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames or ())[-2:] == ("redness", "seed_seen") and len(rows) == 8
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 8 and printed[-1].startswith("8/8 #7")


def test_a_failing_metrics_hook_fails_its_row_not_the_sweep(tmp_path: Path) -> None:
    def picky(snapshot: Image.Image, row: dict[str, Any]) -> dict[str, Any]:
        if row["prompt"] == "b":
            raise ZeroDivisionError("no")
        return {"fps_out": 1} if row["prompt"] == "c" else {"ok": 1}

    result = sweep(["a", "b", "c"], engine=invert, seconds=0, frames=2, metrics=picky, out_dir=tmp_path)
    assert [r["error_code"] for r in result.rows] == [None, "METRICS_ERROR", "METRICS_ERROR"]
    assert "ZeroDivisionError" in result.rows[1]["error"] and "built-in" in result.rows[2]["error"]
    assert [r["attempts"] for r in result.rows] == [1, 1, 1]  # the session was not at fault


def test_progress_bar_counts_items_and_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep(
        ["a", "b"],
        images=[None, b"junk"],
        engine=invert,
        seconds=0,
        frames=2,
        out_dir=tmp_path,
        progress=True,
    )
    err = capsys.readouterr().err
    assert "4/4" in err and "failed=2" in err


def test_bad_scale_arguments_fail_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    bad: list[dict[str, Any]] = [
        {"concurrency": 0},
        {"concurrency": 1.5},
        {"concurrency": 1000},
        {"executor": "dask"},
        {"sources": []},
        {"sources": ["pattern", "MISSING.mp4"]},
        {"seeds": [1.5]},
        {"repeats": 0},
        {"metrics": 3},
        {"resume": "yes"},
        {"progress": "bar"},
        {"concurrency": 2, "source": iter([])},
    ]
    for kwargs in bad:
        with pytest.raises(DecartNBError) as info:
            sweep(["a"], out_dir=out, **kwargs)
        assert info.value.code == ErrorCode.INVALID_INPUT, kwargs
    assert not out.exists()


def test_views_of_a_large_run_show_the_first_rows(tmp_path: Path) -> None:
    from decart_nb.experiments import SweepResult
    from decart_nb.sweeps.result import HTML_LIMIT, LABEL_HEIGHT, SHEET_LIMIT

    items = build_items([f"p{i}" for i in range(300)], [None], ["none"], ["pattern"], [None], 1, SETTINGS)
    result = SweepResult(rows=[new_row(i, True) for i in items], out_dir=tmp_path, grid_columns=10)
    sheet = result.contact_sheet(thumb_width=64)
    assert sheet.size == (10 * 64, SHEET_LIMIT // 10 * (36 + LABEL_HEIGHT))
    assert result.contact_sheet(thumb_width=64, limit=None).size[1] == 30 * (36 + LABEL_HEIGHT)
    page = result._repr_html_()
    assert page.count("<tr>") == HTML_LIMIT + 1 and f"and {300 - HTML_LIMIT} more rows" in page


def _cells(page: str) -> list[list[str]]:
    body = page.split("<tbody>")[1].split("</tbody>")[0]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in body.split("</tr>") if "<td" in row]


def test_every_blank_cell_of_a_camera_sweeps_table_is_filled_or_explained(tmp_path: Path) -> None:
    """sweep(session=...) on a live session that has a prompt (the camera notebook's sweep): no
    untouched input, so no diff; the table says so instead of leaving the column blank."""
    from decart_nb import Session

    with Session(source="pattern", prompt="film noir") as live:
        result = sweep(
            ["anime", "pencil sketch"], session=live, seconds=0, frames=2, out_dir=tmp_path / "live"
        )
    assert not result.failed and all(r["diff_vs_passthrough"] is None for r in result.rows)
    page = result._repr_html_()
    heads = re.findall(r"<th( [^>]*)?>(.*?)</th>", page)
    assert all('title="' in attrs for attrs, _ in heads), heads  # every header says what it is
    for cells in _cells(page):
        assert all(cell for cell in cells[:-1]), cells  # only the error column may be blank (no error)
        assert cells[8] == BLANK  # diff
    assert 'title="no untouched input' in page
    assert "<li><b>diff</b> — no untouched input to compare with" in page
    markdown = result.to_markdown()
    assert "| — | [png]" in markdown and "- **diff** — no untouched input" in markdown
    notes = result.blank_notes()  # what the DataFrame's attrs carry
    assert notes["diff_vs_passthrough"][0].startswith("no untouched input")
    assert notes["error"] == ["no error: the item ran"] and "prompt" not in notes
    if importlib.util.find_spec("pandas") is not None:  # not a dependency
        frame = result.to_pandas()
        assert frame.attrs["blank"]["diff_vs_passthrough"].startswith("no untouched input")
        assert set(frame.attrs["columns"]) == set(frame.columns)

    own = sweep(["anime"], seconds=0, frames=2, out_dir=tmp_path / "own")  # its own session: diff filled
    assert own.rows[0]["diff_vs_passthrough"] is not None and "<b>diff</b>" not in own._repr_html_()


def test_a_failed_rows_blank_measurements_point_at_its_error(tmp_path: Path) -> None:
    items = build_items(["p"], [None], ["none"], ["pattern"], [None], 1, SETTINGS)
    row = new_row(items[0], True) | {"error_code": "FRAME_TIMEOUT", "error": "no frame", "frames_dropped": 0}
    from decart_nb.experiments import SweepResult

    page = SweepResult(rows=[row], out_dir=tmp_path)._repr_html_()
    assert _cells(page)[0][4:9] == [BLANK, BLANK, BLANK, "0", BLANK]
    assert "<li><b>fps</b> — the item failed (see error)</li>" in page
