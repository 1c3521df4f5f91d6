"""Packaging: the sdist and the wheel carry the page bundle that hatch_build.py builds from js/.

The bundle (decart_nb/widgets/static/camera.js) is generated and gitignored, so only the build hook
and the `artifacts` setting put it in the archives. The wheel installed with JupyterLab and seen
rendering in Chromium is browser/test_wheel_browser.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hatch_build import BUNDLE as HOOK_BUNDLE
from hatch_build import PageBuildError, build_page
from tests.wheel_build import BUNDLE, RATE_RULES, REPO, build_dists, sdist_members, wheel_members

PAGE_SOURCES = ["js/package.json", "js/package-lock.json", "js/tsconfig.json", "js/src/index.ts"]


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, bytes], dict[str, bytes]]]:
    """The sdist's and the wheel's members (the wheel built from the sdist, as pip does from one)."""
    sdist, wheel = build_dists(tmp_path_factory.mktemp("dist"))
    yield sdist_members(sdist), wheel_members(wheel)


def tracked_package_data() -> list[str]:
    """Every file in git under the packages that is not Python: stylesheets, the rate rules..."""
    git = ["git", "ls-files", "decart_nb", "decart_nb_server"]
    listed = subprocess.run(git, cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return [name for name in listed if not name.endswith(".py") and name != BUNDLE]


def test_the_sdist_carries_the_page_sources_and_the_bundle_built_from_them(
    dists: tuple[dict[str, bytes], dict[str, bytes]],
) -> None:
    sdist, _ = dists
    missing = [name for name in [*PAGE_SOURCES, "hatch_build.py", BUNDLE] if name not in sdist]
    assert not missing, sorted(sdist)
    assert sdist[BUNDLE] == (REPO / BUNDLE).read_bytes()  # the hook's fresh build of the checkout
    assert not [name for name in sdist if "node_modules/" in name or ".test-out/" in name]


def test_the_wheel_has_the_bundle_and_the_package_data_and_no_tests(
    dists: tuple[dict[str, bytes], dict[str, bytes]],
) -> None:
    sdist, wheel = dists
    assert wheel.get(BUNDLE) == sdist[BUNDLE], "the wheel lacks the page bundle (hatch_build.py)"
    assert b"export" in wheel[BUNDLE]  # an ES module, as anywidget loads it
    missing = [name for name in [RATE_RULES, *tracked_package_data()] if name not in wheel]
    assert not missing, sorted(wheel)
    tests = [n for n in wheel if "tests/" in n or Path(n).name.startswith(("test_", "conftest"))]
    assert not tests
    assert not [name for name in wheel if name.startswith("js/") or name == "hatch_build.py"]


# -- the hook without a build: what it does when npm is missing, or the bundle came with an sdist ----
def test_without_npm_an_existing_bundle_is_used_with_a_warning(tmp_path: Path) -> None:
    bundle = tmp_path / HOOK_BUNDLE
    bundle.parent.mkdir(parents=True)
    bundle.write_text("export default {};\n")
    said: list[str] = []
    assert build_page(tmp_path, None, said.append) == bundle
    assert "npm not found" in said[0] and "may not match" in said[0], said


def test_without_npm_and_without_a_bundle_the_error_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(PageBuildError, match=r"apt-get install nodejs npm\) or run scripts/setup"):
        build_page(tmp_path, None, print)


def test_a_checkout_runs_npm_ci_only_without_node_modules_then_the_build(tmp_path: Path) -> None:
    log = tmp_path / "npm.log"
    npm = tmp_path / "npm"  # records its arguments; `run build` writes the bundle as esbuild would
    npm.write_text(
        f'#!/bin/sh\necho "$*" >> {log}\n'
        f'[ "$1" = run ] && mkdir -p ../{HOOK_BUNDLE.parent} && echo "export {{}};" > ../{HOOK_BUNDLE}\n'
        "exit 0\n"
    )
    npm.chmod(0o755)
    (tmp_path / "js").mkdir()
    build_page(tmp_path, str(npm), print)
    (tmp_path / "js" / "node_modules").mkdir()
    build_page(tmp_path, str(npm), print)
    runs = [run.split()[:2] for run in log.read_text().splitlines()]
    assert runs == [["ci", "--prefer-offline"], ["run", "build"], ["run", "build"]]


def test_an_sdist_keeps_its_bundle_without_calling_npm(tmp_path: Path) -> None:
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.4\n")
    bundle = tmp_path / HOOK_BUNDLE
    bundle.parent.mkdir(parents=True)
    bundle.write_text("export default {};\n")
    said: list[str] = []
    assert build_page(tmp_path, str(tmp_path / "no-such-npm"), said.append) == bundle
    assert "comes with the sdist" in said[0]
