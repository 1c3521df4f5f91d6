"""Every example notebook runs headless under papermill (pattern source), so none can rot."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import nbformat
import numpy as np
import papermill
import pytest
from PIL import Image

from decart_nb.experiments import LABEL_HEIGHT, THUMB_WIDTH

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = [
    "01_camera.ipynb",
    "02_sweep.ipynb",
    "03_bring_your_own_model.ipynb",
    "05_compare_and_replay.ipynb",
]


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python3` must start this interpreter (the venv's), not another python3 on the machine: when
    the kernelspec found first points elsewhere, put one of our own first on JUPYTER_PATH."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
    except NoSuchKernel:
        argv0 = ""
    # jupyter_client replaces a bare "python"/"python3" with sys.executable.
    bare = {"python", "python3", f"python3.{sys.version_info[1]}"}
    if argv0 in bare or argv0 == sys.executable:
        yield "python3"
        return
    prefix = tmp_path_factory.mktemp("kernel")
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", "python3"],
        check=True,
        capture_output=True,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        yield "python3"


def run(name: str, tmp_path: Path, kernel: str, **parameters: Any) -> nbformat.NotebookNode:
    out = tmp_path / name
    papermill.execute_notebook(
        str(NOTEBOOKS / name),
        str(out),
        parameters={"source": "pattern", "out_dir": str(tmp_path / "out")} | parameters,
        kernel_name=kernel,
        cwd=str(tmp_path),
        progress_bar=False,
        execution_timeout=180,
    )
    return nbformat.read(out, as_version=4)


def outputs(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebooks_are_clean(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "strip outputs before committing"
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1


def test_sweep_notebook(tmp_path: Path, kernel_name: str) -> None:
    Image.new("RGB", (64, 64), (40, 110, 230)).save(tmp_path / "blue.png")
    nb = run(
        "02_sweep.ipynb",
        tmp_path,
        kernel_name,
        prompts=["anime", "film noir"],
        images=[None, str(tmp_path / "blue.png")],
        seconds=0.3,
    )
    out = tmp_path / "out"
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["prompt"], r["image"]) for r in rows] == [
        ("anime", "none"),
        ("anime", "blue.png"),
        ("film noir", "none"),
        ("film noir", "blue.png"),
    ]
    assert all(not r["error_code"] and float(r["fps_out"]) > 3 for r in rows)
    thumb_h = round(THUMB_WIDTH * 720 / 1280)
    assert Image.open(out / "contact_sheet.png").size == (2 * THUMB_WIDTH, 2 * (thumb_h + LABEL_HEIGHT))
    html = [o["data"]["text/html"] for o in outputs(nb) if "text/html" in o.get("data", {})]
    assert any("<table>" in h and h.count("data:image/jpeg") == 4 for h in html)
    assert any("image/png" in o.get("data", {}) for o in outputs(nb))  # the contact sheet is shown


def test_camera_notebook_runs_headless(tmp_path: Path, kernel_name: str) -> None:
    nb = run("01_camera.ipynb", tmp_path, kernel_name, clip_seconds=1.0)
    out = tmp_path / "out"
    assert Image.open(out / "snapshot.png").size == (1280, 720)
    with av.open(str(out / "clip.mp4")) as clip:
        assert sum(1 for _ in clip.decode(video=0)) >= 5  # 1 s at 30 fps; margin for a busy machine
    with (out / "sweep" / "results.csv").open() as f:
        assert [r["prompt"] for r in csv.DictReader(f)] == ["anime", "pencil sketch"]
    assert not [o for o in outputs(nb) if o["output_type"] == "error"]
    # Displaying the session shows its live view (a widget), not a plain repr.
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs(nb))


def test_bring_your_own_model_notebook_transforms_frames(tmp_path: Path, kernel_name: str) -> None:
    block = 32
    run("03_bring_your_own_model.ipynb", tmp_path, kernel_name, prompt="warm pixel art", block=block)
    out = tmp_path / "out"
    before = np.asarray(Image.open(out / "input.png").convert("RGB"), np.int16)
    after = np.asarray(Image.open(out / "output.png").convert("RGB"), np.int16)
    # Below the frame stamp (top rows), every block x block tile of the output is one colour;
    # the input has tiles with edges in them.
    assert _max_tile_range(after[block:], block) <= 6
    assert _max_tile_range(before[block:], block) > 60
    # "warm": more red relative to blue than the input had.
    assert after[..., 0].mean() / after[..., 2].mean() > 1.2 * before[..., 0].mean() / before[..., 2].mean()


def _max_tile_range(rgb: np.ndarray, block: int) -> int:
    h, w = rgb.shape[0] // block * block, rgb.shape[1] // block * block
    tiles = rgb[:h, :w].reshape(h // block, block, w // block, block, 3)
    tiles = tiles[:, 2:-2, :, 2:-2]  # the tile's inside: chroma subsampling blurs its edges
    return int((tiles.max(axis=(1, 3)) - tiles.min(axis=(1, 3))).max())


def test_compare_and_replay_notebook(tmp_path: Path, kernel_name: str) -> None:
    nb = run(
        "05_compare_and_replay.ipynb",
        tmp_path,
        kernel_name,
        record_seconds=1.5,
        prompts=["anime", "film noir"],
        seconds=0.3,
    )
    out = tmp_path / "out"
    with av.open(str(out / "camera.mp4")) as clip:  # the input, recorded once
        assert sum(1 for _ in clip.decode(video=0)) >= 5
    sweep_dir = out / "sweep"
    with (sweep_dir / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    # One row per arm per prompt, every one measured, on the replayed clip.
    assert [(r["prompt"], r["arm"]) for r in rows] == [
        ("anime", "full"),
        ("anime", "light"),
        ("film noir", "full"),
        ("film noir", "light"),
    ]
    assert all(not r["error_code"] and float(r["fps_out"]) > 3 for r in rows)
    assert {r["source"] for r in rows} == {"camera.mp4"}
    assert (sweep_dir / "run.json").is_file() and (sweep_dir / "contact_sheet.png").is_file()
    # The arms ran their own settings: film noir at full strength is grey, the light arm keeps
    # some of the input's colour (a measure the pattern's motion between snapshots cannot fake).
    colour = {r["arm"]: _saturation(sweep_dir / r["snapshot"]) for r in rows if r["prompt"] == "film noir"}
    assert colour["full"] < 2 and colour["light"] > 20, colour
    assert not [o for o in outputs(nb) if o["output_type"] == "error"]
    # The live comparison displays as a widget view.
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs(nb))


def _saturation(path: Path) -> float:
    rgb = np.asarray(Image.open(path).convert("RGB"), np.int16)
    return float(np.abs(rgb[..., 0] - rgb[..., 1]).mean() + np.abs(rgb[..., 1] - rgb[..., 2]).mean())
