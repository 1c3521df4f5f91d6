"""Applying a generation state the Decart way: each set() builds a whole new state from the
current one, the engine acknowledges it within the call's timeout, and only then is it the
session's; concurrent calls are applied one after the other."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeAlias

import numpy as np

from . import _loop
from .errors import DecartNBError, ErrorCode
from .session_core import SessionCore
from .state import GenerationState

__all__ = ["KEEP", "Applier", "Build", "Keep"]

#: What a set-call builds from the current state: prompt, image, enhance, controls.
Build: TypeAlias = Callable[[GenerationState], tuple[str | None, np.ndarray | None, bool, dict[str, float]]]


class Keep:
    """set_prompt/set_controls: the reference image (and so its name) stays."""


KEEP = Keep()


class Applier:
    """Applies the states of one Session (see the module's docstring)."""

    def __init__(self, core: SessionCore) -> None:
        self._core = core
        self.lock = threading.Lock()  # held by a set() (and a model switch) while it runs
        # The thread whose set() holds the lock: on the main thread it handles widget messages
        # while it waits (ui_pump), and a callback there that set() again would wait for itself.
        self._waiter: int | None = None

    def apply(
        self, build: Build, timeout: float, operation: str, image_name: str | Keep | None = KEEP
    ) -> None:
        if self._waiter == threading.get_ident():  # a widget callback the waiting set() ran
            raise RuntimeError(
                "decart_nb: a widget callback changed the state while a set() in the running cell "
                "waits for its acknowledgement; the callback can start a thread for it instead"
            )
        with self.lock:  # concurrent set() calls are applied one after the other
            self._waiter = threading.get_ident()
            try:
                self._apply_locked(build, timeout, operation)
                if not isinstance(image_name, Keep):  # accepted: the labels name the new image
                    self._core.image_name = image_name
            finally:
                self._waiter = None

    def _apply_locked(self, build: Build, timeout: float, operation: str) -> None:
        core = self._core
        new = core.new_state(*build(core.state))
        if core.pipeline is None:  # kept for connect(); listeners hear of it now
            core.state = new
            core.events.emit("generation_change", new)
            return
        try:
            wait = core.guard(core.engine.apply_timeout_s, timeout)
            _loop.run(self._apply_on_loop(new, operation, timeout), timeout=wait, pump=True)
        except Exception as exc:
            if isinstance(exc, DecartNBError):
                raise exc.with_traceback(None)  # noqa: B904 - from the user's call on: not the loop's frames
            raise DecartNBError(
                ErrorCode.ENGINE_ERROR, f"The {core.engine.name} engine rejected the state: {exc!r}"
            ) from exc
        core.state = new

    async def _apply_on_loop(self, new: GenerationState, operation: str, timeout: float) -> None:
        # Recorded in the same step as the acknowledgement: a Ctrl-C that lands after the engine
        # took the state but before the caller's thread woke up leaves the two agreeing.
        core = self._core
        apply_as = getattr(core.engine, "apply_as", None)  # an engine that times each operation
        if apply_as is not None:
            await apply_as(new, operation, timeout)
        else:
            await core.engine.apply(new)
        core.state = new
        core.events.emit("generation_change", new)
