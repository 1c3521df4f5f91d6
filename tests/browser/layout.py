"""The session view as a person sees it: a notebook at a given window size, the session cell run,
and where the parts a person needs ended up on the screen. Used by test_layout_browser.py and by
scripts/screenshots (tests/browser/screenshots.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.lab import JupyterLab, LabNotebook, open_notebook

__all__ = ["PARTS", "Box", "clipped_by", "measure", "open_view", "overlaps", "page_overflow", "set_theme"]

# What must be on screen without scrolling once the session cell ran: name -> a JS expression
# that finds the element (`root` is the session view).
PARTS = {
    "camera": "root.querySelector('.decart-input video')",
    "output": "root.querySelector('.decart-out')",
    "badge": "root.querySelector('.dnb-badge')",
    "prompt": "root.querySelector('.dnb-prompt')",
    "image": "root.querySelector('.dnb-dock-image')",
    "snapshot": "button(root, /Snapshot/)",
    "record": "button(root, /^\\s*Record\\b/)",  # not the "Record (s)" box's label
}

_MEASURE_JS = (
    "() => { const root = document.querySelector('.dnb-view'); if (!root) return null; const out = {};"
    " const button = (root, re) => [...root.querySelectorAll('.dnb-dock-capture button')]"
    ".find((b) => re.test(b.textContent));"
    + "".join(
        f" {{ const el = {find}; const r = el && el.getBoundingClientRect();"
        f" out[{name!r}] = r ? [r.left, r.top, r.width, r.height] : null; }}"
        for name, find in PARTS.items()
    )
    + " return out; }"
)

# Anything in the view wider than the output area it sits in (its own scroll width, too).
_OVERFLOW_JS = """() => {
  const root = document.querySelector('.dnb-view');
  const area = root && root.closest('.jp-OutputArea-output');
  if (!area) return ['no view'];
  const right = area.getBoundingClientRect().right + 1;
  // What shows: an element's right edge as far as every clipping ancestor lets it (an ellipsised
  // line's text runs on inside its box, unseen); the ancestor itself is checked on its own.
  const shown = (el) => {
    let edge = el.getBoundingClientRect().right;
    for (let up = el.parentElement; up && up !== root.parentElement; up = up.parentElement) {
      const clips = getComputedStyle(up).overflowX !== 'visible';
      if (clips) edge = Math.min(edge, up.getBoundingClientRect().right);
    }
    return edge;
  };
  const wide = [...root.querySelectorAll('*')].filter((el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && shown(el) > right && getComputedStyle(el).visibility !== 'hidden';
  });
  const scrolls = area.scrollWidth > area.clientWidth + 1 || root.scrollWidth > root.clientWidth + 1;
  return wide.slice(0, 5).map((el) => el.className || el.tagName).concat(scrolls ? ['scrolls'] : []);
}"""


@dataclass(frozen=True)
class Box:
    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def inside(self, width: float, height: float) -> bool:
        return self.left >= 0 and self.top >= 0 and self.right <= width + 0.5 and self.bottom <= height + 0.5


def measure(nb: LabNotebook) -> dict[str, Box | None]:
    """The viewport boxes of PARTS (None: not found or not rendered)."""
    got = nb.page.evaluate(_MEASURE_JS) or {}
    return {name: Box(*got[name]) if got.get(name) and got[name][2] > 0 else None for name in PARTS}


def overlaps(a: Box, b: Box) -> bool:
    return (
        a.left < b.right - 0.5
        and b.left < a.right - 0.5
        and a.top < b.bottom - 0.5
        and b.top < a.bottom - 0.5
    )


_CLIPPED_JS = """(selector) => {
  const el = document.querySelector(selector);
  if (!el) return 'not found';
  const r = el.getBoundingClientRect();
  for (let up = el.parentElement; up; up = up.parentElement) {
    if (getComputedStyle(up).overflowX === 'visible') continue;
    const clip = up.getBoundingClientRect();
    if (r.right > clip.right + 0.5 || r.left < clip.left - 0.5) return up.className || up.tagName;
  }
  return '';
}"""


def clipped_by(nb: LabNotebook, selector: str) -> str:
    """The ancestor that cuts off part of the element's width ('' when none does)."""
    return str(nb.page.evaluate(_CLIPPED_JS, selector))


def page_overflow(nb: LabNotebook) -> list[str]:
    """What in the view sticks out of its output area (empty when nothing does)."""
    return list(nb.page.evaluate(_OVERFLOW_JS))


def set_theme(nb: LabNotebook, theme: str) -> None:
    """ "JupyterLab Light" or "JupyterLab Dark", and wait until it applies."""
    nb.page.evaluate("(t) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", theme)
    nb.page.wait_for_function(
        "(light) => document.body.dataset.jpThemeLight === String(light)", arg=theme == "JupyterLab Light"
    )
    nb.page.wait_for_timeout(500)  # the theme's variables settle


def open_view(
    browser: Any,
    lab: JupyterLab,
    width: int,
    height: int,
    cell: str,
    artifacts: Any = None,
    name: str | None = None,
) -> LabNotebook:
    """A notebook (`name`, default a fresh one) at width x height (JupyterLab with its file
    browser open, as people keep it), `cell` run in its first cell."""
    nb = open_notebook(browser, lab, name, artifacts=artifacts)
    nb.page.set_viewport_size({"width": width, "height": height})
    if lab.app == "jupyterlab":
        nb.page.evaluate("() => window.jupyterapp.commands.execute('filebrowser:activate')")
    nb.run_cell(cell)
    nb.page.wait_for_selector(".dnb-view .dnb-dock", timeout=60_000)
    return nb


def scroll_to_view(nb: LabNotebook) -> None:
    """The notebook scrolled to its top, as a person sees it right after running its first cell
    (the session cell)."""
    nb.page.evaluate(
        "() => { for (let el = document.querySelector('.jp-Notebook .jp-Cell'); el; el = el.parentElement)"
        " if (el.scrollTop) el.scrollTop = 0; window.scrollTo(0, 0); }"
    )
    nb.page.wait_for_timeout(300)
