"""A shaped loopback link for browser tests and the bench: a rate limit, and UDP made impossible.

Inside the loopback-only network namespace that `scripts/test` and `bench/run` make, as root:

    with shaped_link(rate_kbit=1000, port=lab.port) as link:
        ...  # the page <-> JupyterLab traffic runs at 1 Mbit/s; every UDP packet is dropped
        link.set_rate(5000)  # now 5 Mbit/s

htb shapes, a blackhole qdisc eats UDP (netem, prio and act are not available on this kernel;
htb, tbf, blackhole and u32 are). The qdiscs are always removed on the way out, also when the
body raises. `shaped_link` refuses to touch a namespace that has any interface besides `lo`:
shaping the host's loopback would slow every other process on the machine.

What is shaped:
- `port=None`: everything on `lo` but UDP shares one `rate_kbit` queue (the commands of issue 12
  verbatim). Note that a frame between the page and the kernel then crosses `lo` twice (page <->
  JupyterLab's websocket, JupyterLab <-> the kernel's ZMQ sockets), and both directions share
  the one queue.
- `port=P`: only TCP to or from port P (JupyterLab's), so the page <-> server link is the shaped
  one, as a user's network would be; the server <-> kernel hop, on one machine in every real
  deployment, runs free. Both directions still share the one queue.
UDP is blocked either way (`block_udp=False` keeps it), so WebRTC can gather no working pair.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Shaping", "ShapingError", "loopback_only", "shaped_link", "tc_rules"]

DEV = "lo"
FREE_RATE = "10gbit"  # the unshaped class when only one port is shaped


class ShapingError(RuntimeError):
    """tc could not shape the link (not root, not inside a loopback-only namespace, no htb)."""


@dataclass
class Shaping:
    """What a `shaped_link` applied (for test output and the bench's table); `set_rate` changes
    the rate in place (`tc class change`), so one page can be measured at several rates."""

    rate_kbit: int | None
    port: int | None
    block_udp: bool

    def set_rate(self, rate_kbit: int | None) -> None:
        rate = _rate(rate_kbit)
        _tc(
            [
                "class",
                "change",
                "dev",
                DEV,
                "parent",
                "1:",
                "classid",
                "1:10",
                "htb",
                "rate",
                rate,
                "ceil",
                rate,
            ]
        )
        self.rate_kbit = rate_kbit

    def __str__(self) -> str:
        rate = f"{self.rate_kbit / 1000:g} Mbit/s" if self.rate_kbit else "unshaped"
        scope = f"TCP port {self.port}" if self.port else "all of lo"
        return f"{rate} ({scope}){', UDP blocked' if self.block_udp else ''}"


def loopback_only() -> bool:
    """True inside a namespace whose only interface is lo (netlink: /sys lists the host's)."""
    return [name for _, name in socket.if_nameindex()] == [DEV]


def tc_rules(rate_kbit: int | None, port: int | None = None, block_udp: bool = True) -> list[list[str]]:
    """The tc commands, in order: root htb, the shaped class 1:10, the UDP blackhole 1:20,
    (with a port) the free default class 1:30, then the filters."""
    rate = _rate(rate_kbit)
    default = "30" if port else "10"
    rules = [
        ["qdisc", "add", "dev", DEV, "root", "handle", "1:", "htb", "default", default],
        ["class", "add", "dev", DEV, "parent", "1:", "classid", "1:10", "htb", "rate", rate, "ceil", rate],
    ]
    if port:
        rules.append(
            ["class", "add", "dev", DEV, "parent", "1:", "classid", "1:30", "htb", "rate", FREE_RATE]
        )
    if block_udp:
        rules += [
            ["class", "add", "dev", DEV, "parent", "1:", "classid", "1:20", "htb", "rate", "1mbit"],
            ["qdisc", "add", "dev", DEV, "parent", "1:20", "handle", "20:", "blackhole"],
            _filter("ip", 1, ["ip", "protocol", "17", "0xff"], "1:20"),
            _filter("ipv6", 2, ["ip6", "protocol", "17", "0xff"], "1:20"),
        ]
    if port:
        for prio, (family, match) in enumerate((("ip", "ip"), ("ipv6", "ip6")), start=3):
            for direction in ("sport", "dport"):
                rule = [match, "protocol", "6", "0xff", "match", match, direction, str(port), "0xffff"]
                rules.append(_filter(family, prio, rule, "1:10"))
    return rules


def _rate(rate_kbit: int | None) -> str:
    return f"{rate_kbit}kbit" if rate_kbit else FREE_RATE


def _filter(family: str, prio: int, match: list[str], flow: str) -> list[str]:
    head = ["filter", "add", "dev", DEV, "parent", "1:", "protocol", family, "prio", str(prio)]
    return [*head, "u32", "match", *match, "flowid", flow]


def _tc(args: list[str]) -> None:
    done = subprocess.run(["tc", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise ShapingError(f"tc {' '.join(args)}: {done.stderr.strip() or done.returncode}")


def clear() -> None:
    """Remove any root qdisc from lo ("no qdisc" is not an error here)."""
    done = subprocess.run(["tc", "qdisc", "del", "dev", DEV, "root"], capture_output=True, text=True)
    if done.returncode and "No such file" not in done.stderr and "Cannot delete" not in done.stderr:
        raise ShapingError(f"tc qdisc del dev {DEV} root: {done.stderr.strip()}")


@contextlib.contextmanager
def shaped_link(
    rate_kbit: int | None, *, port: int | None = None, block_udp: bool = True
) -> Iterator[Shaping]:
    """Shape lo (see the module's docstring) for the body, then remove every rule."""
    if not loopback_only():
        raise ShapingError("shaped_link runs only inside a loopback-only namespace (scripts/test, bench/run)")
    clear()
    try:
        for rule in tc_rules(rate_kbit, port, block_udp):
            _tc(rule)
        yield Shaping(rate_kbit, port, block_udp)
    finally:
        clear()
