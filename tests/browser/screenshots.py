"""The README's screenshots (docs/img/): a live session (generating, a prompt set) in JupyterLab at
1440x900 with the file browser open and at 1920x1080, light and dark, and in Notebook 7 at
1440x900; a comparison of two arms (compare-*.png) in JupyterLab at 1440x900, light and dark.
Run by scripts/screenshots, inside the loopback-only network namespace the tests use:

    scripts/screenshots            # writes docs/img/*.png
    scripts/screenshots OUT_DIR    # somewhere else, to compare
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from harness.lab import REPO, JupyterLab, LabNotebook, Playwright, launch_chromium, open_notebook

from .layout import open_view, scroll_to_view, set_theme

__all__ = ["SHOTS", "main"]

CELL = 'from decart_nb import Session\ns = Session(source="camera", prompt="anime")\ns'
LIVE_S = 120.0
# (file name, app, width, height, themes): one notebook per row, one PNG per theme.
SHOTS: list[tuple[str, str, int, int, tuple[str, ...]]] = [
    ("jupyterlab-1440x900", "jupyterlab", 1440, 900, ("light", "dark")),
    ("jupyterlab-1920x1080", "jupyterlab", 1920, 1080, ("light", "dark")),
    ("notebook7-1440x900", "notebook", 1440, 900, ("light",)),
]
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
COMPARE_CELL = (
    "from decart_nb import Arm, compare\n"
    'cmp = compare([Arm(name="film noir", prompt="film noir"), Arm(name="anime", prompt="anime")])\n'
    "cmp"
)
COMPARE_SHOTS: list[tuple[str, int, int, tuple[str, ...]]] = [
    ("compare-1440x900", 1440, 900, ("light", "dark")),
]


def shoot(nb: LabNotebook, out: Path, name: str, themes: tuple[str, ...]) -> list[Path]:
    """The live session, once the output plays, in each theme."""
    nb.page.wait_for_selector(".dnb-panel .dnb-badge-generating", timeout=LIVE_S * 1000)
    nb.page.wait_for_function(
        "() => { const v = document.querySelector('.dnb-view video.decart-output');"
        " return v && v.videoWidth > 0 && v.currentTime > 1; }",
        timeout=LIVE_S * 1000,
    )
    nb.page.wait_for_timeout(3000)  # the figures fill in (they are sent once a second)
    paths = []
    for theme in themes:
        if nb.lab.app == "jupyterlab":
            set_theme(nb, THEMES[theme])
        nb.page.locator(".jp-Notebook .jp-Cell").last.click()  # no focus ring in the view
        scroll_to_view(nb)
        path = out / (f"{name}-{theme}.png" if len(themes) > 1 else f"{name}.png")
        nb.page.screenshot(path=str(path))
        compress(path)
        paths.append(path)
    return paths


def shoot_compare(nb: LabNotebook, out: Path, name: str, themes: tuple[str, ...]) -> list[Path]:
    """The comparison once every arm plays."""
    nb.page.wait_for_function(
        "() => { const vs = [...document.querySelectorAll('.dnb-compare video.decart-output')]"
        ".filter(v => v.videoWidth > 0 && v.currentTime > 1); return vs.length >= 2; }",
        timeout=LIVE_S * 1000,
    )
    nb.page.wait_for_timeout(3000)  # the labels' figures fill in
    paths = []
    for theme in themes:
        set_theme(nb, THEMES[theme])
        nb.page.locator(".jp-Notebook .jp-Cell").last.click()
        scroll_to_view(nb)
        path = out / f"{name}-{theme}.png"
        nb.page.screenshot(path=str(path))
        compress(path)
        paths.append(path)
    return paths


def compress(path: Path) -> None:
    """256 colours, dithered: a quarter of the bytes in the repository, hardly a visible change."""
    with Image.open(path) as shot:
        small = shot.convert("RGB").quantize(
            256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG
        )
    small.save(path, optimize=True)


def write_scene_clip(path: Path, seconds: float = 2.0, width: int = 1280, height: int = 720) -> Path:
    """A y4m for the fake camera that reads as a picture (a dusk landscape, a boat crossing the
    water), not as test bars: the first thing a README visitor sees."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = xx / width, yy / height
    dusk = np.clip((v / 0.62)[..., None], 0, 1)
    rgb = (1 - dusk) * np.array([28, 44, 110]) + dusk * np.array([250, 150, 90])
    sun = np.exp(-(((u - 0.68) * 16 / 9) ** 2 + (v - 0.47) ** 2) / 0.004)[..., None]
    rgb = rgb * (1 - sun) + np.array([255, 226, 160]) * sun
    far = 0.52 + 0.05 * np.sin(u * 9.0) + 0.025 * np.sin(u * 23.0 + 1.0)
    near = 0.63 + 0.04 * np.sin(u * 5.0 + 2.0) + 0.015 * np.sin(u * 31.0)
    rgb[v > far] = [92, 70, 120]
    rgb[v > near] = [40, 44, 78]
    water = v > 0.78
    shimmer = (0.5 + 0.5 * np.sin(yy * 0.9 + np.sin(xx * 0.05) * 2.0)) * np.exp(
        -(((u - 0.68) * 16 / 9) ** 2) / 0.004
    )
    glint = np.array([34, 52, 96]) + np.array([190, 130, 60]) * shimmer[..., None]
    rgb[water] = glint[water]
    frames = max(1, round(seconds * 30))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for n in range(frames):
            frame = rgb.copy()
            boat = ((u - 0.2 - 0.3 * n / frames) * 16 / 9 / 0.05) ** 2 + ((v - 0.84) / 0.012) ** 2 < 1
            frame[boat] = [20, 16, 24]
            r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
            y = 0.299 * r + 0.587 * g + 0.114 * b
            cb = (
                (-0.1687 * r - 0.3313 * g + 0.5 * b + 128).reshape(height // 2, 2, width // 2, 2).mean((1, 3))
            )
            cr = (0.5 * r - 0.4187 * g - 0.0813 * b + 128).reshape(height // 2, 2, width // 2, 2).mean((1, 3))
            out.write(b"FRAME\n")
            for plane in (y, cb, cr):
                out.write(np.clip(plane, 0, 255).astype(np.uint8).tobytes())
    return path


def run(browser: Any, root: Path, out: Path) -> list[Path]:
    written: list[Path] = []
    for app in ("jupyterlab", "notebook"):
        with JupyterLab.start(root / app, app=app) as lab:
            for name, shot_app, width, height, themes in SHOTS:
                if shot_app != app:
                    continue
                nb = open_view(browser, lab, width, height, CELL, name="decart.ipynb")
                try:
                    written += shoot(nb, out, name, themes)
                    nb.execute("s.disconnect()")
                finally:
                    nb.close()
            if app != "jupyterlab":
                continue
            for name, width, height, themes in COMPARE_SHOTS:
                nb = open_notebook(browser, lab, "compare.ipynb")
                try:
                    nb.page.set_viewport_size({"width": width, "height": height})
                    nb.page.evaluate("() => window.jupyterapp.commands.execute('filebrowser:activate')")
                    nb.run_cell(COMPARE_CELL)
                    written += shoot_compare(nb, out, name, themes)
                    nb.execute("cmp.disconnect()")
                finally:
                    nb.close()
    return written


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else REPO / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="decart_nb-shots-"))
    clip = write_scene_clip(root / "camera.y4m")
    with Playwright() as pw:
        browser = launch_chromium(pw, clip)
        try:
            for path in run(browser, root, out):
                print(path)
        finally:
            browser.close()


if __name__ == "__main__":
    main(sys.argv[1:])
