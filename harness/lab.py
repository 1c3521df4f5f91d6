"""JupyterLab + Debian Chromium with a fake camera, driven by Playwright: for the browser tests
(tests/browser/, whose pytest fixtures are in tests/browser/harness.py) and the bench.

Everything here must run inside the loopback-only network namespace that `scripts/test` makes
(see docs/testing.md). Two ways to use it:

From pytest, through the fixtures of tests/browser/harness.py (clip, lab, lab_without_server,
chromium, notebook, artifacts):

    def test_something(notebook: LabNotebook) -> None:
        notebook.run_cell("import decart_nb; s = decart_nb.Session(source='camera'); s")
        assert notebook.py("s.stats['width']") == 1280
        notebook.screenshot("something")

From a script (the latency benchmark):

    with Playwright() as pw, JupyterLab.start(root) as lab:
        browser = launch_chromium(pw, write_stamped_clip(root / "clip.y4m"))
        nb = open_notebook(browser, lab, "bench.ipynb")
        ...

`JupyterLab.start(root, app="notebook")` serves Notebook 7 instead; `server_extension=False` turns
decart_nb_server (the media relay) off, as on a server from another environment.

LabNotebook, the handle on one open notebook:
    run_cell(code) / start_cell(code) + wait_cell()   a visible cell (start_cell does not wait, for
                                                      a busy cell while the page is measured)
    run_all()                                         Run > Run All Cells, as a user runs a notebook
    py(expr), wait_py(expr), execute(code)            the kernel, without a cell
    grab_video(selector) -> VideoGrab                 a <video>'s (or <canvas>'s) pixels
    count_video_frames(selector, seconds)             presented frames per second
    screenshot(name), diagnostics()                   artifacts, and text for assertion messages

Cells run through `window.jupyterapp` (JupyterLab's `expose_app_in_browser`), so they show in the
page and in screenshots. Every context of a browser from `launch_chromium` sets
`__decartNBDebug` before the page loads, so the camera widget keeps its page-side controllers in
`window.__decartNB.controllers` (status, pc, stream), for tests that need to look inside.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from decart_nb.media.stamp import write_stamp

__all__ = [
    "CHROMIUM",
    "CHROMIUM_FLAGS",
    "DEBUG_INIT_JS",
    "EMPTY_NOTEBOOK",
    "KERNEL_IDLE_S",
    "REPO",
    "SERVER_START_S",
    "CellError",
    "JupyterLab",
    "LabNotebook",
    "Playwright",
    "VideoGrab",
    "artifacts_dir",
    "launch_chromium",
    "open_notebook",
    "relay_status",
    "wait_element",
    "with_debug_hook",
    "write_stamped_clip",
]

CHROMIUM = "/usr/bin/chromium"
# TESTING.md: these flags work on this machine (headless is added by Playwright).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    # Without the fake-UI grant Chromium hides host IPs behind mDNS names nobody resolves here.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--use-fake-device-for-media-stream",
]
REPO = Path(__file__).resolve().parents[1]
SERVER_START_S = 60.0
KERNEL_IDLE_S = 90.0


# -- test media -------------------------------------------------------------------------------
def write_stamped_clip(
    path: Path, seconds: float = 2.0, width: int = 1280, height: int = 720, fps: int = 30
) -> Path:
    """A raw y4m clip (Chromium's fake camera loops it): colour bars and a moving disc, with
    frame n's number written by decart_nb.media.stamp.write_stamp into the top rows of the luma."""
    frames = max(1, round(seconds * fps))
    yy, xx = np.mgrid[0:height, 0:width]
    base_y = (60 + 140 * xx / width).astype(np.uint8)
    cu = ((xx[::2, ::2] * 8 // width) % 4 * 40 + 68).astype(np.uint8)
    cv = ((yy[::2, ::2] * 4 // height) % 4 * 40 + 68).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for n in range(frames):
            y = base_y.copy()
            cx = int(width * (0.2 + 0.6 * n / frames))
            disc = (xx - cx) ** 2 + (yy - height // 2) ** 2 < (height // 5) ** 2
            y[disc] = 230
            write_stamp(y, n)
            out.write(b"FRAME\n")
            out.write(y.tobytes())
            out.write(cu.tobytes())
            out.write(cv.tobytes())
    return path


# -- JupyterLab -------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class JupyterLab:
    """A running JupyterLab server; `url(path)` adds the token."""

    process: subprocess.Popen[bytes]
    root: Path
    port: int
    token: str
    log: Path
    app: str = "jupyterlab"  # or "notebook" (Notebook 7): which page open_notebook opens

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the server's REST API (contents, sessions, kernels)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base}/api/{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def log_tail(self, chars: int = 6000) -> str:
        """The server's (and its kernels') recent stdout/stderr, for failure messages."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"(no log: {exc})"

    @classmethod
    @contextlib.contextmanager
    def start(
        cls,
        root: Path,
        app: str = "jupyterlab",
        *,
        server_extension: bool = True,
        env: dict[str, str] | None = None,
    ) -> Iterator[JupyterLab]:
        """Start `jupyter lab` (or, with app="notebook", Notebook 7) with isolated
        config/data/runtime dirs under `root`, a token, on loopback; stop it after.
        `server_extension=False` turns decart_nb_server off (a server from another environment,
        Colab, VS Code: no media relay); `env` is added to the server's (and its kernels')
        environment. Kernels read IPython startup files from `startup_dir(root)`."""
        root.mkdir(parents=True, exist_ok=True)
        env = (
            os.environ
            | (env or {})
            | {
                name: str(root / ".jupyter" / sub)
                for name, sub in (
                    ("JUPYTER_CONFIG_DIR", "config"),
                    ("JUPYTER_DATA_DIR", "data"),
                    ("JUPYTER_RUNTIME_DIR", "runtime"),
                    ("IPYTHONDIR", "ipython"),
                    ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                    ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
                )
            }
        )
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("DECART_NB_MEDIA_RELAY", None)  # the extension sets it, when loaded (tests/conftest.py)
        # No "get notified about Jupyter news?" toast over the screenshots.
        notification = root / ".jupyter" / "settings" / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True, exist_ok=True)
        (notification / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
        port, token = _free_port(), secrets.token_hex(16)
        log = root / ".jupyter" / "jupyter.log"
        app_flags = {
            "jupyterlab": [
                "--LabApp.expose_app_in_browser=True",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.news_url=None",
            ],
            "notebook": ["--JupyterNotebookApp.expose_app_in_browser=True"],
        }[app]
        cmd = [
            sys.executable,
            "-m",
            app,
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.allow_root=True",
            *app_flags,
            *([] if server_extension else ["--ServerApp.jpserver_extensions=decart_nb_server=False"]),
        ]
        with log.open("wb") as sink:
            process = subprocess.Popen(cmd, cwd=root, env=env, stdout=sink, stderr=subprocess.STDOUT)
        server = cls(process, root, port, token, log, app)
        try:
            server._wait_ready()
            yield server
        finally:
            server.stop()

    @staticmethod
    def startup_dir(root: Path) -> Path:
        """IPython startup files here run in every kernel of the server started on `root`."""
        return root / ".jupyter" / "ipython" / "profile_default" / "startup"

    def _wait_ready(self) -> None:
        end = time.monotonic() + SERVER_START_S
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({self.process.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                self.api("GET", "status")
                return
            time.sleep(0.25)
        raise RuntimeError(f"jupyter lab did not answer within {SERVER_START_S} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


# -- Chromium ---------------------------------------------------------------------------------
class Playwright:
    """Playwright's sync API as a context manager (imported late: only browser tests need it)."""

    def __enter__(self) -> Any:
        from playwright.sync_api import sync_playwright

        self._manager = sync_playwright()
        return self._manager.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._manager.__exit__(*exc)


def launch_chromium(pw: Any, clip: Path | None = None, *, grant_camera: bool = True) -> Any:
    """Debian's Chromium (never `playwright install`). With `clip` the fake camera plays that y4m
    (30 fps; the built-in fake device gives 20). `grant_camera=False` leaves out the fake-UI
    grant, so getUserMedia fails with NotAllowedError."""
    args = list(CHROMIUM_FLAGS)
    if grant_camera:
        args.append("--use-fake-ui-for-media-stream")
    if clip is not None:
        args.append(f"--use-file-for-fake-video-capture={clip}")
    return with_debug_hook(pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args))


# Set before any page script: the camera widget's page then keeps its controllers in
# window.__decartNB (js/src/debug.ts), for the tests that look inside.
DEBUG_INIT_JS = "globalThis.__decartNBDebug = true;"


def with_debug_hook(browser: Any) -> Any:
    """`browser`, each of whose new contexts runs DEBUG_INIT_JS in every page before its scripts."""
    new_context = browser.new_context

    def debug_context(**kwargs: Any) -> Any:
        context = new_context(**kwargs)
        context.add_init_script(DEBUG_INIT_JS)
        return context

    browser.new_context = debug_context
    return browser


# -- a notebook in the page -------------------------------------------------------------------
class CellError(AssertionError):
    """A cell (or LabNotebook.py expression) raised in the kernel."""


_KERNEL_IDLE_JS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const ctx = w && w.sessionContext;
  const k = ctx && ctx.session && ctx.session.kernel;
  return !!(w && w.content && ctx.isReady && k && k.status === 'idle');
}"""

_RUN_CELL_JS = """async (code) => {
  const app = window.jupyterapp;
  const nb = app.shell.currentWidget.content;
  nb.activeCellIndex = nb.widgets.length - 1;
  const index = nb.activeCellIndex;
  nb.activeCell.model.sharedModel.setSource(code);
  const run = app.commands.execute('notebook:run-cell-and-insert-below');
  window.__harnessRun = run.then(() => nb.widgets[index].model.outputs.toJSON());
  return index;
}"""

_RUN_ALL_JS = """() => {
  window.__harnessRunAll = window.jupyterapp.commands.execute('notebook:run-all-cells');
}"""

_CELLS_JS = "() => window.jupyterapp.shell.currentWidget.content.model.toJSON().cells"

_EXECUTE_JS = """async ([code, ms]) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, store_history: false});
  let out = '', err = null;
  future.onIOPub = (msg) => {
    const c = msg.content;
    if (msg.header.msg_type === 'stream') out += c.text;
    if (msg.header.msg_type === 'error') err = c.ename + ': ' + c.evalue + '\\n' + c.traceback.join('\\n');
  };
  const late = new Promise((resolve) => setTimeout(() => resolve('late'), ms));
  const done = await Promise.race([future.done.then(() => 'done'), late]);
  return {out, err, late: done === 'late'};
}"""

_GRAB_JS = """async ([selector, scale]) => {
  const el = document.querySelector(selector);  // a <video>, or a <canvas> (the comm transport)
  const width = el && !el.hidden ? el.videoWidth ?? el.width : 0;
  const height = el ? el.videoHeight ?? el.height : 0;
  if (!width) return null;
  const w = Math.round(width * scale), h = Math.round(height * scale);
  const canvas = document.createElement('canvas');
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  ctx.drawImage(el, 0, 0, w, h);
  const rgba = ctx.getImageData(0, 0, w, h).data;
  let bin = '';
  for (let i = 0; i < rgba.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, rgba.subarray(i, i + 0x8000));
  }
  return {width, height, w, h, data: btoa(bin)};
}"""

_COUNT_FRAMES_JS = """([selector, ms]) => new Promise((resolve) => {
  const video = document.querySelector(selector);
  if (!video || !video.requestVideoFrameCallback) { resolve(-1); return; }
  let frames = 0;
  const end = performance.now() + ms;
  const tick = () => { frames += 1; if (performance.now() < end) video.requestVideoFrameCallback(tick); };
  video.requestVideoFrameCallback(tick);
  setTimeout(() => resolve(frames), ms + 50);
})"""


@dataclass
class VideoGrab:
    """Pixels read back from a page <video> through a canvas."""

    width: int  # the video's intrinsic size
    height: int
    rgb: np.ndarray  # HxWx3 uint8, at the grab's scale


class LabNotebook:
    """One notebook open in JupyterLab, with its own kernel."""

    def __init__(self, page: Any, lab: JupyterLab, path: str, artifacts: Path | None = None) -> None:
        self.page = page
        self.lab = lab
        self.path = path
        self.artifacts = artifacts
        self.console: list[str] = []
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: self.console.append(f"pageerror: {exc}"))

    def wait_kernel_idle(self, timeout: float = KERNEL_IDLE_S) -> None:
        self.page.wait_for_function(_KERNEL_IDLE_JS, timeout=timeout * 1000, polling=250)

    def start_cell(self, code: str) -> None:
        """Type `code` into the last cell and run it without waiting (see `wait_cell`)."""
        self.page.evaluate(_RUN_CELL_JS, code)

    def wait_cell(self, timeout: float = 120.0) -> str:
        """Wait for the cell started last; its text output (raises CellError if it raised)."""
        self.page.wait_for_function("() => window.__harnessRun !== undefined", timeout=timeout * 1000)
        outputs = self.page.evaluate(
            "(ms) => Promise.race([window.__harnessRun, new Promise((_, no) => "
            "setTimeout(() => no(new Error('cell timed out')), ms))])",
            timeout * 1000,
        )
        return _outputs_text(outputs)

    def run_cell(self, code: str, timeout: float = 120.0) -> str:
        """Run `code` as a new visible cell and wait for it; its text output."""
        self.start_cell(code)
        return self.wait_cell(timeout)

    def run_all(self, timeout: float = 300.0) -> list[dict[str, Any]]:
        """Run > Run All Cells (JupyterLab's and Notebook 7's `notebook:run-all-cells` command, as
        the menu runs it) and wait until it is done and the kernel idle; the notebook's cells as
        nbformat dicts (outputs, execution_count). Run All stops at a cell that raised."""
        self.page.evaluate(_RUN_ALL_JS)
        self.page.evaluate(
            "(ms) => Promise.race([window.__harnessRunAll, new Promise((_, no) => "
            "setTimeout(() => no(new Error('Run All timed out')), ms))])",
            timeout * 1000,
        )
        self.wait_kernel_idle()
        return list(self.page.evaluate(_CELLS_JS))

    def execute(self, code: str, timeout: float = 120.0) -> str:
        """Run code in the kernel without a cell (waits behind a busy cell); its stdout. A kernel
        that does not answer within `timeout` fails the test rather than hanging it."""
        result = self.page.evaluate(_EXECUTE_JS, [code, int(timeout * 1000)])
        if result["late"]:
            raise AssertionError(
                f"the kernel did not answer within {timeout} s: {code[:80]!r}\n{self.diagnostics()}"
            )
        if result["err"]:
            raise CellError(result["err"])
        return str(result["out"])

    def py(self, expression: str) -> Any:
        """The JSON value of a Python expression evaluated in the kernel."""
        out = self.execute(f"import json as _j; print(_j.dumps({expression}, default=str))")
        return json.loads(out.strip().splitlines()[-1])

    def wait_py(self, expression: str, timeout: float = 30.0, every: float = 0.5) -> Any:
        """Poll a Python expression until it is truthy; its last value."""
        end = time.monotonic() + timeout
        value = self.py(expression)
        while not value and time.monotonic() < end:
            time.sleep(every)
            value = self.py(expression)
        return value

    def grab_video(self, selector: str, scale: float = 0.25) -> VideoGrab | None:
        """Read a <video>'s (or a <canvas>'s) current picture (None while it has no frame)."""
        got = self.page.evaluate(_GRAB_JS, [selector, scale])
        if got is None:
            return None
        rgba = np.frombuffer(base64.b64decode(got["data"]), np.uint8).reshape(got["h"], got["w"], 4)
        return VideoGrab(got["width"], got["height"], rgba[:, :, :3].copy())

    def count_video_frames(self, selector: str, seconds: float) -> float:
        """Frames per second a <video> presented over `seconds` (requestVideoFrameCallback)."""
        frames = self.page.evaluate(_COUNT_FRAMES_JS, [selector, int(seconds * 1000)])
        return frames / seconds if frames >= 0 else -1.0

    def screenshot(self, name: str) -> Path | None:
        """Save a full-page PNG into the artifacts folder."""
        if self.artifacts is None:
            return None
        path = self.artifacts / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def diagnostics(self) -> str:
        """The page console and the server log, to append to assertion messages."""
        console = "\n".join(self.console[-60:])
        return f"--- page console ---\n{console}\n--- jupyter log ---\n{self.lab.log_tail()}"

    def close(self) -> None:
        """Close the page, then shut the notebook's kernel down."""
        try:
            self.page.context.close()
        except Exception as exc:  # noqa: BLE001 - the page may be gone already; the kernel matters more
            print(f"harness: closing the page failed: {exc!r}")
        for session in self.lab.api("GET", "sessions"):
            if session.get("path") == self.path:
                self.lab.api("DELETE", f"sessions/{session['id']}")


