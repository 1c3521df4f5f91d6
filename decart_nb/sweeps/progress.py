"""Progress: a tqdm.auto bar (a widget in a notebook, a text bar in a terminal), or one line per item."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tqdm.auto import tqdm

if TYPE_CHECKING:
    from .rows import Row

__all__ = ["Progress"]


class Progress:
    """progress=True: a bar (items, items/s, ETA, output fps, failures); "lines": a printed line per
    item (for logs: papermill --log-output, scripts/demo); False: quiet."""

    def __init__(self, mode: bool | str, total: int, done: int, failed: int) -> None:
        self.mode, self.total, self.count, self.failed = mode, total, done, failed
        self._fps: list[float] = []
        self._bar: tqdm[None] | None = None
        if mode is True:
            self._bar = tqdm(total=total, initial=done, unit="item", desc="sweep", dynamic_ncols=True)
            self._bar.set_postfix(fps="-", failed=failed)

    def update(self, row: Row) -> None:
        self.count += 1
        self.failed += bool(row["error_code"])
        if row["fps_out"] is not None:
            self._fps = [*self._fps[-19:], float(row["fps_out"])]  # the last 20 items' output rate
        if self._bar is not None:
            fps = f"{sum(self._fps) / len(self._fps):.1f}" if self._fps else "-"
            self._bar.set_postfix(fps=fps, failed=self.failed, refresh=False)
            self._bar.update(1)
        elif self.mode == "lines":
            print(line(row, self.count, self.total), flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def line(row: Row, count: int, total: int) -> str:
    what = f"{count}/{total} #{row['index']} {row['prompt'] or '(no prompt)'} / {row['image']}"
    if row["source"] and row["source"] != "pattern":
        what += f" / {row['source']}"
    if row.get("arm"):
        what += f" / {row['arm']}"
    if row["error_code"]:
        return f"{what}: {row['error_code']}"
    fps = "" if row["fps_out"] is None else row["fps_out"]
    return f"{what}: {fps} fps, first frame {row['first_frame_ms']} ms"
