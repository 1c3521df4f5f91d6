"""notebooks/04_decart_cloud.ipynb under papermill: without a key it stops early and passes; with
the fake Decart server (started inside the notebook's kernel by an IPython startup file, with
LiveKit's Room stubbed there as in test_decart_server.py) it runs fully, and neither the saved
notebook nor anything the server saw carries the key beyond the control channel's URL."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

from tests.test_notebooks import kernel_name, outputs, run

__all__ = ["kernel_name"]  # the fixture, shared with test_notebooks.py

pytest.importorskip("papermill")
NAME = "04_decart_cloud.ipynb"
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / NAME
ROOT = Path(__file__).resolve().parent.parent

STARTUP = """
import os, sys
sys.path.insert(0, {root!r})
from decart_nb import _loop
from tests.fakes.decart_server import FakeDecartServer, Script, stub_livekit_room

_loop.acquire()  # held for the kernel's life: the fake server runs on decart_nb's loop
# As Decart does: generation_started once media flows (the notebook waits for "generating").
_fake_script = Script(tick_every_s=1.0)
_fake_decart = _loop.run(FakeDecartServer(_fake_script, log_path={log!r}).start(), timeout=10)
os.environ["DECART_REALTIME_BASE_URL"] = _fake_decart.url
_fake_livekit = stub_livekit_room(_fake_decart)  # kept: collecting it would undo the stub
_fake_livekit.__enter__()
"""


def test_the_notebook_is_committed_clean() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "strip outputs before committing"
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    assert "DECART_API_KEY" in nb.cells[2].source and "dct_" not in json.dumps(nb)


def test_without_a_key_it_stops_early_and_passes(
    tmp_path: Path, kernel_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DECART_API_KEY", raising=False)
    nb = run(NAME, tmp_path, kernel_name, check_network=False)
    texts = "".join(o.get("text", "") for o in outputs(nb))
    assert "DECART_API_KEY is not set" in texts and "stops here" in texts
    assert not [o for o in outputs(nb) if o["output_type"] == "error"]
    assert not (tmp_path / "out" / "prompt.png").exists()


@pytest.mark.webrtc
def test_with_the_fake_server_it_runs_fully(
    tmp_path: Path, kernel_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("decart")
    from tests.fakes.decart_server import VALID_KEY, state_colour

    ipython_dir = tmp_path / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    log = tmp_path / "server.jsonl"
    (startup / "00-fake-decart.py").write_text(STARTUP.format(root=str(ROOT), log=str(log)))
    monkeypatch.setenv("IPYTHONDIR", str(ipython_dir))
    monkeypatch.setenv("DECART_API_KEY", VALID_KEY)

    nb = run(NAME, tmp_path, kernel_name, prompts=["anime", "noir"], seconds=0.3, check_network=False)
    assert not [o for o in outputs(nb) if o["output_type"] == "error"]
    out = tmp_path / "out"
    picture = np.asarray(Image.open(out / "prompt.png").convert("RGB")).reshape(-1, 3).mean(axis=0)
    assert np.abs(picture - np.array(state_colour("film noir, high contrast", None))).max() < 8
    assert len(list((out / "sweep").glob("*.png"))) >= 6  # 2 prompts x 3 references, and the sheet
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    prompts = [e["message"].get("prompt") for e in entries if "message" in e]
    assert "film noir, high contrast" in prompts and "noir" in prompts
    # The key: in the control channel's URL (where Decart's SDK puts it), nowhere else.
    for entry in entries:
        if "http" in entry:
            assert entry["http"]["query"].pop("api_key", None) in (None, VALID_KEY)
        assert VALID_KEY not in json.dumps(entry)
    saved = (tmp_path / NAME).read_text()
    assert VALID_KEY not in saved  # outputs, widget state, metadata: the saved notebook
    assert "application/vnd.jupyter.widget-view+json" in saved  # the live view was displayed
