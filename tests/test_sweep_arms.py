"""sweep(arms=...) and sweep(comparison=...) (issue 23): one Comparison per source, every arm on the
same input frames, one row (and snapshot) per arm per item, resume per (item, arm)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from decart_nb import DecartNBError, ErrorCode
from decart_nb.arms import Arm
from decart_nb.comparison import compare
from decart_nb.experiments import sweep
from decart_nb.sweeps.result import LABEL_HEIGHT
from tests.helpers import mean_abs_diff


def invert(frame: np.ndarray, state: object) -> np.ndarray:
    return 255 - frame


def same(frame: np.ndarray, state: object) -> np.ndarray:
    return frame


def darker(frame: np.ndarray, state: object) -> np.ndarray:
    return frame // 2


ARMS = [Arm(name="inv", engine=invert), Arm(name="same", engine=same, enhance=False)]
RUN: dict[str, Any] = {"seconds": 0, "frames": 2}


@pytest.fixture(scope="module")
def still(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A still source: the arms' snapshots compare by look only."""
    ys, xs = np.mgrid[0:180, 0:320]
    rgb = np.stack([xs * 255 // 319, ys * 255 // 179, np.full_like(xs, 60)], axis=2).astype(np.uint8)
    path = tmp_path_factory.mktemp("media") / "still.png"
    Image.fromarray(rgb).save(path)
    return path


def _snap(row: dict[str, Any]) -> Image.Image:
    return Image.open(row["snapshot"]).convert("RGB")


def test_each_item_gives_one_row_per_arm_on_the_same_input(still: Path, tmp_path: Path) -> None:
    result = sweep(["a", "b"], arms=ARMS, source=still, out_dir=tmp_path, **RUN)
    assert not result.failed, result.failed
    assert [(r["prompt"], r["arm"]) for r in result.rows] == [
        ("a", "inv"),
        ("a", "same"),
        ("b", "inv"),
        ("b", "same"),
    ]
    assert [r["enhance"] for r in result.rows] == [True, False, True, False]  # the arm's own
    assert len({r["snapshot"] for r in result.rows}) == 4  # a file per arm per item
    for inv, kept in (result.rows[0:2], result.rows[2:4]):
        mirrored = Image.fromarray(255 - np.asarray(_snap(kept)))
        assert mean_abs_diff(_snap(inv), mirrored) < 8  # both arms transformed the same frames
        assert inv["state_version"] is not None and kept["frames_out"] >= 2
        assert inv["time_to_first_frame_ms"] > 0 and inv["queue_wait_s"] == 0.0
    assert mean_abs_diff(_snap(result.rows[1]), Image.open(still).convert("RGB").resize((1280, 720))) < 8
    # The views: an arm column, and the arms side by side in the contact sheet (one row per prompt).
    assert "<th title=" in result._repr_html_() and ">arm</th>" in result._repr_html_()
    assert "| arm |" in result.to_markdown().splitlines()[0]
    thumb_h = round(256 * 720 / 1280)
    assert result.contact_sheet().size == (2 * 256, 2 * (thumb_h + LABEL_HEIGHT))
    run = json.loads((tmp_path / "run.json").read_text())["runs"][0]
    assert [a["name"] for a in run["arms"]] == ["inv", "same"]
    assert run["arms"][0]["engine"]["engine"] == "function:invert"
    assert (run["settings"]["model"], run["settings"]["engine"]) == (None, None)  # each arm has its own


def test_resume_is_per_item_and_arm(still: Path, tmp_path: Path) -> None:
    sweep(["a", "b"], arms=ARMS, source=still, out_dir=tmp_path, **RUN)
    jsonl = tmp_path / "results.jsonl"
    lines = jsonl.read_text().splitlines()
    jsonl.write_text("\n".join(lines[:3]) + "\n")  # b's "same" row was never written
    again = sweep(["a", "b"], arms=ARMS, source=still, out_dir=tmp_path, **RUN)
    assert again.skipped == 3 and [r["arm"] for r in again.rows] == ["inv", "same", "inv", "same"]
    assert [json.loads(x)["arm"] for x in jsonl.read_text().splitlines()] == ["inv", "same", "inv", "same"]
    # Another engine under the same arm name is another arm: its rows are not taken for it.
    changed = [ARMS[0], Arm(name="same", engine=darker, enhance=False)]
    third = sweep(["a", "b"], arms=changed, source=still, out_dir=tmp_path, **RUN)
    assert third.skipped == 2 and all(r["arm"] == "inv" for r in third.rows if r["key"] in _keys(again))
    dark = [r for r in third.rows if r["arm"] == "same"]
    assert all(np.asarray(_snap(r)).mean() < np.asarray(_snap(again.rows[1])).mean() for r in dark)


def _keys(result: Any) -> set[str]:
    return {r["key"] for r in result.rows}


def test_a_sweep_on_a_live_comparison_leaves_it_open(still: Path, tmp_path: Path) -> None:
    with compare(ARMS, source=still, prompt="start") as cmp:
        result = cmp.run(["a"], out_dir=tmp_path, **RUN)
        assert all(s.state in ("connected", "generating") for s in cmp.arms.values())
        assert cmp["inv"].generation.prompt == "a"
    assert [r["arm"] for r in result.rows] == ["inv", "same"] and not result.failed
    # Connected before the sweep: its start-up was not seen, and the table says why.
    assert all(r["time_to_first_frame_ms"] is None and r["queue_wait_s"] is None for r in result.rows)
    assert "connected before it" in result.blank_notes()["queue_wait_s"][0]


def test_bad_arms_fail_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    bad: list[tuple[dict[str, Any], str]] = [
        ({"arms": [{"model": "no-such-model"}]}, ErrorCode.MODEL_NOT_FOUND),
        ({"arms": [{"colour": "red"}]}, ErrorCode.INVALID_INPUT),
        ({"arms": ARMS, "engine": "decart"}, ErrorCode.INVALID_INPUT),  # each arm has its own
        ({"arms": ARMS, "concurrency": 2}, ErrorCode.INVALID_INPUT),
        ({"arms": ARMS, "comparison": object()}, ErrorCode.INVALID_INPUT),
        ({"comparison": "cmp"}, ErrorCode.INVALID_INPUT),
        ({"arms": [Arm(name="x", engine="no-such-engine")]}, ErrorCode.INVALID_INPUT),
    ]
    for kwargs, code in bad:
        with pytest.raises(DecartNBError) as info:
            sweep(["a"], out_dir=out, **kwargs)
        assert info.value.code == code, kwargs
    assert not out.exists()


def test_each_source_gets_its_own_comparison(
    still: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = sweep(["a"], arms=ARMS, sources=[still, "pattern"], progress="lines", out_dir=tmp_path, **RUN)
    assert [(r["source"], r["arm"]) for r in result.rows] == [
        ("still.png", "inv"),
        ("still.png", "same"),
        ("pattern", "inv"),
        ("pattern", "same"),
    ]
    assert not result.failed and set(result.passthroughs) == {"still.png", "pattern"}
    # A new comparison (a new connect) per source: its own time to first frame.
    assert all(r["time_to_first_frame_ms"] > 0 for r in result.rows)
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1].startswith("4/4 #3 a / none / same: ")  # the arm in every line


def test_a_failing_comparison_is_replaced_and_its_item_retried_once(
    still: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from decart_nb.sweeps import arm_lanes

    monkeypatch.setattr(arm_lanes, "FRAME_TIMEOUT_S", 5.0)  # the stall shows in 5 s, not 15
    closing = threading.Event()
    stalled: list[int] = []

    def stalls_once(frame: np.ndarray, state: Any) -> np.ndarray:
        if state.prompt == "stall" and not stalled:
            stalled.append(1)
            closing.wait(60)  # the model hangs until the sweep gives up on this comparison
        return frame

    close = arm_lanes.ArmLane.close

    def close_and_release(self: arm_lanes.ArmLane) -> None:
        closing.set()
        close(self)

    monkeypatch.setattr(arm_lanes.ArmLane, "close", close_and_release)
    arms = [Arm(name="inv", engine=invert), Arm(name="stalls", engine=stalls_once)]
    result = sweep(["fine", "stall", "after"], arms=arms, source=still, out_dir=tmp_path, **RUN)
    assert [r["error_code"] for r in result.rows] == [None] * 6
    assert [r["attempts"] for r in result.rows] == [1, 1, 2, 2, 1, 1]  # both arms of the item, again
    assert stalled == [1]


def test_a_bad_image_fails_every_arms_row_at_once(still: Path, tmp_path: Path) -> None:
    result = sweep(["a"], images=[b"junk", None], arms=ARMS, source=still, out_dir=tmp_path, **RUN)
    assert [(r["arm"], r["error_code"], r["attempts"]) for r in result.rows] == [
        ("inv", ErrorCode.INVALID_INPUT, 1),
        ("same", ErrorCode.INVALID_INPUT, 1),
        ("inv", None, 1),
        ("same", None, 1),
    ]
