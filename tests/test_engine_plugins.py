"""Engines as plugins: a third party's engine, installed the way pip installs one (a package and its
*.dist-info with entry_points.txt on sys.path), used by name in a Session, a concurrent sweep and
the panel; broken entries fail alone; the built-ins come through the same entry-point group."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from decart_nb import DecartNBError, ErrorCode, Session
from decart_nb.engines import LocalEngine, make_engine, registry
from decart_nb.engines.registry import BUILTINS, GROUP, registrations
from decart_nb.experiments import sweep
from tests.helpers import wait_until

# A third party's engine: every frame becomes one colour, red from the `level` control, green
# from the `green` engine option, blue full. It records each engine it makes and the key it got.
TINT_MODULE = """
import av
import numpy as np

from decart_nb.engines import Control, EnginePlugin, FrameEngine

made = []


class TintEngine(FrameEngine):
    name = "tint"
    controls = (Control("level", "Level", 0.0, 1.0, 0.05, 0.5, "how red"),)
    skip_passthrough = False  # every frame shows the transform, prompt or none

    def __init__(self, green):
        super().__init__()
        self.green = green

    def process(self, frame, state):
        rgb = np.empty((frame.height, frame.width, 3), np.uint8)
        rgb[:] = (round(255 * state.controls["level"]), self.green, 255)
        return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def make(api_key, options):
    made.append((api_key, dict(options)))
    return TintEngine(int(options.get("green", 0)))


