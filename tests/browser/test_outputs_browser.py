"""Snapshots and clips in a real page (issue 21): the panel's Snapshot and Record save next to the
notebook (out/ in its folder, as s.record() from a cell does), each preview is labelled with its
kind, time and state, and its Download link gives the saved file's bytes."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from harness.lab import LabNotebook

pytestmark = pytest.mark.browser

CELL = 'from decart_nb import Session\ns = Session(source="camera", prompt="anime")\ns'
LIVE_S = 120.0  # a loaded 2-core machine starts the local model slowly; generous on purpose


def test_the_panels_snapshot_and_clip_are_saved_next_to_the_notebook_and_download(
    notebook: LabNotebook,
) -> None:
    nb = notebook
    nb.run_cell(CELL)
    nb.run_cell(f's.wait_until("generating", timeout={LIVE_S})', timeout=LIVE_S + 30)
    nb.execute("s.panel.actions.record_seconds.value = 1")
    panel = nb.page.locator(".dnb-panel").first
    panel.get_by_role("button", name="Snapshot").click()
    assert nb.wait_py("len(s.panel.actions.previews.items) == 1", timeout=60), nb.diagnostics()
    panel.locator("button", has_text=re.compile(r"^\s*Record\s*$")).click()  # its icon is in its name
    assert nb.wait_py("len(s.panel.actions.previews.items) == 2", timeout=90), nb.diagnostics()
    saved = nb.py("[(p.parent.name, p.name) for p in sorted(s.out_dir.iterdir())]")
    assert [folder for folder, _ in saved] == ["out", "out"], saved  # out/ beside the notebook
    assert nb.py("str(s.out_dir) == __import__('os').path.abspath('out')")
    shot = nb.page.locator(".dnb-preview-snapshot").first
    clip = nb.page.locator(".dnb-preview-clip").first
    shot.wait_for(timeout=30_000)
    assert shot.inner_text().startswith("Snapshot ") and "· anime · no image ·" in shot.inner_text()
    assert clip.inner_text().startswith("Clip ") and clip.locator("video").count() == 1
    for preview, suffix in ((shot, ".png"), (clip, ".mp4")):
        with nb.page.expect_download(timeout=30_000) as info:
            preview.locator("a.dnb-download").click()
        download = info.value
        name = download.suggested_filename
        assert name.endswith(suffix) and name in [n for _, n in saved], (name, saved)
        got = hashlib.sha256(Path(download.path()).read_bytes()).hexdigest()
        expected = nb.py(f"__import__('hashlib').sha256((s.out_dir / {name!r}).read_bytes()).hexdigest()")
        assert got == expected, name
    nb.execute("s.disconnect()")
