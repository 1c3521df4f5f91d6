"""Blocking waits that let the page's widget messages in, on the kernel's main thread.

The kernel reads the page's comm messages (the WebRTC offer among them) between cells, so a cell
blocked in `snapshot()` waits for a page that cannot reach it: Run All stalls. decart_nb_server's
page socket carries the camera's signalling past the shell; without it (Colab, VS Code, a server
from another environment) only the comm does. So `wait()` handles pending comm messages between
short slices of the wait: only on the main thread of an IPython kernel, only inside a cell, never
nested (a comm handler it runs that calls a Session method waits plainly). Elsewhere (plain Python,
other threads) it is `fut.result()`.

Two ways to poll: ipykernel 6 has `do_one_iteration()`, which jupyter-ui-poll drives. ipykernel 7
has none (jupyter-ui-poll 1.1.0 then polls nothing and says nothing), so `_CommPoller` reads the
messages that wait for the main thread itself, handles the comm ones (through the kernel's own
handlers) and gives the rest (the next cells' execute_requests) back to the kernel, in their order,
when the cell ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol, TypedDict, TypeVar

from .timeouts import UI_POLL_EVERY_S

__all__ = ["pumping", "sleep", "wait"]

T = TypeVar("T")
logger = logging.getLogger("decart_nb")
COMM_TYPES = frozenset({"comm_open", "comm_msg", "comm_close"})
MAX_PER_POLL = 50  # messages read in one poll: a flood of them still lets the wait check its future
# Requests held for the cell's end (Run All's next cells: one each). Past this many the pump reads
# no further: the rest stay in the kernel's queue, in order, and the page's behind them wait.
MAX_HELD = 10_000
REPLAY_TURNS = 3  # turns of the kernel's loop before held requests go back (see _replay)

# What the pump uses of ipykernel 7 (duck-typed: these are the kernel's own objects). A frame of a
# shell message is only handed on, from the socket to the kernel's session and back to the kernel.
Frames = list[object]


class _Header(TypedDict):
    msg_type: str


class Message(TypedDict, total=False):  # the parts of a kernel message the pump reads
    header: _Header
    msg_type: str


Handler = Callable[[object, list[bytes], Message], object]


class _Socket(Protocol):
    def recv_multipart(self, flags: int, *, copy: bool) -> Frames: ...


class _Stream(Protocol):  # zmq's ZMQStream
    socket: _Socket
    _recv_callback: Callable[[Frames], object] | None

    def stop_on_recv(self) -> None: ...

    def on_recv(self, callback: Callable[[Frames], object], *, copy: bool) -> None: ...


class _KernelSession(Protocol):  # jupyter_client's Session
    def feed_identities(self, msg_list: Frames, *, copy: bool) -> tuple[list[bytes], Frames]: ...

    def deserialize(self, msg_list: Frames, *, content: bool, copy: bool) -> Message: ...


class _Kernel(Protocol):
    session: _KernelSession
    shell_handlers: Mapping[str, Handler]

    def get_parent(self, channel: str = ...) -> Message: ...

    def set_parent(self, ident: object, parent: object, *, channel: str) -> None: ...

    def shell_main(self, ident: object, msg: Frames) -> Coroutine[object, None, None]: ...


_active = False  # main thread only: a wait is pumping (a comm handler it runs must not pump again)


def pumping() -> bool:
    """True while a wait on the main thread handles widget messages."""
    return _active


def wait(fut: concurrent.futures.Future[T], timeout: float | None) -> T:
    """`fut.result(timeout)`, handling the page's widget messages meanwhile where that is needed."""
    __tracebackhide__ = True  # IPython hides this frame from the user's traceback
    poller = _poller()
    if poller is None:
        return fut.result(timeout=timeout)
    global _active
    _active = True
    try:
        with poller as poll:
            return _wait_polling(fut, timeout, poll)
    finally:
        _active = False


def sleep(seconds: float) -> None:
    """`time.sleep(seconds)`, handling the page's widget messages meanwhile where wait() would (a
    sweep over a camera session lets its state run: the page's frames may travel over the comm)."""
    never: concurrent.futures.Future[None] = concurrent.futures.Future()
    try:
        wait(never, seconds)
    except concurrent.futures.TimeoutError:
        return  # the whole time passed: what a sleep is for


