"""The codec transport on a remote link (issue 24): the page reaches JupyterLab through a delaying
relay (harness/delay.py, 100 ms round trip, then 50 and 200 ms; this kernel has no netem) on a link
shaped to 5, then 1 Mbit/s with UDP dropped, in real JupyterLab + Chromium whose fake camera plays
the stamped clip.

With two chunks in flight a 100 ms round trip capped the frame rate near 15 fps whatever the
bandwidth; the window sized to the bandwidth-delay product (media/rate.py, rule 5) lets both
senders keep more in flight. The test checks that both windows grew past two (a count, not a
timing), that the page shows the camera's stamped frames at a CI floor, and that glass-to-glass
latency does not grow: the larger window must not build a queue. At 1 Mbit/s both senders share
a link a stall at start fills (the widget's first display): the rate rules must recover from it
(they held 1 Mbit/s at 0.4-3.6 fps before). The bench judges issue 24's targets
(`python -m bench.codec --rtt 100 --repeat 3`; bench/README.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.codec import measure_output, start_session, wait_live
from bench.runs import pct
from decart_nb.media.rate import IN_FLIGHT
from harness.delay import DelayRelay, delayed
from harness.lab import JupyterLab, LabNotebook, open_notebook
from harness.shaping import Shaping, shaped_link

pytestmark = pytest.mark.browser

RTT_MS = 100.0
# CI floors on a loaded 2-core machine (5 Mbit/s measured 10.7 there; the bench, idle: 27.7 at 5 and
# 21.8 at 1 Mbit/s, 3.7 at 1 Mbit/s before the rules recovered from a stall); the bench judges the targets
FPS_FLOOR = {5000: 5.0, 1000: 5.0}
WARMUP_S = 6.0  # the latency fits (40 acks) and the windows follow
GROWTH_MS = 150.0  # a queue building up grows latency by seconds, not by this
PAGE_WINDOW = "() => [...window.__decartNB.controllers].find((c) => c.running)?.link?.rate?.window ?? null"


@pytest.fixture(scope="module")
def remote(lab: JupyterLab) -> Iterator[tuple[DelayRelay, Shaping]]:
    """The page <-> JupyterLab link: 5 Mbit/s (a test may change it), UDP dropped, 100 ms away."""
    with shaped_link(5000, port=lab.port) as shaping, delayed(lab.port, RTT_MS) as relay:
        yield relay, shaping


@pytest.fixture(scope="module")
def remote_nb(
    chromium: Any, lab: JupyterLab, remote: tuple[DelayRelay, Shaping], artifacts: Path
) -> Iterator[LabNotebook]:
    nb = open_notebook(chromium, remote[0].lab(lab), "codec-remote.ipynb", artifacts)
    try:
        yield nb
    finally:
        nb.close()


# issue 24 asks for 50, 100 and 200 ms: both rates at 100 ms, the slower rate (the harder one)
# at 50 and 200 ms; the relay's round trip changes in place, like the rate
@pytest.mark.parametrize(("rtt_ms", "rate_kbit"), [(100.0, 5000), (100.0, 1000), (50.0, 1000), (200.0, 1000)])
def test_a_remote_link_widens_both_windows_and_latency_does_not_grow(
    remote_nb: LabNotebook, remote: tuple[DelayRelay, Shaping], rtt_ms: float, rate_kbit: int
) -> None:
    nb = remote_nb
    relay, shaping = remote
    shaping.set_rate(rate_kbit)
    relay.rtt_ms = rtt_ms
    start_session(nb, "codec")
    try:
        wait_live(nb, "codec", timeout=60)
        time.sleep(WARMUP_S)
        run = measure_output(nb, 15.0)
        page_window = nb.page.evaluate(PAGE_WINDOW)
        kernel_window = nb.py("s.widget._comm.rate.window")
        print(
            f"remote {relay}, {shaping}: {run.summary()}; windows page {page_window}, kernel {kernel_window}"
        )
        nb.screenshot(f"codec-remote-{rtt_ms:g}ms-{rate_kbit}")
        assert relay.connections > 0, "the page did not go through the relay"
        assert pct(run.ack_ms, 50) >= rtt_ms * 0.9, f"the round trip is not there: {run.summary()}"
        if rtt_ms >= RTT_MS:  # 50 ms away at a low frame rate two chunks can be the whole product
            assert page_window > IN_FLIGHT, f"the camera's window stayed {page_window}"
            assert kernel_window > IN_FLIGHT, f"the output's window stayed {kernel_window}"
        assert run.fps >= FPS_FLOOR[rate_kbit], f"{run.summary()}\n{nb.diagnostics()}"
        assert run.growth_ms() <= GROWTH_MS, f"latency grew: {run.summary()}"
        assert nb.py("[e.code for e in s.errors]") == []
    finally:
        relay.rtt_ms = RTT_MS
        nb.execute("s.disconnect()")
        # The next rate's widget must be the page's only one (the bench's helpers read the first).
        nb.page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
