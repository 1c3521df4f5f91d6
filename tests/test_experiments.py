"""experiments.sweep: one session, one row per (prompt, image), files a person can open."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from decart_nb import DecartNBError, ErrorCode, Session
from decart_nb.experiments import COLUMNS, LABEL_HEIGHT, SweepResult, sweep
from tests.helpers import mean_abs_diff

PROMPTS = ["anime", "film noir", "anime"]  # the repeat shows that a prompt's look is reproducible


def _gradient(path: Path) -> Path:
    """A colourful still source: a frame that does not move, so snapshots compare by look only."""
    ys, xs = np.mgrid[0:360, 0:640]
    rgb = np.stack([xs * 255 // 639, ys * 255 // 359, np.full_like(xs, 60)], axis=2).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    Image.new("RGB", (64, 64), (250, 120, 20)).save(root / "warm.png")
    (root / "bad.png").write_bytes(b"this is not an image")
    return {"source": _gradient(root / "source.png"), "warm": root / "warm.png", "bad": root / "bad.png"}


@pytest.fixture(scope="module")
def result(media: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> SweepResult:
    out = tmp_path_factory.mktemp("sweep")
    return sweep(
        PROMPTS,
        images=[None, media["bad"], media["warm"]],
        source=media["source"],
        seconds=0.5,
        out_dir=out,
    )


def _snap(row: dict[str, object]) -> Image.Image:
    return Image.open(str(row["snapshot"])).convert("RGB")


def test_one_row_per_combination_in_prompt_major_order(result: SweepResult) -> None:
    assert [(r["prompt"], r["image"]) for r in result.rows] == [
        (p, i) for p in PROMPTS for i in ("none", "bad.png", "warm.png")
    ]
    assert [r["index"] for r in result.rows] == list(range(9))


def test_different_prompts_give_different_snapshots(result: SweepResult) -> None:
    anime, noir, anime_again = (_snap(result.rows[i]) for i in (0, 3, 6))
    between_prompts = mean_abs_diff(anime, noir)
    same_prompt = mean_abs_diff(anime, anime_again)
    assert between_prompts > 10, between_prompts
    assert same_prompt < between_prompts / 2, (same_prompt, between_prompts)
    passthrough = Image.open(str(result.passthrough)).convert("RGB")
    assert mean_abs_diff(anime, passthrough) > 10  # the model really changed the picture
    assert all(r["diff_vs_passthrough"] > 5 for r in result.rows if not r["error_code"])


def test_good_rows_carry_per_item_measurements(result: SweepResult) -> None:
    good = [r for r in result.rows if not r["error_code"]]
    assert len(good) == 6
    versions = [r["state_version"] for r in good]
    assert versions == sorted(set(versions))  # a new state per item, on one session
    for row in good:
        assert 0 < row["first_frame_ms"] < 5000
        assert row["frames_out"] >= 3  # 0.5 s at 30 fps is ~15 frames; margin for a busy machine
        assert row["fps_out"] > 3
        assert row["latency_ms_p50"] <= row["latency_ms_p95"]
        assert Image.open(row["snapshot"]).size == (1280, 720)


def test_bad_image_row_has_invalid_input_and_the_sweep_goes_on(result: SweepResult) -> None:
    bad = [r for r in result.rows if r["image"] == "bad.png"]
    assert len(bad) == 3
    assert {r["error_code"] for r in bad} == {ErrorCode.INVALID_INPUT}
    assert all(r["snapshot"] is None and r["fps_out"] is None for r in bad)
    after_bad = result.rows[2]  # the item right after the first failure still ran
    assert after_bad["image"] == "warm.png" and after_bad["error_code"] is None
    assert Path(after_bad["snapshot"]).is_file()
    assert result.failed == bad


def test_results_files_are_written(result: SweepResult) -> None:
    out = result.out_dir
    with (out / "results.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == COLUMNS
    assert len(rows) == 9
    assert [r["error_code"] for r in rows].count("INVALID_INPUT") == 3
    assert float(rows[0]["fps_out"]) == result.rows[0]["fps_out"]
    markdown = (out / "results.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("|")]  # not the footnotes
    assert len(table) == 2 + 9  # header, separator, one line per row
    assert "INVALID_INPUT" in markdown and "film noir" in markdown
    assert re.search(r"\(00_anime_none_[0-9a-f]{8}\.png\)", markdown)  # links relative to results.md
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size == result.contact_sheet().size


def test_contact_sheet_grid(result: SweepResult) -> None:
    default = result.contact_sheet()  # one row per prompt, one column per image
    thumb_h = round(256 * 720 / 1280)
    assert default.size == (3 * 256, 3 * (thumb_h + LABEL_HEIGHT))
    four = result.contact_sheet(columns=4, thumb_width=100)
    assert four.size == (4 * 100, 3 * (56 + LABEL_HEIGHT))  # 9 tiles in 4 columns: 3 rows
    # The failed tile is grey; a good tile shows its own snapshot; the label strip has text.
    cell_h = thumb_h + LABEL_HEIGHT
    assert default.getpixel((256 + 128, 100)) == (90, 90, 90)
    tile = np.asarray(default.crop((512 + 4, 4, 768 - 4, thumb_h - 4)), np.int16)
    snap = np.asarray(_snap(result.rows[2]).resize((256, thumb_h)).crop((4, 4, 252, thumb_h - 4)), np.int16)
    assert np.abs(tile - snap).mean() < 3
    label = np.asarray(default.crop((0, thumb_h + 2, 256, cell_h - 2)).convert("L"))
    assert (label < 128).sum() > 20


def test_html_and_markdown_views(result: SweepResult) -> None:
    page = result._repr_html_()
    assert page.count("<tr>") == 9 + 1
    assert page.count("data:image/jpeg;base64,") == 6  # thumbnails for the rows that have one
    assert "INVALID_INPUT" in page
    assert result.to_markdown().count("[png](") == 6


def test_sweep_on_a_given_session_records_engine_errors_per_item(tmp_path: Path) -> None:
    def fussy(frame: np.ndarray, state: object) -> np.ndarray:
        if getattr(state, "prompt", None) == "boom":
            raise ValueError("this model does not like boom")
        return 255 - frame

    with Session(engine=fussy, source="pattern") as session:
        result = sweep(["fine", "boom", "fine again"], session=session, frames=3, out_dir=tmp_path)
        assert session.state in ("connected", "generating")  # the caller's session stays open
        assert session.generation.prompt == "fine again"
    assert [r["engine_errors"] for r in result.rows] == [None, ErrorCode.ENGINE_ERROR, None]
    assert all(r["error_code"] is None and r["frames_out"] >= 3 for r in result.rows)


def test_record_a_clip_per_item(tmp_path: Path, no_leaked_threads: None) -> None:
    result = sweep(["anime"], source="pattern", seconds=0, record_seconds=0.5, out_dir=tmp_path)
    clip = result.rows[0]["clip"]
    assert clip is not None
    with av.open(clip) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded >= 3


def test_bad_arguments_fail_before_connecting(tmp_path: Path) -> None:
    for kwargs in ({"prompts": []}, {"prompts": ["a"], "images": []}, {"prompts": ["a"], "seconds": -1}):
        with pytest.raises(DecartNBError) as info:
            sweep(**kwargs, out_dir=tmp_path)  # type: ignore[arg-type]
        assert info.value.code == ErrorCode.INVALID_INPUT
    assert not (tmp_path / "results.csv").exists()
