"""A control's label as an HTML widget beside it, in place of the control's `description`.

ipywidgets typesets a description (and a Checkbox's or a Label's text) with JupyterLab's LaTeX
typesetter, whose first use loads MathJax, ~200 KB gzipped, ~1 MB without compression, on the link
a first display shares with the camera's start (issue 24, bench/first_visit.py). An HTML widget is
never typeset.
"""

from __future__ import annotations

import html

import ipywidgets as w

__all__ = ["label", "labelled"]


def label(text: str, title: str = "") -> w.HTML:
    """`text` as a label (panel.css's .dnb-label), `title` its tooltip."""
    markup = f'<span class="dnb-label" title="{html.escape(title)}">{html.escape(text)}</span>'
    return w.HTML(markup)


def labelled(text: str, control: w.Widget, title: str = "") -> w.HBox:
    """`control` with its label before it, in one row (panel.css's .dnb-labelled)."""
    row = w.HBox([label(text, title), control])
    row.add_class("dnb-labelled")
    return row
