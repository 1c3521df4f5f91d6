"""Building decart_nb's sdist and wheel offline, for the packaging tests (test_wheel.py and
browser/test_wheel_browser.py).

Tests run in a loopback-only namespace with no package index, so the build backend and everything a
fresh venv installs come from .wheelhouse, which scripts/setup fills. Without it these tests fail
(never skip): CI runs scripts/setup first, so a missing wheelhouse is a broken setup.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEELHOUSE = REPO / ".wheelhouse"
BUNDLE = "decart_nb/widgets/static/camera.js"
RATE_RULES = "decart_nb/media/rate_rules.json"  # package data the page's rate controller shares
BUILD_S = 300.0  # npm ci from the cache, esbuild, hatchling; generous for a busy 2-core machine

__all__ = [
    "BUILD_S",
    "BUNDLE",
    "RATE_RULES",
    "REPO",
    "WHEELHOUSE",
    "build_dists",
    "build_wheel",
    "offline_pip_env",
    "run",
    "sdist_members",
    "wheel_members",
]


def offline_pip_env() -> dict[str, str]:
    """The environment for pip (and `python -m build`'s pip) to install from .wheelhouse only."""
    if not any(WHEELHOUSE.glob("hatchling-*.whl")):
        raise AssertionError(f"{WHEELHOUSE} has no wheels: run scripts/setup (it fills the wheelhouse)")
    return os.environ | {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELHOUSE)}


def run(cmd: list[str], *, cwd: Path = REPO, timeout: float = BUILD_S) -> str:
    """Run `cmd` offline; its output. A failure shows the output."""
    done = subprocess.run(
        cmd, cwd=cwd, env=offline_pip_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"{cmd} failed ({done.returncode}):\n{done.stdout[-6000:]}{done.stderr[-6000:]}")
    return done.stdout


def build_wheel(out: Path) -> Path:
    """A wheel straight from the checkout, as `pip install .` builds it."""
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--wheel-dir", str(out), str(REPO)])
    return _one(out, "decart_nb-*.whl")


def build_dists(out: Path) -> tuple[Path, Path]:
    """The sdist, and the wheel built from that sdist (`python -m build`)."""
    run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)])
    return _one(out, "decart_nb-*.tar.gz"), _one(out, "decart_nb-*.whl")


def wheel_members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def sdist_members(sdist: Path) -> dict[str, bytes]:
    """Paths inside the project folder (the leading decart_nb-<version>/ dropped)."""
    members = {}
    with tarfile.open(sdist) as archive:
        for info in archive.getmembers():
            extracted = archive.extractfile(info) if info.isfile() else None
            if extracted is not None:
                members[info.name.split("/", 1)[1]] = extracted.read()
    return members


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, (pattern, list(folder.iterdir()))
    return found[0]
