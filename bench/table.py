"""The printed result: one row per figure, decart_nb beside the naive relay and their ratio."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from importlib.metadata import version

__all__ = ["Row", "machine", "render"]


@dataclass
class Row:
    scenario: str
    figure: str
    target: str
    ours: float | str
    naive: float | str = "-"
    ok: bool | None = None
    unit: str = ""

    def cells(self) -> list[str]:
        ratio = "-"
        if isinstance(self.ours, float) and isinstance(self.naive, float) and self.naive:
            ratio = f"{self.ours / self.naive:.2f}"
        verdict = {True: "yes", False: "NO", None: "-"}[self.ok]
        return [self.scenario, self.figure, self.target, _fmt(self.ours), _fmt(self.naive), ratio, verdict]


def _fmt(value: float | str) -> str:
    if isinstance(value, str):
        return value
    if value != value:  # NaN
        return "n/a"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"


HEAD = ["scenario", "figure", "target", "decart_nb", "naive relay", "ratio", "meets target"]


def render(rows: list[Row]) -> str:
    table = [HEAD] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEAD))]
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
