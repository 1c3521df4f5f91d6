"""Shared fixtures. WebRTC and browser tests refuse to run outside a loopback-only namespace."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest

# Kernel-side tests run as in a kernel that a server with decart_nb_server started (it marks the
# environment; the widget offers the page socket only then). The browser harness's servers get no
# such mark from here: the extension sets it when loaded.
os.environ.setdefault("DECART_NB_MEDIA_RELAY", "1")


def loopback_only() -> bool:
    """True inside the namespace scripts/test makes: no network interface but lo."""
    # Ask netlink (this namespace), not /sys: sysfs still lists the host's interfaces after unshare -n.
    try:
        return [name for _, name in socket.if_nameindex()] == ["lo"]
    except OSError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if loopback_only():
        return
    skip = pytest.mark.skip(
        reason="WebRTC/browser test outside a loopback-only network namespace: run scripts/test"
    )
    for item in items:
        if "webrtc" in item.keywords or "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """Fail when a test leaves a decart_nb or aiortc thread running."""
    before = set(threading.enumerate())
    yield
    deadline = 5.0
    import time

    end = time.monotonic() + deadline
    while time.monotonic() < end:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        time.sleep(0.05)
    raise AssertionError(f"threads left behind: {[t.name for t in extra]}")


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt in this test, however pytest was started: a
    process launched in the background by a non-interactive shell inherits SIGINT ignored, and
    Python then installs no KeyboardInterrupt handler (nor does `_thread.interrupt_main()` act)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
