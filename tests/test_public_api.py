"""The package's public surface: the exported names are pinned, so a change to them is deliberate."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import decart_nb
from decart_nb import Session

EXPORTED = [
    "Arm",
    "Comparison",
    "ConnectionState",
    "DecartNBError",
    "ErrorCode",
    "EventRecord",
    "GenerationEnded",
    "GenerationState",
    "GenerationTick",
    "QueuePosition",
    "Session",
    "__version__",
    "compare",
    "devices",
    "diagnose",
    "models",
    "tokens",
    "turn",
    "watch",
]


def test_the_exported_names_are_pinned_and_sorted() -> None:
    assert decart_nb.__all__ == EXPORTED
    assert decart_nb.__all__ == sorted(decart_nb.__all__)
    for name in EXPORTED:
        assert getattr(decart_nb, name) is not None, name


def test_star_import_gives_exactly_the_exported_names() -> None:
    namespace: dict[str, object] = {}
    exec("from decart_nb import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(EXPORTED)


def test_the_package_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("decart_nb").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_without_logging_configured_a_warning_prints_nothing() -> None:
    # A fresh interpreter: Python's last-resort handler would print this to stderr without ours.
    code = "import logging, decart_nb; logging.getLogger('decart_nb').warning('not shown')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "not shown" not in done.stderr


def test_session_has_wait_until_and_events() -> None:
    """Issue 18's additions to the Session a notebook holds."""
    assert callable(decart_nb.Session.wait_until)
    assert isinstance(decart_nb.Session.events, property)
    assert decart_nb.ErrorCode.WAIT_TIMEOUT == "WAIT_TIMEOUT"


def test_only_the_model_may_be_passed_by_position() -> None:
    """Session(model, *, ...): a second positional argument is refused before anything starts,
    so a call cannot silently mean a different argument when the list grows."""
    import inspect

    params = list(inspect.signature(Session).parameters.values())
    assert params[0].name == "model" and params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
    with pytest.raises(TypeError):
        Session("lucy-latest", "local")  # type: ignore[misc]


# What a user's tab completion shows on a Session: the user's API only (issue 22). The widgets'
# interface is the SessionPort (decart_nb/session_port.py), which a Session does not show.
USER_NAMES = [
    "answer",
    "callback_failures",
    "codec",
    "connect",
    "controls",
    "disconnect",
    "engine",
    "errors",
    "events",
    "facing_mode",
    "generation",
    "ice_servers",
    "mirror",
    "model",
    "off",
    "on",
    "out_dir",
    "panel",
    "prompts",
    "record",
    "save_snapshot",
    "set",
    "set_controls",
    "set_image",
    "set_prompt",
    "snapshot",
    "source",
    "state",
    "stats",
    "switch_model",
    "wait_until",
    "widget",
]


def test_a_session_shows_users_only_their_own_names() -> None:
    s = Session(source="pattern")
    assert sorted(name for name in dir(s) if not name.startswith("_")) == USER_NAMES


def test_the_widgets_interface_is_on_the_port_not_on_the_session() -> None:
    from decart_nb.session_port import SessionPort, port_of

    s = Session(source="pattern")
    port = port_of(s)
    assert isinstance(port, SessionPort) and port.session is s
    for name in ("listen", "unlisten", "pipeline", "report_error", "camera_arrived", "peer_lost",
                 "close_peer", "answer_async", "add_page_stats", "show_link_figures",
                 "set_camera_facing", "existing_view", "forget_view", "calls_from_view"):  # fmt: skip
        assert hasattr(port, name), name
        assert not hasattr(s, name), name
