"""Engines: `local` (embedded, default), `decart` (Decart's cloud), or a Python callable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import DecartNBError, ErrorCode
from .base import Control, Engine, FrameEngine
from .function import CallableEngine
from .local import LocalEngine

__all__ = ["CallableEngine", "Control", "Engine", "FrameEngine", "LocalEngine", "make_engine"]


def make_engine(engine: str | Engine | Callable[..., Any], **options: Any) -> Engine:
    if isinstance(engine, Engine):
        return engine
    if isinstance(engine, str) and engine == "local":
        return LocalEngine()
    if isinstance(engine, str) and engine == "decart":
        from .decart import DecartEngine

        return DecartEngine(**options)
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
