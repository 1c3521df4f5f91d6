"""Hatch build hook: builds the camera widget's page before a wheel, an editable install or an sdist.

The page is TypeScript in js/; esbuild bundles it into decart_nb/widgets/static/camera.js, the one
ES module anywidget loads. That bundle is generated and gitignored, so pyproject.toml lists it as
an artifact (hatch ships artifacts although git ignores them).

- From a checkout: `npm ci` (only when js/node_modules is missing; the npm cache first, so an
  offline machine that ran scripts/setup still builds), then `npm run build`.
- From an sdist (it carries js/ and the bundle built from it): the bundle is used as it is, so a
  wheel builds from the sdist on a machine without Node.
- Without npm: an existing bundle is used with a warning (it may not match js/src); no bundle is an
  error that says what to install.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUNDLE = Path("decart_nb", "widgets", "static", "camera.js")
NPM_CI = ["ci", "--prefer-offline", "--no-audit", "--no-fund"]


class PageBuildError(RuntimeError):
    """The page could not be built, and no usable bundle exists."""


def build_page(root: Path, npm: str | None, say: Callable[[str], None]) -> Path:
    """Build (or keep) the bundle under `root`; its path. `npm` is the npm executable, or None."""
    bundle = root / BUNDLE
    if (root / "PKG-INFO").is_file() and bundle.is_file():
        say(f"decart_nb: {BUNDLE} comes with the sdist (built from its js/ sources)")
        return bundle
    if npm is None:
        if bundle.is_file():
            say(f"decart_nb: WARNING: npm not found; using the existing {BUNDLE}, which may not match js/src")
            return bundle
        raise PageBuildError(
            f"decart_nb: the page bundle {BUNDLE} is missing and npm was not found to build it "
            "from js/. Install Node.js and npm (Debian: apt-get install nodejs npm) or run "
            "scripts/setup, then build again."
        )
    js = root / "js"
    if not (js / "node_modules").is_dir():
        _run([npm, *NPM_CI], js, say)
    _run([npm, "run", "build"], js, say)
    if not bundle.is_file():
        raise PageBuildError(f"decart_nb: `npm run build` in js/ did not write {BUNDLE}")
    return bundle


def _run(cmd: list[str], cwd: Path, say: Callable[[str], None]) -> None:
    say(f"decart_nb: {' '.join(cmd[1:])} (in {cwd.name}/)")
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PageBuildError(
            f"decart_nb: `npm {' '.join(cmd[1:])}` in js/ failed ({done.returncode}):\n"
            f"{done.stdout[-4000:]}{done.stderr[-4000:]}"
        )


class PageBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Hatch's `custom` hook (pyproject.toml [tool.hatch.build.hooks.custom])."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        build_page(Path(self.root), shutil.which("npm"), self.app.display_info)
