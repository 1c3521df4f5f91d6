"""The one background event loop that owns all media, aiortc and engine coordination.

A busy notebook cell must never stall video, so media never runs on the kernel's loop. The loop
lives in one daemon thread, started by the first user (a Session) and stopped when the last one
releases it, so that nothing is left running after every session has disconnected.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import concurrent.futures.thread  # before our exit hook is registered, so ours runs first
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import TypeVar, TypeVarTuple

from . import ui_pump
from .errors import DecartNBError, ErrorCode

__all__ = ["acquire", "call_soon", "get_loop", "in_loop_thread", "release", "run", "submit"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
logger = logging.getLogger("decart_nb")
THREAD_NAME = "decart_nb-loop"

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_users = 0
_closers: list[Callable[[], Coroutine[object, None, None]]] = []


def acquire() -> asyncio.AbstractEventLoop:
    """Start the loop if needed and count one more user."""
    global _loop, _thread, _users
    with _lock:
        _users += 1
        if _loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def main() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            _thread = threading.Thread(target=main, name=THREAD_NAME, daemon=True)
            _thread.start()
            ready.wait()
            _loop = loop
        return _loop


def release() -> None:
    """Count one user less; the last one stops the loop and joins its thread."""
    global _loop, _thread, _users
    with _lock:
        _users = max(0, _users - 1)
        if _users or _loop is None:
            return
        loop, thread = _loop, _thread
        _loop, _thread = None, None
    assert thread is not None
    if threading.current_thread() is thread:
        loop.call_soon(loop.stop)
        return
    fut = asyncio.run_coroutine_threadsafe(_shutdown(loop), loop)
    try:
        fut.result(timeout=10)
    except concurrent.futures.TimeoutError:  # stop the loop all the same; say what was stuck
        logger.error("decart_nb: media tasks did not stop within 10 s (a model call still running?)")
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


async def _shutdown(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await loop.shutdown_default_executor()


def get_loop() -> asyncio.AbstractEventLoop:
    if _loop is None:
        raise DecartNBError(ErrorCode.NOT_CONNECTED, "The media loop is not running.")
    return _loop


def in_loop_thread() -> bool:
    return _thread is not None and threading.current_thread() is _thread


def submit(coro: Coroutine[object, None, T]) -> concurrent.futures.Future[T]:
    """Schedule a coroutine on the loop from any thread."""
    return asyncio.run_coroutine_threadsafe(coro, get_loop())


def run(coro: Coroutine[object, None, T], timeout: float | None = None, *, pump: bool = False) -> T:
    """Run a coroutine on the loop and wait for it; for sync public methods, never on the loop.

    `pump=True` (the waits a user's call makes: snapshot, set, record, ...) handles the page's
    widget messages while it waits, on the kernel's main thread (ui_pump). A DecartNBError comes
    out with a fresh traceback: the user's call, not the loop's and concurrent.futures' frames."""
    __tracebackhide__ = True  # IPython hides this frame from the user's traceback
    if in_loop_thread():
        coro.close()
        raise RuntimeError("decart_nb: a blocking call was made from the media loop itself")
    fut = submit(coro)
    try:
        return ui_pump.wait(fut, timeout) if pump else fut.result(timeout=timeout)
    except DecartNBError as exc:  # raised on the loop: its __cause__ stays, its frames go
        raise exc.with_traceback(None)  # noqa: B904 - the same error, re-raised here
    except concurrent.futures.TimeoutError:
        fut.cancel()
        raise DecartNBError(
            ErrorCode.WEBRTC_TIMEOUT_ERROR, f"Timed out after {timeout} s waiting for the media loop"
        ) from None
    except concurrent.futures.CancelledError:  # the session was torn down under the call
        raise DecartNBError(
            ErrorCode.NOT_CONNECTED, "The session was disconnected while this call waited"
        ) from None
    except BaseException:  # KeyboardInterrupt: the work must not go on in the background
        fut.cancel()
        raise


def call_soon(fn: Callable[[*Ts], object], *args: *Ts) -> None:
    """Hand a callable to the loop from any thread (comm handlers use this: never block there)."""
    get_loop().call_soon_threadsafe(fn, *args)


def register_closer(closer: Callable[[], Coroutine[object, None, None]]) -> None:
    """A coroutine run at interpreter exit (close peers: aiortc's decoder threads are not daemons)."""
    _closers.append(closer)


def unregister_closer(closer: Callable[[], Coroutine[object, None, None]]) -> None:
    if closer in _closers:
        _closers.remove(closer)


def _close_at_exit() -> None:
    loop = _loop
    if loop is None:
        return
    for closer in list(_closers):
        try:
            asyncio.run_coroutine_threadsafe(closer(), loop).result(timeout=5)
        except Exception as exc:  # noqa: BLE001 - at exit, report and go on closing the rest
            print(f"decart_nb: closing at exit failed: {exc!r}")


# threading's exit hooks run (last registered first) before it joins non-daemon threads (aiortc's
# decoders) and before concurrent.futures stops its workers (the engines'); atexit comes too late.
getattr(threading, "_register_atexit", atexit.register)(_close_at_exit)