def _wait_polling(fut: concurrent.futures.Future[T], timeout: float | None, poll: Callable[[], None]) -> T:
    __tracebackhide__ = True  # hidden from IPython's traceback
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        poll()
        left = UI_POLL_EVERY_S if deadline is None else min(UI_POLL_EVERY_S, deadline - time.monotonic())
        try:
            return fut.result(timeout=max(0.0, left))
        except concurrent.futures.TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise


def _poller() -> AbstractContextManager[Callable[[], None]] | None:
    """How to poll here, or None: not the main thread, not in an IPython kernel's cell, nested."""
    if _active or threading.current_thread() is not threading.main_thread():
        return None
    return _kernel_poller()


def _kernel_poller() -> AbstractContextManager[Callable[[], None]] | None:
    """The running IPython kernel's poller while it runs a cell, else None."""
    if "IPython" not in sys.modules:  # plain Python never imported it: no kernel to poll
        return None
    from IPython import get_ipython

    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is None or not _in_cell(kernel):
        return None
    if hasattr(kernel, "do_one_iteration"):  # ipykernel 6
        return _ui_poll_events()
    poller = _CommPoller.for_kernel(kernel)
    return None if poller is None else nullcontext(poller.poll)


def _in_cell(kernel: _Kernel) -> bool:
    """The main thread is running a cell (not a comm handler between cells, whose pump would take
    the next cells' requests with no cell end to give them back at)."""
    parent: Message = kernel.get_parent() if hasattr(kernel, "get_parent") else {}
    return bool(parent) and parent.get("header", {}).get("msg_type") == "execute_request"


@contextmanager
def _ui_poll_events() -> Iterator[Callable[[], None]]:
    """jupyter-ui-poll (ipykernel 6): up to MAX_PER_POLL events per poll."""
    from jupyter_ui_poll import ui_events

    with ui_events() as events:
        yield lambda: events(MAX_PER_POLL)


