"""Engines: by a registered name (`local`, the default; `decart`; a third party's, see
registry.py), an Engine instance, or a Python callable. A plugin needs only this module's names:
Engine or FrameEngine, Control, EnginePlugin and SecretKey (its factory's key)."""

from __future__ import annotations

from collections.abc import Callable

from ..checks import check_mapping, invalid
from ..secret_key import SecretKey
from .base import Control, Engine, FrameEngine
from .function import CallableEngine, FrameFunction
from .local import LocalEngine
from .registry import EngineFactory, EnginePlugin, build, engine_names, listed

__all__ = [
    "CallableEngine",
    "Control",
    "Engine",
    "EngineFactory",
    "EnginePlugin",
    "FrameEngine",
    "FrameFunction",
    "LocalEngine",
    "SecretKey",
    "engine_names",
    "make_engine",
]


def make_engine(
    engine: str | Engine | Callable[..., object], *, api_key: SecretKey | None = None, options: object = None
) -> Engine:
    """The engine a Session names: a registered one by name, an Engine as is, or a function.

    `options` (Session's engine_options) and the key go to a named engine's factory; its plugin
    says which options it takes.
    """
    checked = check_mapping("engine_options", options)
    if isinstance(engine, str):
        return build(engine, api_key, checked)
    if checked:
        raise invalid(
            f"engine_options are for an engine given by name ({listed(engine_names())}); an "
            f"Engine or a function takes none; got {', '.join(checked)}",
            argument="engine_options",
        )
    if isinstance(engine, Engine):
        return engine
    if isinstance(engine, type):
        raise invalid(f"engine={engine.__name__} is a class: pass an instance, {engine.__name__}()")
    if callable(engine):
        return CallableEngine(engine)
    raise invalid(
        f"Unknown engine {engine!r:.60}: use a registered name ({listed(engine_names())}), an Engine "
        "or a function fn(frame, state)"
    )
