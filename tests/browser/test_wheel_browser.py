"""The wheel as a user gets it: built from the checkout (hatch_build.py bundles the page), installed
with JupyterLab into a fresh venv (offline, from .wheelhouse), and a Session's view rendering live
in Chromium from that install, not from the checkout."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.lab import JupyterLab, launch_chromium, open_notebook, wait_element
from tests.wheel_build import BUNDLE, RATE_RULES, build_wheel, run, wheel_members

from .test_camera_browser import OUTPUT, ROOT

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]
INSTALL_S = 600.0  # about 120 wheels into a fresh venv on a busy 2-core machine


def fresh_venv(folder: Path, wheel: Path) -> Path:
    """A new venv with the wheel and JupyterLab installed from .wheelhouse; its python."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", str(wheel), "jupyterlab"], timeout=INSTALL_S)
    return python


@contextlib.contextmanager
def venv_lab(root: Path, python: Path) -> Iterator[JupyterLab]:
    """The harness's JupyterLab, started by the venv's python (the harness starts sys.executable)."""
    path = f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {"PATH": path, "VIRTUAL_ENV": str(python.parents[1])}
    with contextlib.ExitStack() as stack:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "executable", str(python))
            server = stack.enter_context(JupyterLab.start(root, env=env))
        yield server


def test_the_built_wheel_renders_a_live_session_in_jupyterlab(
    playwright: Any, artifacts: Path, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path / "dist")
    assert BUNDLE in wheel_members(wheel), "the wheel lacks the page bundle (hatch_build.py)"
    python = fresh_venv(tmp_path / "venv", wheel)
    site = subprocess.run(
        [str(python), "-c", "import decart_nb, pathlib; print(pathlib.Path(decart_nb.__file__).parent)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert str(tmp_path / "venv") in site, site  # the fresh venv's decart_nb, not the checkout's
    installed = Path(site).parent
    assert (installed / BUNDLE).is_file() and (installed / RATE_RULES).is_file(), list(installed.iterdir())
    browser = launch_chromium(playwright)  # a pattern source: no camera
    with venv_lab(tmp_path / "lab", python) as lab:
        nb = open_notebook(browser, lab, "wheel.ipynb", artifacts)
        try:
            assert nb.py("__import__('decart_nb').__file__").startswith(site), "the kernel is not the venv's"
            nb.run_cell('from decart_nb import Session\ns = Session(source="pattern")\ns')
            wait_element(nb, ROOT, "true", 60)  # the widget's page script loaded and rendered
            wait_element(nb, ROOT, "el.dataset.state === 'generating' && el.dataset.status === 'live'", 120)
            wait_element(nb, ROOT, "el.querySelector('video.decart-output').videoWidth > 0", 60)
            assert nb.count_video_frames(OUTPUT, 2.0) > 0, nb.diagnostics()  # frames, not a still
            nb.screenshot("wheel-session")
            nb.execute("s.disconnect()")
        finally:
            nb.close()
            browser.close()
