"""Engines: `local` (embedded, default), `decart` (Decart's cloud), or a Python callable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..checks import check_mapping
from ..errors import DecartNBError, ErrorCode
from ..secret_key import SecretKey
from .base import Control, Engine, FrameEngine
from .function import CallableEngine
from .local import LocalEngine

__all__ = ["CallableEngine", "Control", "Engine", "FrameEngine", "LocalEngine", "make_engine"]


def make_engine(
    engine: str | Engine | Callable[..., Any], *, api_key: SecretKey | None = None, options: object = None
) -> Engine:
    """The engine a Session names: a built-in by name, an Engine as is, or a function.

    `options` (Session's engine_options) and the key go only to an engine that takes them.
    """
    checked = _engine_options(options, isinstance(engine, str) and engine == "decart")
    if isinstance(engine, Engine):
        return engine
    if isinstance(engine, str) and engine == "local":
        return LocalEngine()
    if isinstance(engine, str) and engine == "decart":
        from .decart import DecartEngine

        return DecartEngine(api_key, **checked)
    if isinstance(engine, type):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"engine={engine.__name__} is a class: pass an instance, {engine.__name__}()",
        )
    if callable(engine):
        return CallableEngine(engine)
    raise DecartNBError(
        ErrorCode.INVALID_INPUT,
        f"Unknown engine {engine!r:.60}: use 'local', 'decart', an Engine or a function fn(frame, state)",
    )


def _engine_options(options: object, is_decart: bool) -> dict[str, Any]:
    """Decart's connect options for engine="decart" (resolution, speed, codec, base_url)."""
    from .decart import OPTIONS

    checked = check_mapping("engine_options", options)
    unknown = [name for name in checked if name not in OPTIONS]
    if checked and (not is_decart or unknown):
        got = ", ".join(unknown or checked)
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"engine_options ({', '.join(OPTIONS)}) are for engine='decart'; got {got}",
        )
    return checked
