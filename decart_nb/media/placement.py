"""Which CPUs a model's worker threads run on.

A comparison's arms get every frame at the same moment, so their models compute at once. Left to
itself, Linux often queues two such threads on one CPU: the loop thread wakes both, the second
lands behind the first (or behind the loop thread), and the other CPU takes it over only after a
while, so one arm waits for much of the other's model (measured on a 2-vCPU machine: two pattern
arms at 5.4 / 5.3 ms kernel latency p50, one of them with a model time of 4.7 ms against 2.6 alone;
each arm on a CPU of its own: 3.8 / 3.5 ms). Each arm's threads are therefore kept on a CPU of
their own while there are CPUs enough for one each; a lone session, or more arms than CPUs (two
pinned to one CPU would compute one after the other while another CPU could have taken one),
stay where the scheduler puts them. Where the platform has no CPU affinity (macOS), nothing is
placed.
"""

from __future__ import annotations

import logging
import os

__all__ = ["ALL_CPUS", "Placement", "spread"]

logger = logging.getLogger("decart_nb")

# The CPUs this process may use (taken once, at import); None where affinity is not supported.
ALL_CPUS: frozenset[int] | None = (
    frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
)


def spread(n: int) -> list[frozenset[int] | None]:
    """A CPU set for each of `n` arms, a CPU of its own each; None (anywhere) for all when there
    is one arm, more arms than CPUs, or no affinity on this platform."""
    cpus = sorted(ALL_CPUS or ())
    if not 2 <= n <= len(cpus):
        return [None] * n
    return [frozenset({cpu}) for cpu in cpus[:n]]


class Placement:
    """One worker thread's CPU set: `follow` applies a new one to the calling thread when it
    changes (one system call then, none otherwise); None puts the thread back on every CPU."""

    def __init__(self) -> None:
        self._applied: frozenset[int] | None = None

    def follow(self, cpus: frozenset[int] | None) -> None:
        if cpus == self._applied or ALL_CPUS is None:
            return
        self._applied = cpus
        try:
            os.sched_setaffinity(0, cpus if cpus is not None else ALL_CPUS)  # 0: the calling thread
        except OSError as exc:  # a CPU taken away since (cgroups): the thread stays where it was
            logger.warning(
                "decart_nb: could not place a model thread on CPUs %s: %r", sorted(cpus or ()), exc
            )