class _CommPoller:
    """ipykernel 7: the main thread's pending shell messages, read while a cell blocks it.

    Comm messages are handled at once, as the kernel would between cells; every other message is
    kept and handed back to the kernel when the cell ends, in the order they came. From the first
    held message until they are handed back, the kernel's own reader of that socket is paused, so
    that nothing that came after them can be read (and run) before them."""

    _current: _CommPoller | None = None
    _unreadable: _Kernel | None = None  # a kernel whose main-thread socket was not found

    def __init__(self, kernel: _Kernel, stream: _Stream) -> None:
        self._kernel = kernel
        self._stream = stream  # the kernel's ZMQStream on the main thread's socket
        self._socket = stream.socket
        self._held: list[Frames] = []  # at most MAX_HELD
        self._full = False
        self._paused: Callable[[Frames], object] | None = None  # the stream's callback while it is paused
        self._replaying = False  # a hand-back is under way (one at a time: it resumes the stream)
        self._replays: set[asyncio.Task[None]] = set()  # held messages handed back, until handled

    @classmethod
    def for_kernel(cls, kernel: _Kernel) -> _CommPoller | None:
        if cls._current is not None and cls._current._kernel is kernel:
            return cls._current
        if cls._unreadable is kernel:
            return None
        stream = _main_stream(kernel)
        if stream is None or getattr(stream, "_recv_callback", None) is None:
            # Said once: every later wait in this kernel waits plainly, as before.
            logger.warning("decart_nb: this ipykernel's messages cannot be read during a cell")
            cls._unreadable = kernel
            return None
        cls._current = cls(kernel, stream)
        return cls._current

    def poll(self) -> None:
        for _ in range(MAX_PER_POLL):
            if len(self._held) >= MAX_HELD:
                if not self._full:  # said once a cell
                    logger.warning("decart_nb: %d requests wait for this cell's end; no more read", MAX_HELD)
                self._full = True
                return
            frames = self._read()
            if frames is None:
                return
            self._handle(frames)

    def _read(self) -> Frames | None:
        import zmq

        try:
            return self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None

    def _handle(self, frames: Frames) -> None:
        session = self._kernel.session
        try:
            idents, rest = session.feed_identities(frames, copy=False)
            # A peek: content=False leaves the signature unrecorded, so the kernel can still read
            # a held message (a signature read twice is refused as a replay).
            peek = session.deserialize(rest, content=False, copy=False)
        except Exception:  # not ours to judge: the kernel reads it after the cell
            logger.debug("decart_nb: an unreadable shell message is left to the kernel", exc_info=True)
            self._hold(frames)
            return
        if peek["msg_type"] not in COMM_TYPES:  # the next cells' requests among them
            self._hold(frames)
            return
        try:
            msg = session.deserialize(rest, content=True, copy=False)
        except Exception:  # the kernel would log it and drop it too
            logger.exception("decart_nb: an invalid widget message was dropped")
            return
        # Before the held requests (they are the next cells): as between cells, handled at once.
        self._dispatch_comm(idents, msg)

    def _hold(self, frames: Frames) -> None:
        if self._paused is None:  # the kernel reads nothing more until the held ones are back
            self._paused = self._stream._recv_callback
            self._stream.stop_on_recv()
            self._hand_back_later()
        self._held.append(frames)

    def _dispatch_comm(self, idents: list[bytes], msg: Message) -> None:
        kernel = self._kernel
        cell = (kernel.get_parent("shell"), _shell_ident(kernel))
        msg_type = msg["header"]["msg_type"]
        handler = kernel.shell_handlers.get(msg_type)
        kernel.set_parent(idents, msg, channel="shell")
        try:
            if handler is None:  # the kernel handles comms: never seen, but said if it happens
                raise LookupError(f"this kernel has no handler for {msg_type}")
            handler(None, idents, msg)
        except Exception:  # the kernel logs a failing handler and goes on; so does the wait
            logger.exception("decart_nb: a widget message handler failed during a blocking call")
        finally:
            kernel.set_parent(cell[1], cell[0], channel="shell")  # the cell's output stays the cell's

    def _hand_back_later(self) -> None:
        """The kernel gets what was held, in order, once the cell lets its loop run again: at the
        cell's end (silent cells, hooks and errors included: no cell event to miss), or at an
        `await` of an async cell, where they queue behind the cell on the kernel's lock."""
        if self._replaying:
            return  # the hand-back under way takes these too
        self._replaying = True
        replay = _kernel_loop(self._kernel).create_task(self._replay())
        self._replays.add(replay)
        replay.add_done_callback(self._replayed)

    async def _replay(self) -> None:
        try:
            # A request the kernel read before the cell began is a few steps from the kernel's
            # lock (its read's task, then shell_main's); these turns let it queue there first.
            for _ in range(REPLAY_TURNS):
                await asyncio.sleep(0)
            while (frames := self._read()) is not None:  # came since: behind the held ones
                self._held.append(frames)
            held, self._held, self._full = self._held, [], False
            loop = asyncio.get_running_loop()
            for frames in held:  # queued in this order on the kernel's lock for the main shell
                task = loop.create_task(self._kernel.shell_main(None, frames))
                self._replays.add(task)
                task.add_done_callback(self._replayed)
        finally:
            callback, self._paused, self._replaying = self._paused, None, False
            if callback is not None:
                self._stream.on_recv(callback, copy=False)  # the kernel reads again, after them

    def _replayed(self, task: asyncio.Task[None]) -> None:
        self._replays.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("decart_nb: a held shell message failed", exc_info=task.exception())


def _kernel_loop(kernel: _Kernel) -> asyncio.AbstractEventLoop:
    """The main thread's asyncio loop (the kernel's), which runs the cell, or will once it ends."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # a cell run outside the loop: the loop under the kernel's tornado IOLoop
        loop: asyncio.AbstractEventLoop = getattr(kernel, "io_loop").asyncio_loop  # noqa: B009 - tornado's
        return loop


def _main_stream(kernel: _Kernel) -> _Stream | None:
    """The kernel's ZMQStream on the socket the main thread reads its shell messages from."""
    thread = getattr(kernel, "shell_channel_thread", None)
    stream: _Stream | None
    if thread is not None:
        stream = thread.manager.get_shell_channel_to_subshell_pair(None).to_stream
    else:
        stream = getattr(kernel, "shell_stream", None)
    return stream


def _shell_ident(kernel: _Kernel) -> object:
    idents: Mapping[str, object] | None = getattr(kernel, "_parent_ident", None)
    return idents["shell"] if idents is not None else b""
