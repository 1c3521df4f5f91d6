"""The page's TypeScript (js/src) for the Python tests that drive it in node: `internals()` bundles
its parts with esbuild (js/build.mjs --internals) into a script that puts them on globalThis, and
`sources()` is the modules' text, for the tests that read the page's code."""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

__all__ = ["JS", "internals", "node", "sources"]

JS = Path(__file__).parents[1] / "js"


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node not found: install nodejs (sudo apt-get install nodejs, or run scripts/setup)")
    return path


@functools.cache
def internals() -> Path:
    """The page's internals as one script (built once per test run, from the sources as they are)."""
    if not (JS / "node_modules" / "esbuild").is_dir():
        pytest.fail("js/node_modules is missing: run `npm ci` in js/ (scripts/setup does)")
    folder = Path(tempfile.mkdtemp(prefix="decart_nb-page-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    out = folder / "internals.js"
    done = subprocess.run(
        [node(), str(JS / "build.mjs"), "--internals", str(out)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"esbuild failed:\n{done.stderr}"
    return out


def sources() -> str:
    """Every module of js/src, one after the other (sorted by name)."""
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted((JS / "src").glob("*.ts")))
