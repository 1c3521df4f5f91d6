"""What displaying a Comparison shows: the shared input and every arm's output side by
side, each arm labelled with its name, what it runs, its state and its live figures (fps,
latency from the shared stamp, drops), a prompt box per arm, and one prompt box for all arms.

No page code of its own: the input is the shared input's camera widget (a camera: its preview,
the output pane hidden, since nothing is sent back; another source: the copy the shared input
echoes, shown output-only), and each arm's video is that arm's own widget, which a
Session with a non-camera source already renders output-only. The live labels follow each
arm's events through its SessionPort.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets as w

from ..errors import DecartNBError, ErrorCode
from ..fanout import Fanout
from ..media.sources import check_source
from ..session_port import SessionPort, port_of
from .change import Change
from .panel import PROMPT_DEBOUNCE_S
from .panel.debounce import Debouncer
from .sheets import style_sheets

if TYPE_CHECKING:
    from ..comparison import Comparison
    from ..session import Session

__all__ = ["CompareView", "compare_view"]

logger = logging.getLogger("decart_nb")

_STYLE = style_sheets("toggle.css", "compare.css")  # the enhance toggle's rules are the panel's too


class CompareView(w.VBox):  # type: ignore[misc]  # ipywidgets has no types: VBox is Any
    """The compare view of one Comparison (built by displaying it)."""

    def __init__(self, comparison: Comparison) -> None:
        self._comparison = comparison
        self._closed = False
        self.note = w.HTML("")
        self.note.add_class("dnb-compare-note")
        self.prompt_all = w.Text(
            placeholder="A prompt for every arm (Enter sets them all)",
            continuous_update=False,
            layout=w.Layout(width="auto"),
        )
        self.prompt_all.add_class("dnb-compare-all")
        # A toggle, not a Checkbox: ipywidgets typesets a Checkbox's label (panel/label.py)
        self.enhance = w.ToggleButton(
            value=True, description="Enhance prompt", tooltip="Let the model enhance every arm's prompt"
        )
        self.enhance.add_class("dnb-enhance")
        self.set_all = w.Button(description="Set all arms", tooltip="Set this prompt on every arm")
        self._all_sender = Debouncer(self._send_all, 0.0, "decart_nb-compare-set")
        self.prompt_all.observe(self._on_all_typed, "value")
        self.set_all.on_click(lambda _button: self._all_sender.flush())
        bar = w.HBox([self.prompt_all, self.enhance, self.set_all])
        bar.add_class("dnb-compare-bar")
        self.input_cell = _InputCell(comparison.input)
        self.cells = {name: _ArmCell(name, comparison, self._show_error) for name in comparison.arms}
        grid = w.GridBox([self.input_cell.box, *(cell.box for cell in self.cells.values())])
        grid.add_class("dnb-compare-grid")
        super().__init__(
            [w.HTML(f"<style>{_STYLE}</style>", layout=w.Layout(display="none")), bar, self.note, grid]
        )
        self.add_class("dnb-compare")

    def _on_all_typed(self, _: Change) -> None:
        if self.prompt_all.value.strip():
            self._all_sender.flush()

    def _send_all(self) -> None:
        """Every arm gets the box's prompt (the comparison checks it before any arm is touched)."""
        prompt = self.prompt_all.value.strip() and self.prompt_all.value
        if not prompt:
            self._show_error(DecartNBError(ErrorCode.INVALID_INPUT, "Type a prompt for every arm first"))
            return
        if _run(
            lambda: self._comparison.set(prompt=prompt, enhance=bool(self.enhance.value)), self._show_error
        ):
            self.note.value = ""

    def _show_error(self, error: DecartNBError) -> None:
        self.note.value = (
            f'<div class="dnb-message dnb-bad"><code>{error.code}</code> {html.escape(error.message)}</div>'
        )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._all_sender.close()
            self.input_cell.close()
            for cell in self.cells.values():
                cell.close()
        super().close()


