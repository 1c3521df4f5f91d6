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
