"""Which calls on a Session are the user's own: a public call that fails with a DecartNBError emits
`call_error`, so the panel lists errors raised in cells too; a call made by another public call
(save_snapshot's snapshot, answer's connect) or by a view (the panel's buttons) reports nothing."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from .errors import DecartNBError
from .events import EventHub

__all__ = ["calls_from_view", "reported"]


# Per thread: how deep in public Session calls it is, and whether a view made the outermost one.
_calls = threading.local()


class _HasEvents(Protocol):
    @property
    def events(self) -> EventHub: ...


class _Emits(Protocol):
    """What `reported` needs of the object whose methods it wraps: a core holding its events."""

    @property
    def _core(self) -> _HasEvents: ...


S = TypeVar("S", bound=_Emits)
P = ParamSpec("P")
R = TypeVar("R")


def reported(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """A public call that fails with a DecartNBError emits `call_error` (the error) to the
    session's listeners. Not an `error` event: the caller got the exception, and `s.on("error")`
    callbacks are for failures nobody saw. (Typed so mypy checks the owner has `_core.events`.)"""

    @functools.wraps(method)
    def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        depth = getattr(_calls, "depth", 0)
        _calls.depth = depth + 1
        try:
            return method(self, *args, **kwargs)
        except DecartNBError as exc:
            if depth == 0 and not getattr(_calls, "from_view", False):
                self._core.events.emit("call_error", exc)
            raise
        finally:
            _calls.depth = depth

    return call


@contextlib.contextmanager
def calls_from_view() -> Iterator[None]:
    """Session calls made in this block (on this thread) are a view's own (the panel's buttons
    and boxes), which shows their failures itself: they emit no `call_error`."""
    before = getattr(_calls, "from_view", False)
    _calls.from_view = True
    try:
        yield
    finally:
        _calls.from_view = before
