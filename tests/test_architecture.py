"""The import graph shows what depends on what: the widgets and sweeps reach the Session only
through its port (public and documented members), never through its private attributes."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "decart_nb"
# The modules that use a Session they did not make: widgets, comm transport, sweeps.
USERS = [
    *(PACKAGE / "widgets").rglob("*.py"),
    PACKAGE / "experiments.py",
    *(PACKAGE / "sweeps").rglob("*.py"),
]
# `session._x`, `self._session._x`, `live._x`: a Session's private member, from another module.
PRIVATE_ACCESS = re.compile(r"\b(_?session|live)\._[a-z]\w*")


def test_widgets_and_sweeps_use_only_the_sessions_port() -> None:
    modules = sorted(USERS)
    assert len(modules) >= 8  # the camera widget, the comm transport, the panel's modules, sweeps
    found = [
        f"{path.name}:{n}: {match.group()}"
        for path in modules
        for n, line in enumerate(path.read_text().splitlines(), 1)
        for match in PRIVATE_ACCESS.finditer(line)
    ]
    assert found == []


# The port's own names, called on a Session (`session.listen`, `self._session.peer_lost`): the
# widgets must take them from the SessionPort they receive, and nothing private of the port either.
PORT_NAMES = (
    "listen|unlisten|pipeline|report_error|camera_arrived|peer_lost|close_peer|answer_async|"
    "add_page_stats|show_link_figures|set_camera_facing|existing_view|forget_view|calls_from_view"
)
SESSION_PORT_CALL = re.compile(rf"\b_?session\.({PORT_NAMES})\b|\b_?port\._[a-z]\w*")


def test_widgets_reach_the_sessions_port_through_the_port_only() -> None:
    found = [
        f"{path.name}:{n}: {match.group()}"
        for path in sorted(USERS)
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if not line.lstrip().startswith("#")
        for match in SESSION_PORT_CALL.finditer(line)
    ]
    assert found == []


def test_the_port_pattern_sees_a_port_name_called_on_a_session() -> None:
    assert SESSION_PORT_CALL.search("self._session.peer_lost()")
    assert SESSION_PORT_CALL.search("session.listen(self._on_event)")
    assert SESSION_PORT_CALL.search("self._port._core.pipeline")
    assert not SESSION_PORT_CALL.search("self._port.listen(self._on_event)")
    assert not SESSION_PORT_CALL.search("self._session.state")


def test_the_pattern_sees_a_private_access() -> None:
    assert PRIVATE_ACCESS.search("self._session._pipeline.stats")
    assert PRIVATE_ACCESS.search("existing = session._views.get('widget')")
    assert not PRIVATE_ACCESS.search("self._session.pipeline")


# Timeouts defined elsewhere, for now: Decart's client tokens and the sweep's frame wait.
OWN_TIMEOUTS: set[str] = set()
TIMEOUT_DEFINITION = re.compile(r"^_?[A-Z_]*TIMEOUT[A-Z_]* = ", re.M)
# Folders that define no duration at all (any module-level `NAME_S = ...`): all in timeouts.py.
NO_DURATIONS = ["engines/decart"]
DURATION_DEFINITION = re.compile(r"^_?[A-Z][A-Z0-9_]*_S\b\s*(:[^=\n]*)?= ", re.M)


def test_timeouts_are_defined_in_one_place() -> None:
    scanned = [path for path in sorted(PACKAGE.rglob("*.py")) if path.name != "timeouts.py"]
    found = [
        str(path.relative_to(PACKAGE)) for path in scanned if TIMEOUT_DEFINITION.search(path.read_text())
    ]
    assert set(found) <= OWN_TIMEOUTS, set(found) - OWN_TIMEOUTS
    assert PACKAGE / "engines" / "decart" / "engine.py" in scanned  # packages are scanned too
    assert TIMEOUT_DEFINITION.search((PACKAGE / "timeouts.py").read_text())


def test_the_decart_engine_takes_every_duration_from_timeouts() -> None:
    for folder in NO_DURATIONS:
        modules = sorted((PACKAGE / folder).rglob("*.py"))
        assert len(modules) >= 6, folder  # engine, viewer, sdk, errors, hooks, livekit (+ __init__)
        found = [
            f"{path.relative_to(PACKAGE)}: {match.group().strip()}"
            for path in modules
            for match in DURATION_DEFINITION.finditer(path.read_text())
        ]
        assert found == []
    # No module of the old flat layout is left behind (they are not kept as shims).
    assert sorted((PACKAGE / "engines").glob("decart*.py")) == []


def test_the_patterns_see_a_definition() -> None:
    assert TIMEOUT_DEFINITION.search("x = 1\nSETTLE_TIMEOUT_S = 30.0\n")
    assert DURATION_DEFINITION.search("BACKSTOP_S = 5.0")
    assert DURATION_DEFINITION.search("_GRACE_S: float = 1.0")
    assert not DURATION_DEFINITION.search("    backstop_s = BACKSTOP_S")
    assert not DURATION_DEFINITION.search("    set_timeout_s = SET_TIMEOUT_S")
    assert not DURATION_DEFINITION.search("DECART_SETTINGS = {}")