class _InputCell:
    """The shared input: the camera widget (its preview only), labelled with its state and rate."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._port = port_of(session)
        self.label = w.HTML(self._label(session.state, {}))
        children: list[w.Widget] = [self.label]
        try:
            video = session.widget
        except Exception as exc:  # noqa: BLE001 - shown in the view and logged; the arms still work
            logger.warning("decart_nb: the camera widget is unavailable: %r", exc)
            children.append(w.HTML(f"Video unavailable: {html.escape(str(exc))}"))
        else:
            video.add_class("dnb-compare-input")
            children.append(video)
            engine = session.engine
            if isinstance(engine, Fanout) and check_source(session.source) != "camera":
                engine.echo = True  # shown from now on; a copy a frame only where a page looks
        self.box = w.VBox(children)
        self.box.add_class("dnb-compare-cell")
        self._stats: dict[str, object] = {}
        self._port.listen(self._on_event)

    def _on_event(self, event: str, payload: object) -> None:
        if event == "stats" and isinstance(payload, dict):
            self._stats = payload
        if event in ("stats", "connection_change"):
            self.label.value = self._label(self._session.state, self._stats)

    def _label(self, state: str, stats: dict[str, object]) -> str:
        source = self._session.source
        named = getattr(source, "name", None)  # a path's file name
        what = (
            source if isinstance(source, str) else named if isinstance(named, str) else type(source).__name__
        )
        fps = _number(stats.get("fps_in"), " · {:.0f} fps in")
        return (
            f'<div class="dnb-compare-label" data-state="{state}">'
            f"<b>{html.escape(what[:1].upper() + what[1:])}</b> "
            f'<span class="dnb-muted">shared input</span><br><i></i>{state}{fps}</div>'
        )

    def close(self) -> None:
        self._port.unlisten(self._on_event)


class _ArmCell:
    """One arm: its label (name, model and engine, state, figures), its output, its own prompt box."""

    def __init__(
        self, name: str, comparison: Comparison, show_error: Callable[[DecartNBError], None]
    ) -> None:
        self.name = name
        self._comparison = comparison
        self._session = session = comparison[name]
        self._port: SessionPort = port_of(session)
        self._show_error = show_error
        spec = next(a for a in comparison.specs if a.name == name)
        self._what = " · ".join(x for x in (spec.model, spec.engine_name, spec.speed) if x)
        self._stats: dict[str, object] = {}
        self.label = w.HTML(self._label())
        self.prompt = w.Text(
            value=session.generation.prompt or "",
            placeholder=f"A prompt for {name} only",
            continuous_update=False,
            layout=w.Layout(width="auto"),
        )
        self.prompt.add_class("dnb-compare-prompt")
        self._sender = Debouncer(self._send, PROMPT_DEBOUNCE_S, f"decart_nb-compare-{name}")
        self.prompt.observe(lambda _change: self._sender.flush(), "value")
        children: list[w.Widget] = [self.label]
        try:
            video = session.widget
        except Exception as exc:  # noqa: BLE001 - shown in the view and logged; the others still work
            logger.warning("decart_nb: the video of arm %r is unavailable: %r", name, exc)
            children.append(w.HTML(f"Video unavailable: {html.escape(str(exc))}"))
        else:
            children.append(video)
        self.box = w.VBox([*children, self.prompt])
        self.box.add_class("dnb-compare-cell")
        self.box.add_class("dnb-compare-arm")
        self._port.listen(self._on_event)

    def _on_event(self, event: str, payload: object) -> None:
        # On the emitting thread (often the media loop): cheap widget updates only.
        if event == "stats" and isinstance(payload, dict):
            self._stats = payload
        if event in ("stats", "connection_change"):
            self.label.value = self._label()
        elif event == "generation_change":
            prompt = self._session.generation.prompt or ""
            if self.prompt.value != prompt:
                self.prompt.value = prompt  # its observer sees the arm holds it: nothing is sent

    def _label(self) -> str:
        state = self._session.state
        stats = self._stats if state in ("connected", "generating") else {}
        p50, p95 = stats.get("latency_ms_p50"), stats.get("latency_ms_p95")
        parts = [
            _number(stats.get("fps_out"), "{:.0f} fps"),
            _number(p50, "{:.0f}") and _number(p50, "{:.0f}") + (_number(p95, "/{:.0f}") or "") + " ms",
            _number(stats.get("frames_dropped"), "{:.0f} dropped"),
        ]
        figures = " · ".join(x for x in parts if x)
        return (
            f'<div class="dnb-compare-label" data-arm="{html.escape(self.name)}" data-state="{state}">'
            f'<b>{html.escape(self.name)}</b> <span class="dnb-muted">{html.escape(self._what)}</span><br>'
            f"<i></i>{state}{' · ' + figures if figures else ''}</div>"
        )

    def _send(self) -> None:
        prompt = self.prompt.value
        if not prompt.strip() or prompt == self._session.generation.prompt:
            return
        _run(lambda: self._comparison.set(prompt=prompt, arm=self.name), self._show_error)

    def close(self) -> None:
        self._sender.close()
        self._port.unlisten(self._on_event)


def _run(call: Callable[[], None], show_error: Callable[[DecartNBError], None]) -> bool:
    """A call the view makes: its failure is shown in the view (and logged), not raised."""
    try:
        with SessionPort.calls_from_view():
            call()
    except DecartNBError as error:
        logger.warning("decart_nb compare view: %s", error)
        show_error(error)
        return False
    except Exception as exc:  # shown in the view and logged with its traceback
        logger.exception("decart_nb: the compare view's call failed")
        show_error(DecartNBError(ErrorCode.ENGINE_ERROR, f"failed: {exc!r}", cause=exc))
        return False
    return True


def _number(value: object, template: str) -> str:
    """The number formatted, or "" when there is none (not measured yet, NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return ""
    return template.format(value)


def compare_view(comparison: Comparison) -> CompareView:
    """The view of `comparison` (a new one each display; the sessions' widgets are shared)."""
    return CompareView(comparison)
