"""Helpers for the sweep tests (importable by a Dask worker process: `client.run` pickles them by
reference, and the worker imports this module from the same tree)."""

from __future__ import annotations

from decart_nb.sweeps import lanes


def lane_count() -> int:
    """How many sweep lanes (open sessions) this process holds."""
    with lanes._lanes_lock:
        return len(lanes._lanes)
