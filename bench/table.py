"""The printed result: one row per figure, decart_nb beside the naive relay and their ratio."""

from __future__ import annotations

import operator
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Protocol

__all__ = ["Limit", "Row", "fmt", "machine", "markdown", "meets", "render"]

Limit = tuple[str, float]  # ("<=", 25.0): how a figure is judged against its target

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}


def meets(value: float, limit: Limit) -> bool | None:
    """The verdict of `value` against `limit`; None when there is no figure (NaN)."""
    if value != value:
        return None
    return _OPS[limit[0]](value, limit[1])


@dataclass
class Row:
    scenario: str
    figure: str
    target: str
    ours: float | str
    naive: float | str = "-"
    ok: bool | None = None
    unit: str = ""
    # The rule `ok` comes from: repeat.py judges the median of several runs with it.
    limit: Limit | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.ok is None and isinstance(self.ours, int | float):
            self.ok = meets(float(self.ours), self.limit)

    def cells(self) -> list[str]:
        ratio = "-"
        if isinstance(self.ours, float) and isinstance(self.naive, float) and self.naive:
            ratio = f"{self.ours / self.naive:.2f}"
        verdict = {True: "yes", False: "NO", None: "-"}[self.ok]
        return [self.scenario, self.figure, self.target, fmt(self.ours), fmt(self.naive), ratio, verdict]


def fmt(value: float | str) -> str:
    if isinstance(value, str):
        return value
    if value != value:  # NaN
        return "n/a"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"


HEAD = ["scenario", "figure", "target", "decart_nb", "naive relay", "ratio", "meets target"]


class HasCells(Protocol):
    def cells(self) -> list[str]: ...


def render(rows: Sequence[HasCells]) -> str:
    return markdown(HEAD, [r.cells() for r in rows])


def markdown(head: list[str], body: list[list[str]]) -> str:
    table = [head, *body]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in table
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    return (
        f"machine: {os.cpu_count()} CPUs ({cpu_model()}), load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at start; python "
        f"{sys.version.split()[0]}, aiortc {version('aiortc')}, av {version('av')}, "
        f"numpy {version('numpy')}"
    )
