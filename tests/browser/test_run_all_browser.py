"""Run All (issue 18): the example notebooks run top to bottom in a real JupyterLab (and Notebook 7)
with Chromium's fake camera, as a user runs them from Run > Run All Cells: no error output, every
cell executed, the camera over WebRTC. Each notebook is copied into the server's root with its
parameter cell edited (source="camera", shorter clips), as papermill would; the committed notebooks
stay as they are. Notebook 01 runs with decart_nb_server and without it. A screenshot of each run
is kept in artifacts/browser/run-all-*.png."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.lab import REPO, JupyterLab, LabNotebook, open_notebook
from tests.test_decart_notebook import STARTUP

pytestmark = pytest.mark.browser

NOTEBOOKS = REPO / "notebooks"
RUN_ALL_S = 240.0  # the longest Run All here takes ~40 s on an idle machine

# Installed in the kernel before Run All: after each cell, the transport of the notebook's
# `session` (while it has a camera link), so the test sees which one carried the camera.
TRANSPORT_SPY = """
import IPython as _ipython

_transports = []

def _record_transport(result):
    session = _ipython.get_ipython().user_ns.get("session")
    if session is None:
        return
    try:
        _transports.append(session.stats.get("transport"))
    except Exception as exc:  # the test's assertion shows it
        _transports.append(f"stats raised {exc!r}")

