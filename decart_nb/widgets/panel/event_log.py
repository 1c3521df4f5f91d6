"""The panel's Events section: the session's events and what its callbacks print, as they happen.

Callbacks run on the session's dispatcher thread, mostly after their cell has ended, when Jupyter
shows nothing a thread prints: the log is where their output and their failures are seen. It is
an ipywidgets.Output whose `outputs` the log sets whole, under a lock, from any thread (a trait set
sends one comm message; `with output:` would capture the wrong thread's output). State changes,
errors (with codes), queue positions and ends of generation get one timestamped line; a callback
that raised gets a line and its traceback. Callback failures live here only, in order with the
output that led to them, rather than in a list of their own as before.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import ipywidgets as w

from ...callback_output import StreamName
from ...errors import DecartNBError
from ...events import CallbackFailure, EventRecord, GenerationEnded, QueuePosition

__all__ = ["LOG_ENTRIES", "LOG_STREAM_CHARS", "EventLog"]

LOG_ENTRIES = 200  # lines, tracebacks and runs of printed text kept (the oldest go first)
LOG_STREAM_CHARS = 20_000  # one run of printed text keeps its last this many characters

Entry = dict[str, Any]  # one output in Jupyter's format (stream, display_data, error)


class EventLog:
    """A session watcher (`port.listen(log)`: the SessionPort) that also takes the callbacks' output."""

    def __init__(self, history: Iterable[EventRecord] = ()) -> None:
        self._lock = threading.Lock()
        self._entries: deque[Entry] = deque(maxlen=LOG_ENTRIES)
        self.output = w.Output(layout=w.Layout(width="100%"))
        self.output.add_class("dnb-log")
        self.empty = w.HTML('<div class="dnb-muted dnb-log-empty">No events yet</div>')
        self.toggle = w.Button(description="Hide", tooltip="Hide or show the event log")
        self.toggle.on_click(lambda _: self.set_open(self.output.layout.display == "none"))
        self.clear_button = w.Button(description="Clear", tooltip="Empty the event log")
        self.clear_button.on_click(lambda _: self.clear())
        for button in (self.toggle, self.clear_button):
            button.add_class("dnb-log-button")
        title = w.HTML('<div class="dnb-title">Events</div>', layout=w.Layout(flex="1 1 auto"))
        header = w.HBox([title, self.clear_button, self.toggle])
        header.add_class("dnb-log-header")
        self.box = w.VBox([header, self.empty, self.output])
        self.box.add_class("dnb-section")
        self.box.add_class("dnb-events")
        self.box.add_class("dnb-open")
        for record in history:
            self(record.name, record.payload, at=record.at)

    # -- what the session calls ---------------------------------------------------------------
    def __call__(self, event: str, payload: object, at: float | None = None) -> None:
        """A session event (any thread, at once): a line for those a person follows."""
        line = _event_line(event, payload)
        if line is None:
            return
        stamp = time.strftime("%H:%M:%S", time.localtime(time.time() if at is None else at))
        entries = [_line_entry(stamp, line)]
        if isinstance(payload, CallbackFailure):
            entries.append(_traceback_entry(payload))
        with self._lock:
            self._entries.extend(entries)
            self._show()

    def write_callback_output(self, stream: StreamName, text: str) -> None:
        """What a callback printed (the dispatcher thread): appended to the run it continues."""
        if not text:
            return
        with self._lock:
            last = self._entries[-1] if self._entries else None
            if last is not None and last["output_type"] == "stream" and last["name"] == stream:
                self._entries[-1] = _stream_entry(stream, last["text"] + text)
            else:
                self._entries.append(_stream_entry(stream, text))
            self._show()

    # -- what a person does -------------------------------------------------------------------
    def set_open(self, open_: bool) -> None:
        self.output.layout.display = None if open_ else "none"
        self.toggle.description = "Hide" if open_ else "Show"
        self.clear_button.layout.display = None if open_ else "none"
        # The panel gives an open log its own row (panel.css).
        (self.box.add_class if open_ else self.box.remove_class)("dnb-open")

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._show()

    @property
    def text(self) -> str:
        """The log as plain text (for tests and for a look from a cell)."""
        with self._lock:
            return "".join(_plain(entry) for entry in self._entries)

    def _show(self) -> None:
        """The lock is held: outputs are set in the order the entries changed."""
        self.output.outputs = tuple(self._entries)
        self.empty.layout.display = "none" if self._entries else None


def _event_line(event: str, payload: object) -> str | None:
    """The line for an event a person follows, coloured (_styled); None for the rest (ticks,
    stats, internal changes), which would bury them."""
    if event == "connection_change":
        return _styled(str(payload), _STATE_SGR.get(str(payload), _BOLD))
    if event == "error" and isinstance(payload, DecartNBError):
        return f"{_styled(payload.code, _BAD)} {payload.message}"
    if event == "queue_position" and isinstance(payload, QueuePosition):
        return f"queue position {payload.position} of {payload.queue_size}"
    if event == "generation_ended" and isinstance(payload, GenerationEnded):
        return f"generation ended ({payload.reason}) after {payload.seconds} s"
    if event == "model_change":
        return f"model {_styled(str(getattr(payload, 'name', payload)), _BOLD)}"
    if event == "callback_failure" and isinstance(payload, CallbackFailure):
        names = f"{_styled(payload.event, _BAD)} callback {_styled(payload.callback, _BAD)}"
        return f"{names} raised {payload.error}"
    return None


def _line_entry(stamp: str, line: str) -> Entry:
    """Text, no HTML: JupyterLab typesets an Output's HTML with its LaTeX typesetter, whose first
    use loads MathJax (~200 KB gzipped), as soon as the Output is attached, even hidden: on the
    link a first display shares with the camera's start (issue 24, bench/first_visit.py). Its
    colours are ANSI codes, which JupyterLab's text renderer shows (never typeset)."""
    text = f"{_styled(stamp, _MUTED)} {line}\n"
    return {"output_type": "display_data", "data": {"text/plain": text}, "metadata": {}}


# ANSI SGR codes: JupyterLab turns them into ansi-* classes, which panel.css maps to the theme's
# colours (a state's colour as the badge's, an error's code in the error colour).
_BOLD, _BAD, _MUTED = "1", "1;31", "90"
_STATE_SGR = {
    "connecting": "1;33",
    "reconnecting": "1;33",
    "connected": "1;34",
    "generating": "1;32",
    "disconnected": "1;90",
}
_SGR = re.compile(r"\x1b\[[0-9;]*m")


def _styled(text: str, sgr: str) -> str:
    return f"\x1b[{sgr}m{text}\x1b[0m"


def _traceback_entry(failure: CallbackFailure) -> Entry:
    name, _, value = failure.error.partition(": ")
    return {
        "output_type": "error",
        "ename": name,
        "evalue": value,
        "traceback": failure.traceback.rstrip("\n").split("\n"),
    }


def _stream_entry(stream: StreamName, text: str) -> Entry:
    if len(text) > LOG_STREAM_CHARS:  # a chatty callback: keep its newest output
        text = "…" + text[-LOG_STREAM_CHARS:]
    return {"output_type": "stream", "name": stream, "text": text}


def _plain(entry: Entry) -> str:
    if entry["output_type"] == "stream":
        return str(entry["text"])
    if entry["output_type"] == "error":
        return "\n".join(entry["traceback"]) + "\n"
    return _SGR.sub("", str(entry["data"]["text/plain"]))
