"""notebooks/04_decart_cloud.ipynb under papermill: without a key it stops early and passes; with
the fake Decart server (started inside the notebook's kernel by an IPython startup file, with
LiveKit's Room stubbed there as in test_decart_server.py) it runs fully, and neither the saved
notebook nor anything the server saw carries the key beyond the control channel's URL.

Then the attack on a saved notebook (issue 19): a notebook in `%xmode Verbose` with DEBUG logs
on, a displayed session (widget state), a displayed client token and cells that fail, run by a
real kernel with a good key and with a refused one: the key is nowhere in the saved .ipynb
(outputs, tracebacks, widget state in its metadata), nor in the kernel process's own output."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

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
_fake_script = Script(tick_every_s=1.0, **{script!r})
_fake_decart = _loop.run(FakeDecartServer(_fake_script, log_path={log!r}).start(), timeout=10)
os.environ["DECART_REALTIME_BASE_URL"] = _fake_decart.url
os.environ["DECART_API_BASE_URL"] = f"http://127.0.0.1:{{_fake_decart.port}}"
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
    (startup / "00-fake-decart.py").write_text(STARTUP.format(root=str(ROOT), log=str(log), script={}))
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


# -- the key in a saved notebook ---------------------------------------------------------------------
WRONG_KEY = "dct_refused_notebook_key_3b9e"
VERBOSE_CELLS = [
    ("%xmode Verbose", False),
    ("import logging\nimport decart_nb\nlogging.basicConfig(level=logging.DEBUG, force=True)", False),
    ("s = decart_nb.Session(engine='decart', model='lucy-2.1', source='pattern')\ns", False),
]
GOOD_KEY_CELLS = [
    ("s.wait_until('generating', timeout=60)\ns.set_prompt('anime')", False),
    ("s.set_prompt('forbidden words')", True),  # rejected by the server: a verbose traceback
    ("token = decart_nb.tokens.create(allowed_models=['lucy-2.1'])\nprint(token)\ntoken", False),
    ("s.disconnect()", False),
]
REFUSED_KEY_CELLS = [
    ("s.connect()", True),  # refused: a verbose traceback through the session and the engine
    ("decart_nb.tokens.create()", True),
    ("s", False),  # the panel, with the session's errors, again
]


def run_attack_notebook(
    tmp_path: Path, kernel_name: str, monkeypatch: pytest.MonkeyPatch, key: str, cells: list[tuple[str, bool]]
) -> str:
    """The notebook run by a real kernel (nbclient, widget state stored), saved; its text."""
    from nbclient import NotebookClient

    from tests.fakes.decart_server import VALID_KEY

    ipython_dir = tmp_path / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    script = {"rejections": {"forbidden": "Prompt rejected: forbidden content"}, "refuse_key_in_socket": True}
    log = tmp_path / "server.jsonl"
    (startup / "00-fake-decart.py").write_text(STARTUP.format(root=str(ROOT), log=str(log), script=script))
    monkeypatch.setenv("IPYTHONDIR", str(ipython_dir))
    monkeypatch.setenv("DECART_API_KEY", key)
    assert key in (VALID_KEY, WRONG_KEY)
    nb = nbformat.v4.new_notebook()
    for source, fails in VERBOSE_CELLS + cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = ["raises-exception"] if fails else []
        nb.cells.append(cell)
    client = NotebookClient(
        nb, kernel_name=kernel_name, timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    saved = tmp_path / "attack.ipynb"
    nbformat.write(nb, saved)
    return saved.read_text()


def errors_of(saved: str) -> list[dict[str, Any]]:
    nb = nbformat.reads(saved, as_version=4)
    return [o for o in outputs(nb) if o["output_type"] == "error"]


def plain(traceback: list[str]) -> str:
    """A saved traceback without its colours."""
    return re.sub(r"\x1b\[[0-9;]*m", "", "".join(traceback))


@pytest.mark.webrtc
def test_a_good_keys_notebook_saves_no_key(
    tmp_path: Path, kernel_name: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("decart")
    from tests.fakes.decart_server import VALID_KEY

    saved = run_attack_notebook(tmp_path, kernel_name, monkeypatch, VALID_KEY, GOOD_KEY_CELLS)
    assert VALID_KEY not in saved  # outputs, tracebacks, logs, widget state
    assert "ek_fake_1" not in saved and "eyJfake.1.sig" not in saved  # the client token, displayed
    assert VALID_KEY not in "".join(capfd.readouterr())  # the kernel process's own stdout/stderr
    # What was saved: a verbose traceback, the token's redacted repr, the widgets' state.
    (rejected,) = errors_of(saved)
    assert "forbidden content" in str(rejected["evalue"])
    assert "self = <decart_nb.Session" in plain(rejected["traceback"])  # frame variables: verbose
    assert "ClientToken(api_key='***'" in saved and "application/vnd.jupyter.widget-state+json" in saved


@pytest.mark.webrtc
def test_a_refused_keys_notebook_saves_no_key(
    tmp_path: Path, kernel_name: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("decart")

    saved = run_attack_notebook(tmp_path, kernel_name, monkeypatch, WRONG_KEY, REFUSED_KEY_CELLS)
    assert WRONG_KEY not in saved  # outputs, tracebacks, logs, widget state
    assert WRONG_KEY not in "".join(capfd.readouterr())  # the kernel process's own stdout/stderr
    refused, token_refused = errors_of(saved)
    assert "Invalid API key" in str(refused["evalue"]) and "401" in str(token_refused["evalue"])
    assert "self = <decart_nb.Session" in plain(refused["traceback"])  # frame variables: verbose