_ipython.get_ipython().events.register("post_run_cell", _record_transport)
"""


def notebook_copy(name: str, **parameters: Any) -> dict[str, Any]:
    """notebooks/`name` as an nbformat dict, with `parameters` assigned at the end of its
    parameter cell (what papermill's injected cell does)."""
    nb = json.loads((NOTEBOOKS / name).read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{name}: one parameter cell expected"
    lines = "".join(cells[0]["source"]).rstrip("\n")
    lines += "\n# The test's parameters:\n" + "".join(f"{k} = {v!r}\n" for k, v in parameters.items())
    cells[0]["source"] = lines
    return copy.deepcopy(nb)


def run_all(nb: LabNotebook, shot: str) -> list[dict[str, Any]]:
    """Install the transport spy, Run All, take the screenshot; the notebook's code cells."""
    nb.execute(TRANSPORT_SPY)
    try:
        cells = nb.run_all(RUN_ALL_S)
    finally:
        nb.screenshot(shot)
    return [c for c in cells if c["cell_type"] == "code"]


def summary(cells: list[dict[str, Any]]) -> str:
    """Each code cell's execution count, first line and outputs' text, for assertion messages."""
    lines = []
    for i, cell in enumerate(cells):
        first = "".join(cell["source"]).split("\n", 1)[0]
        lines.append(f"[{i}] ({cell.get('execution_count')}) {first}")
        for out in cell["outputs"]:
            text = out.get("text") or out.get("evalue") or out.get("data", {}).get("text/plain", "")
            lines.append(f"    {out['output_type']}: {''.join(text)[:300]}")
    return "\n".join(lines)


def session_events(nb: LabNotebook) -> str:
    """The notebook session's recent events (Session.events), for assertion messages."""
    try:
        events = nb.py("[(round(e.at % 1000, 2), e.name, repr(e.payload)[:120]) for e in session.events]")
    except AssertionError as exc:  # CellError: no session, or no events property
        return f"--- no session events: {exc}"
    return "--- session events ---\n" + "\n".join(map(str, events))


def assert_ran_clean_over_webrtc(nb: LabNotebook, cells: list[dict[str, Any]]) -> None:
    errors = [
        f"cell {i}: {o.get('ename')}: {o.get('evalue')}"
        for i, c in enumerate(cells)
        for o in c["outputs"]
        if o["output_type"] == "error"
    ]
    assert not errors, f"{errors}\n{summary(cells)}\n{session_events(nb)}\n{nb.diagnostics()}"
    unrun = [i for i, c in enumerate(cells) if c.get("execution_count") is None]
    assert not unrun, f"code cells never executed: {unrun}\n{nb.diagnostics()}"
    counts = [c["execution_count"] for c in cells]
    assert counts == sorted(set(counts)), f"cells ran out of order: {counts}\n{summary(cells)}"
    transports = [t for t in nb.py("_transports") if t is not None]
    assert transports and set(transports) == {"webrtc"}, f"transports: {transports}\n{nb.diagnostics()}"
    assert_console_clean(nb)


# Notebook 7.6's own settings loader throws this on opening any notebook, an empty one with no
# decart_nb code on the page included (notebook_core's bundle in the stack): the host's, not ours.
HOST_ERRORS = ("pageerror: Cannot read properties of undefined (reading 'schema')",)


def assert_console_clean(nb: LabNotebook) -> None:
    """No error line in the page's console over the whole run: a normal session logs none."""
    errors = [
        line
        for line in nb.console
        if line.startswith(("error:", "pageerror:"))
        and not (nb.lab.app == "notebook" and line in HOST_ERRORS)
    ]
    assert not errors, "the page logged errors:\n" + "\n".join(errors) + f"\n{nb.diagnostics()}"


@pytest.mark.parametrize("extension", [True, False], ids=["extension", "no-extension"])
def test_run_all_on_the_camera_notebook(
    extension: bool, chromium: Any, artifacts: Path, request: pytest.FixtureRequest
) -> None:
    """Also without decart_nb_server (Colab, VS Code, a server from another environment), where
    the page's messages come over the comm and the notebook's blocking calls let them in."""
    lab: JupyterLab = request.getfixturevalue("lab" if extension else "lab_without_server")
    content = notebook_copy("01_camera.ipynb", source="camera", clip_seconds=1.0)
    nb = open_notebook(chromium, lab, "01_camera.ipynb", artifacts, content)
    try:
        cells = run_all(nb, f"run-all-01_camera-{request.node.callspec.id}")
        assert_ran_clean_over_webrtc(nb, cells)
        assert (lab.root / "out" / "camera" / "snapshot.png").exists()
    finally:
        nb.close()


def test_run_all_on_the_bring_your_own_model_notebook(
    chromium: Any, lab: JupyterLab, artifacts: Path
) -> None:
    content = notebook_copy("03_bring_your_own_model.ipynb", source="camera")
    nb = open_notebook(chromium, lab, "03_bring_your_own_model.ipynb", artifacts, content)
    try:
        cells = run_all(nb, "run-all-03_bring_your_own_model")
        assert_ran_clean_over_webrtc(nb, cells)
        assert (lab.root / "out" / "byo" / "output.png").exists()
        assert any("image/png" in o.get("data", {}) for o in cells[-1]["outputs"]), summary(
            cells
        )  # the sheet
    finally:
        nb.close()


def test_run_all_on_the_compare_and_replay_notebook(chromium: Any, lab: JupyterLab, artifacts: Path) -> None:
    """Record the camera, replay it through two arms (a sweep), then watch them live on the clip."""
    parameters = {"source": "camera", "record_seconds": 1.5, "prompts": ["anime", "noir"], "seconds": 0.3}
    content = notebook_copy("05_compare_and_replay.ipynb", **parameters)
    nb = open_notebook(chromium, lab, "05_compare_and_replay.ipynb", artifacts, content)
    try:
        cells = run_all(nb, "run-all-05_compare_and_replay")
        assert_ran_clean_over_webrtc(nb, cells)
        sweep = lab.root / "out" / "compare" / "sweep"
        rows = [json.loads(line) for line in (sweep / "results.jsonl").read_text().splitlines()]
        assert sorted((r["prompt"], r["arm"]) for r in rows) == [
            ("anime", "full"),
            ("anime", "light"),
            ("noir", "full"),
            ("noir", "light"),
        ], summary(cells)
        assert all(not r["error_code"] for r in rows), summary(cells)
    finally:
        nb.close()


@pytest.fixture(scope="module")
def decart_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """A JupyterLab whose kernels start tests/fakes' Decart server (an IPython startup file, as
    tests/test_decart_notebook.py does under papermill) and have a valid key in their environment."""
    pytest.importorskip("decart")
    from tests.fakes.decart_server import VALID_KEY

    root = tmp_path_factory.mktemp("decart-lab")
    startup = JupyterLab.startup_dir(root)
    startup.mkdir(parents=True)
    log = root / "decart-server.jsonl"
    (startup / "00-fake-decart.py").write_text(STARTUP.format(root=str(REPO), log=str(log), script={}))
    with JupyterLab.start(root, env={"DECART_API_KEY": VALID_KEY}) as server:
        yield server


def test_run_all_on_the_decart_cloud_notebook(chromium: Any, decart_lab: JupyterLab, artifacts: Path) -> None:
    content = notebook_copy(
        "04_decart_cloud.ipynb", source="camera", check_network=False, prompts=["anime", "noir"], seconds=0.3
    )
    nb = open_notebook(chromium, decart_lab, "04_decart_cloud.ipynb", artifacts, content)
    try:
        cells = run_all(nb, "run-all-04_decart_cloud")
        assert_ran_clean_over_webrtc(nb, cells)
        out = decart_lab.root / "out" / "decart"
        assert (out / "prompt.png").exists() and len(list((out / "sweep").glob("*.png"))) >= 6
    finally:
        nb.close()


def test_run_all_on_the_camera_notebook_in_notebook_7(chromium: Any, artifacts: Path, tmp_path: Path) -> None:
    content = notebook_copy("01_camera.ipynb", source="camera", clip_seconds=1.0)
    with JupyterLab.start(tmp_path, app="notebook") as server:
        nb = open_notebook(chromium, server, "01_camera.ipynb", artifacts, content)
        try:
            assert "/lab" not in nb.page.url, nb.page.url  # Notebook 7's page, not JupyterLab's
            cells = run_all(nb, "run-all-01_camera-notebook7")
            assert_ran_clean_over_webrtc(nb, cells)
        finally:
            nb.close()
