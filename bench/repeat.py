"""Several runs of the same scenarios -> one table of `median (min-max)` cells.

Rows are matched across runs by (scenario, figure). A numeric cell becomes
`median (min-max)`; a cell such as "69.5 / 84.3" is combined part by part; any other text is
listed once per distinct value. The verdict is the row's own rule (`Row.limit`) applied to the
median of the figure against the median of the limit (the limit can differ between runs, e.g.
"last third <= first third + 30").
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from .table import Row, fmt, meets

__all__ = ["Combined", "combine", "combine_cell", "median_of", "spread"]

Cell = float | int | str


@dataclass
class Combined:
    """One row of the combined table (every cell already text)."""

    scenario: str
    figure: str
    target: str
    ours: str
    naive: str
    ratio: str
    verdict: str

    def cells(self) -> list[str]:
        return [self.scenario, self.figure, self.target, self.ours, self.naive, self.ratio, self.verdict]


def _number(value: Cell) -> float | None:
    """The value as a float (NaN for "n/a" and "None"), or None when it is not a number."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if text in ("n/a", "None", "nan"):
        return float("nan")
    try:
        return float(text)
    except ValueError:
        return None


def median_of(values: list[float]) -> float:
    """Median of the measured values (NaN ones are not measurements); NaN when none is left."""
    real = [v for v in values if v == v]
    return statistics.median(real) if real else float("nan")


def spread(values: list[float]) -> str:
    """`median (min-max)` of numbers; "n/a" when none was measured."""
    real = [v for v in values if v == v]
    if not real:
        return "n/a"
    low, high = min(real), max(real)
    dash = " to " if low < 0 or high < 0 else "-"  # "-40 (-41--39)" would be unreadable
    return f"{fmt(statistics.median(real))} ({fmt(low)}{dash}{fmt(high)})"


def combine_cell(values: list[Cell]) -> str:
    """One cell over several runs: numbers -> median (min-max), "a / b" part by part, else listed."""
    if not values:
        return "-"
    if all(isinstance(v, str) for v in values) and len(set(values)) == 1:
        return str(values[0])  # "-", or the same text in every run
    numbers = [_number(v) for v in values]
    if all(n is not None for n in numbers):
        return spread([n for n in numbers if n is not None])
    parts = [str(v).split(" / ") for v in values]
    if len({len(p) for p in parts}) == 1 and len(parts[0]) > 1:
        columns = [[p[i] for p in parts] for i in range(len(parts[0]))]
        if all(_number(c) is not None for column in columns for c in column):
            return " / ".join(combine_cell(list(column)) for column in columns)
    distinct = list(dict.fromkeys(fmt(v) if not isinstance(v, str) else v for v in values))
    return "; ".join(distinct)


def _medians(values: list[Cell]) -> float:
    numbers = [_number(v) for v in values]
    if not numbers or any(n is None for n in numbers):
        return float("nan")
    return median_of([n for n in numbers if n is not None])


def _verdict(rows: list[Row]) -> str:
    limits = [r.limit for r in rows if r.limit is not None]
    if len(limits) == len(rows) and len({op for op, _ in limits}) == 1:
        value = _medians([r.ours for r in rows])
        ok = meets(value, (limits[0][0], median_of([bound for _, bound in limits])))
        return {True: "yes", False: "NO", None: "-"}[ok]
    verdicts = [r.ok for r in rows if r.ok is not None]
    if not verdicts:
        return "-"
    # No rule to judge a median with: say how many runs met the target.
    return "yes" if all(verdicts) else f"NO in {verdicts.count(False)} of {len(rows)}"


def _ratio(rows: list[Row]) -> str:
    ours, naive = _medians([r.ours for r in rows]), _medians([r.naive for r in rows])
    if ours != ours or naive != naive or not naive:
        return "-"
    return f"{ours / naive:.2f}"


def combine(runs: list[list[Row]]) -> list[Combined]:
    """The rows of every run, grouped by (scenario, figure) in the order they first appear."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for rows in runs:
        for row in rows:
            groups.setdefault((row.scenario, row.figure), []).append(row)
    table = []
    for (scenario, figure), rows in groups.items():
        ours = combine_cell([r.ours for r in rows])
        if len(rows) < len(runs):
            ours += f" [{len(rows)} of {len(runs)} runs]"
        target = "; ".join(dict.fromkeys(r.target for r in rows))
        naive = combine_cell([r.naive for r in rows])
        table.append(Combined(scenario, figure, target, ours, naive, _ratio(rows), _verdict(rows)))
    return table
