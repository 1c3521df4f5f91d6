"""Screenshots of the MLflow UI listing a sweep's tracker runs (docs/experiments.md, issue 23).

    .venv/bin/python -m harness.mlflow_shots OUT_DIR [SHOTS_DIR]

OUT_DIR is a sweep's run folder written with `tracker="mlflow"` (its store: OUT_DIR/mlruns/).
Starts `mlflow server` on 127.0.0.1 only (run it inside the loopback-only namespace, as every
browser test), opens the experiment in Debian's Chromium at 1440x900 and writes:
mlflow_ui.png (the parent run with its child runs expanded), mlflow_child_run.png (one child
run's page: params and metrics) and mlflow_child_artifact.png (its snapshot artifact shown).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from decart_nb.tracking.mlflow_tracker import DEFAULT_EXPERIMENT, default_tracking_uri

from .lab import CHROMIUM, CHROMIUM_FLAGS, REPO, Playwright

__all__ = ["main", "mlflow_server", "shoot"]

VIEWPORT = {"width": 1440, "height": 900}
SERVER_START_S = 120.0
PAGE_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def mlflow_server(out_dir: Path) -> Iterator[str]:
    """`mlflow server` on the sweep's store, bound to 127.0.0.1; yields its URL."""
    port = _free_port()
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", default_tracking_uri(out_dir)]
    log = (out_dir / "mlflow_server.log").open("wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise TimeoutError(f"mlflow server did not answer within {SERVER_START_S:.0f} s")


def shoot(out_dir: Path, shots: Path) -> list[Path]:
    """The three screenshots of the sweep in `out_dir`; returns their paths."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=default_tracking_uri(out_dir))
    experiment = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    if experiment is None:
        raise RuntimeError(f"no {DEFAULT_EXPERIMENT!r} experiment in {out_dir}/mlruns")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    child = children[0]
    shots.mkdir(parents=True, exist_ok=True)
    exp = f"#/experiments/{experiment.experiment_id}"
    with mlflow_server(out_dir) as url, Playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(PAGE_S * 1000)
        made = [
            _runs_list(page, f"{url}/{exp}/runs", shots / "mlflow_ui.png"),
            _child(page, f"{url}/{exp}/runs/{child.info.run_id}", shots / "mlflow_child_run.png"),
            _artifact(
                page, f"{url}/{exp}/runs/{child.info.run_id}/artifacts", shots / "mlflow_child_artifact.png"
            ),
        ]
        browser.close()
    return made


def _runs_list(page: Any, url: str, path: Path) -> Path:
    page.goto(url)
    page.locator("a[href*='/runs/']").first.wait_for()
    _tidy(page)
    # The parent's row has an expander (MLflow's run-name cell): open it to list the child runs.
    page.locator("button[data-component-id*='runnamecellrenderer']").first.click()
    page.locator("a[href*='/runs/']").nth(1).wait_for()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(path))
    return path


def _tidy(page: Any) -> None:
    """Model-training mode and no assistant panel: the runs fill the page."""
    training = page.get_by_text("Model training", exact=True)
    if training.count():
        training.first.click()
    close = page.locator("button[aria-label='Close']")
    if close.count():
        close.first.click()


def _child(page: Any, url: str, path: Path) -> Path:
    page.goto(url)
    page.get_by_text("fps_out").first.wait_for()
    page.wait_for_timeout(1000)
    page.screenshot(path=str(path))
    return path


def _artifact(page: Any, url: str, path: Path) -> Path:
    page.goto(url)
    page.get_by_text("snapshot").first.click()
    page.get_by_text(".png").first.click()
    # MLflow's artifact preview loads the file into a blob: image.
    page.locator("img[src^='blob:']").first.wait_for(state="attached")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(path))
    return path


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    shots = Path(argv[1]) if len(argv) > 1 else REPO / "artifacts" / "shots23"
    for made in shoot(Path(argv[0]), shots):
        print(made)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
