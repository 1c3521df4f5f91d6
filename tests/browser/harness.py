"""The browser tests' pytest fixtures (re-exported by tests/browser/conftest.py) over the harness
package's JupyterLab + Chromium driver (harness/lab.py, which the bench uses too), whose names
are re-exported here for the tests.

    clip       Path of a generated 1280x720 30 fps y4m with a frame stamp in the luma (module scope)
    lab        a JupyterLab server in an isolated temp dir, with a token (module scope)
    lab_without_server   the same with decart_nb_server turned off (module scope)
    chromium   Chromium whose fake camera plays `clip`, camera granted (module scope)
    notebook   a fresh notebook with an idle python3 kernel (per test); closed and its kernel shut
               down afterwards
    artifacts  artifacts/browser/ in the repo (gitignored), for screenshots
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.lab import (
    JupyterLab,
    LabNotebook,
    Playwright,
    artifacts_dir,
    launch_chromium,
    open_notebook,
    relay_status,
    write_stamped_clip,
)

# -- pytest fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """artifacts/browser/ in the repo (gitignored): screenshots for a person to look at."""
    return artifacts_dir()


@pytest.fixture(scope="module")
def clip() -> Iterator[Path]:
    """A stamped 2 s 1280x720 30 fps y4m (about 83 MB), deleted after the module."""
    folder = Path(tempfile.mkdtemp(prefix="decart_nb-clip-"))
    try:
        yield write_stamped_clip(folder / "camera.y4m")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """One JupyterLab server per test module."""
    with JupyterLab.start(tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture(scope="module")
def lab_without_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """One JupyterLab per test module with decart_nb_server turned off (as on a server from another
    environment): no media relay, the page's messages have only the comm."""
    with JupyterLab.start(tmp_path_factory.mktemp("lab-plain"), server_extension=False) as server:
        assert relay_status(server) == 404, server.log_tail()
        yield server


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with Playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def chromium(playwright: Any, clip: Path) -> Iterator[Any]:
    """Chromium with the fake camera playing `clip`, camera permission granted."""
    browser = launch_chromium(playwright, clip)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def notebook(
    chromium: Any, lab: JupyterLab, artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[LabNotebook]:
    """A fresh notebook with an idle kernel; a screenshot named after the test is saved at the end
    (also when the test fails), then the page is closed and the kernel shut down."""
    nb = open_notebook(chromium, lab, artifacts=artifacts)
    try:
        yield nb
    finally:
        try:
            nb.screenshot(f"{request.node.name}-end")
        except Exception as exc:  # noqa: BLE001 - a dead page must not hide the test's own failure
            print(f"harness: no end screenshot: {exc!r}")
        nb.close()