PLUGIN = EnginePlugin(make, options=("green",))
NOT_A_PLUGIN = 42
NOT_AN_ENGINE = EnginePlugin(lambda api_key, options: "an engine, honestly")
RAISES = EnginePlugin(lambda api_key, options: 1 / 0)
"""


def install(site: Path, dist: str, version: str, entries: Mapping[str, str]) -> None:
    """A distribution's metadata as pip writes it: METADATA and entry_points.txt in a dist-info."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entries.items())
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site folder on sys.path holding tint-engine (tint_engine) and a broken distribution."""
    folder = tmp_path / "site"
    (folder / "tint_engine").mkdir(parents=True)
    (folder / "tint_engine" / "__init__.py").write_text(TINT_MODULE)
    install(folder, "tint-engine", "1.0", {"tint": "tint_engine:PLUGIN"})
    install(
        folder,
        "broken-engines",
        "0.1",
        {
            "missing": "no_such_module_anywhere:PLUGIN",
            "wrongtype": "tint_engine:NOT_A_PLUGIN",
            "notanengine": "tint_engine:NOT_AN_ENGINE",
            "raises": "tint_engine:RAISES",
        },
    )
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop("tint_engine", None)


def tint_module() -> ModuleType:
    import tint_engine  # type: ignore[import-not-found]  # installed by the `site` fixture

    module: ModuleType = tint_engine
    return module


def mean_colour(picture: Image.Image) -> tuple[float, ...]:
    return tuple(np.asarray(picture.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0))


def near(colour: tuple[float, ...], expected: tuple[int, int, int], tolerance: float = 12.0) -> bool:
    return all(abs(got - want) <= tolerance for got, want in zip(colour, expected, strict=True))


def test_a_third_party_engine_by_name_in_a_session_and_its_panel(site: Path) -> None:
    s = Session(
        engine="tint",
        source="pattern",
        api_key="tint-key-123",
        engine_options={"green": 200},
        controls={"level": 0.6},
    )
    (key, options), *_ = tint_module().made
    assert key is not None and key.reveal() == "tint-key-123" and options == {"green": 200}
    assert s.engine.name == "tint"
    with s:
        s.connect()
        assert near(mean_colour(s.snapshot(timeout=20)), (153, 200, 255))
        panel = s.panel
        try:
            assert set(panel.control_sliders) == {"level"}  # one slider per Control
            slider = panel.control_sliders["level"]
            assert (slider.min, slider.max, slider.value) == (0.0, 1.0, pytest.approx(0.6))
            slider.value = 0.2  # as the page sets it
            assert wait_until(lambda: s.controls["level"] == pytest.approx(0.2), timeout=20)
            assert wait_until(lambda: near(mean_colour(s.snapshot(timeout=20)), (51, 200, 255)), timeout=20)
        finally:
            panel.close()


def test_a_third_party_engine_by_name_in_a_concurrent_sweep(site: Path, tmp_path: Path) -> None:
    def red(picture: Image.Image, row: object) -> dict[str, float]:
        return {"red": mean_colour(picture)[0]}

    before = len(tint_module().made)
    result = sweep(
        ["p0", "p1", "p2", "p3"],
        engine="tint",
        source="pattern",
        controls={"level": 0.8},
        seconds=0,
        frames=2,
        concurrency=2,
        metrics=red,
        out_dir=tmp_path / "run",
    )
    assert not result.failed and len(result.rows) == 4
    assert all(row["red"] == pytest.approx(204, abs=12) for row in result.rows)  # the engine's colour
    assert len({row["worker"] for row in result.rows}) == 2  # two lanes ...
    assert len(tint_module().made) - before >= 3  # ... each made its own (plus sweep()'s check)


def test_an_unknown_name_lists_the_registered_ones(site: Path) -> None:
    with pytest.raises(DecartNBError) as info:
        Session(engine="tnit", source="pattern")
    assert info.value.code == ErrorCode.INVALID_INPUT
    assert "Unknown engine 'tnit'" in info.value.message
    for name in ("'local'", "'decart'", "'tint'"):
        assert name in info.value.message


def test_unknown_options_name_the_engines_own(site: Path) -> None:
    with pytest.raises(DecartNBError) as info:
        Session(engine="tint", source="pattern", engine_options={"blue": 1})
    assert info.value.code == ErrorCode.INVALID_INPUT
    assert info.value.message == "engine_options (green) are for engine='tint'; got blue"
    with pytest.raises(DecartNBError) as info:
        Session(engine="local", source="pattern", engine_options={"green": 1})
    assert info.value.message == "engine='local' takes no engine_options; got green"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("missing", "could not be loaded (ModuleNotFoundError"),
        ("wrongtype", "names an object of type int, not an EnginePlugin"),
        ("notanengine", "returned a str from its factory, not an Engine"),
        ("raises", "failed to build (ZeroDivisionError: division by zero)"),
    ],
)
def test_a_broken_entry_names_its_distribution_and_breaks_no_other(site: Path, name: str, says: str) -> None:
    with pytest.raises(DecartNBError) as info:
        Session(engine=name, source="pattern")
    assert info.value.code == ErrorCode.ENGINE_ERROR
    assert says in info.value.message and f"'{name}'" in info.value.message
    assert "broken-engines 0.1, entry point" in info.value.message  # the distribution and the entry
    assert type(make_engine("tint")).__name__ == "TintEngine"  # the same distribution's neighbours
    assert isinstance(make_engine("local"), LocalEngine)


def test_a_third_party_cannot_take_a_builtin_name(
    site: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "_warned", set())
    install(site, "usurper", "1.0", {"local": "tint_engine:PLUGIN"})
    assert isinstance(make_engine("local"), LocalEngine)
    assert isinstance(make_engine("local"), LocalEngine)
    said = "usurper 1.0 registers an engine named 'local', a built-in name: ignored"
    assert caplog.text.count(said) == 1  # once, not at every engine by name


def test_one_name_from_two_distributions_is_refused_naming_both(site: Path) -> None:
    install(site, "tint-fork", "2.0", {"tint": "tint_engine:PLUGIN"})
    with pytest.raises(DecartNBError) as info:
        make_engine("tint")
    assert info.value.code == ErrorCode.INVALID_INPUT
    assert "tint-engine 1.0" in info.value.message and "tint-fork 2.0" in info.value.message


def test_loading_is_lazy(site: Path) -> None:
    # A fresh interpreter with the plugin installed: importing decart_nb and making the default
    # engine imports neither the third party's module nor Decart's SDK.
    code = textwrap.dedent(
        """
        import sys
        import decart_nb
        from decart_nb.engines import make_engine
        make_engine("local")
        loaded = sorted(m for m in ("tint_engine", "decart", "livekit") if m in sys.modules)
        print(loaded)
        """
    )
    env_path = f"{site}:{Path(__file__).resolve().parent.parent}"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": env_path}, check=True
    )
    assert out.stdout.strip() == "[]", out.stderr


def test_without_its_own_metadata_decart_nb_falls_back_to_its_builtins() -> None:
    named = registrations(found=[])  # an install made before pyproject.toml declared them
    assert {name: entries[0].entry_point.value for name, entries in named.items()} == BUILTINS
    assert all(entries[0].distribution is None for entries in named.values())


def test_decart_nbs_own_metadata_replaces_the_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # decart_nb's metadata as a reinstall with the pyproject lines writes it (first on sys.path wins).
    install(tmp_path, "decart_nb", "9.9", BUILTINS)
    monkeypatch.syspath_prepend(str(tmp_path))
    named = registrations()
    assert {name: named[name][0].distribution for name in BUILTINS} == dict.fromkeys(
        BUILTINS, "decart_nb 9.9"
    )
    assert isinstance(make_engine("local"), LocalEngine)


def test_the_builtins_come_through_the_installed_entry_points() -> None:
    # Passes once pyproject.toml declares [project.entry-points."decart_nb.engines"] and decart_nb
    # is reinstalled (`pip install -e .`): the installed metadata, not the fallback, names them.
    named = registrations()
    for name, value in BUILTINS.items():
        (entry,) = named[name]
        assert entry.distribution is not None and entry.distribution.startswith("decart_nb ")
        assert entry.entry_point.value == value
