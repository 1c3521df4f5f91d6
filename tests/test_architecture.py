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


def test_the_pattern_sees_a_private_access() -> None:
    assert PRIVATE_ACCESS.search("self._session._pipeline.stats")
    assert PRIVATE_ACCESS.search("existing = session._views.get('widget')")
    assert not PRIVATE_ACCESS.search("self._session.pipeline")


# Timeouts defined elsewhere, for now: Decart's SDK timings (its engine and client tokens, kept with
# the engine for the session that moves it to engines/decart/) and the sweep's frame wait.
OWN_TIMEOUTS = {"engines/decart.py", "tokens.py", "sweeps/measure.py"}
TIMEOUT_DEFINITION = re.compile(r"^_?[A-Z_]*TIMEOUT[A-Z_]* = ", re.M)


def test_timeouts_are_defined_in_one_place() -> None:
    found = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "timeouts.py" and TIMEOUT_DEFINITION.search(path.read_text())
    ]
    assert set(found) <= OWN_TIMEOUTS, set(found) - OWN_TIMEOUTS
    assert TIMEOUT_DEFINITION.search((PACKAGE / "timeouts.py").read_text())