def _outputs_text(outputs: list[dict[str, Any]]) -> str:
    text = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            text.append(_joined(out.get("text", "")))
        elif kind in ("execute_result", "display_data"):
            text.append(_joined(out.get("data", {}).get("text/plain", "")))
        elif kind == "error":
            raise CellError(
                f"{out.get('ename')}: {out.get('evalue')}\n" + "\n".join(out.get("traceback", []))
            )
    return "\n".join(t for t in text if t)


def _joined(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


EMPTY_NOTEBOOK: dict[str, Any] = {
    "cells": [
        {
            "id": "cell-0",
            "cell_type": "code",
            "source": "",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
        }
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def open_notebook(
    browser: Any,
    lab: JupyterLab,
    name: str | None = None,
    artifacts: Path | None = None,
    content: dict[str, Any] | None = None,
) -> LabNotebook:
    """Save `content` (an nbformat dict; default one empty python3 cell) on the server as `name`,
    open it in a new browser context (in JupyterLab its own workspace, so nothing else is
    restored; in Notebook 7 its notebook page) and wait for its kernel to be idle."""
    path = name or f"nb-{uuid.uuid4().hex[:8]}.ipynb"
    body = {"type": "notebook", "format": "json", "content": content or EMPTY_NOTEBOOK}
    lab.api("PUT", f"contents/{path}", body)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    notebook = LabNotebook(page, lab, path, artifacts)
    if lab.app == "notebook":
        page.goto(lab.url(f"notebooks/{path}"))
    else:
        page.goto(lab.url(f"lab/workspaces/{uuid.uuid4().hex[:8]}/tree/{path}"))
    notebook.wait_kernel_idle()
    # Room for the widgets (Notebook 7's shell has no left area to collapse).
    page.evaluate("() => window.jupyterapp.shell.collapseLeft && window.jupyterapp.shell.collapseLeft()")
    return notebook


def artifacts_dir() -> Path:
    path = REPO / "artifacts" / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


def relay_status(lab: JupyterLab) -> int:
    """The HTTP status of a plain GET on decart_nb_server's media relay URL: 404 without the
    extension (a websocket route answers a plain GET with 400)."""
    request = urllib.request.Request(lab.url("decart_nb/media/9"))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def wait_element(nb: LabNotebook, selector: str, condition: str, timeout: float = 30.0) -> None:
    """Wait for a JS `condition` on the element `el` that `selector` finds."""
    script = f"() => {{ const el = document.querySelector('{selector}'); return !!el && ({condition}); }}"
    try:
        nb.page.wait_for_function(script, timeout=timeout * 1000, polling=200)
    except Exception as exc:
        raise AssertionError(f"page never satisfied {condition!r}: {exc}\n{nb.diagnostics()}") from exc
