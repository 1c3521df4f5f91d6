"""notebooks/02_sweep.ipynb's `concurrency` and `resume` parameters, under papermill."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import nbformat
from PIL import Image

from tests.test_notebooks import kernel_name, outputs, run

__all__ = ["kernel_name"]  # the fixture, shared with test_notebooks

NAME = "02_sweep.ipynb"


def _said(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in outputs(nb) if o["output_type"] == "stream")


def _errors(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    return [o for o in outputs(nb) if o["output_type"] == "error"]


def test_sweep_notebook_concurrency_and_resume(tmp_path: Path, kernel_name: str) -> None:
    Image.new("RGB", (64, 64), (40, 110, 230)).save(tmp_path / "blue.png")
    params = {"prompts": ["anime", "film noir"], "images": [None, str(tmp_path / "blue.png")], "seconds": 0.3}
    out = tmp_path / "out"

    nb = run(NAME, tmp_path, kernel_name, concurrency=2, **params)
    assert not _errors(nb)
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["prompt"], r["image"]) for r in rows] == [
        ("anime", "none"),
        ("anime", "blue.png"),
        ("film noir", "none"),
        ("film noir", "blue.png"),
    ]
    assert all(not r["error_code"] and float(r["fps_out"]) > 3 for r in rows)
    assert len({r["worker"] for r in rows}) == 2  # two sessions, side by side

    again = run(NAME, tmp_path, kernel_name, concurrency=2, **params)  # resume=True: nothing to run
    assert "4 of 4 items already done (0 failed), nothing to run" in _said(again)
    lines = (out / "results.jsonl").read_text().splitlines()
    # results.jsonl is in the order items finished (two sessions race); results.csv in item order
    assert sorted(json.loads(x)["key"] for x in lines) == sorted(r["key"] for r in rows)

    fresh = run(NAME, tmp_path, kernel_name, resume=False, progress="lines", **params)
    said = _said(fresh)
    assert "starting over" in said and "4/4 #3 film noir / blue.png" in said
    assert len((out / "results.jsonl").read_text().splitlines()) == 4
    assert len((out / "results.jsonl.previous").read_text().splitlines()) == 4
