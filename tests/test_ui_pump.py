"""Blocking Session calls in a real ipykernel handle the page's widget messages while the cell runs
(issue 18: Run All stalled, since the kernel read the page's WebRTC offer only between cells)."""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VideoStreamTrack
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

from decart_nb import _loop, ui_pump

KERNEL_START_S = 60.0
CELL_S = 60.0  # a busy 2-core machine: imports and the kernel's start take seconds there


@pytest.fixture
def kernel_and_manager() -> Iterator[tuple[BlockingKernelClient, KernelManager]]:
    km: KernelManager
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=KERNEL_START_S)  # 127.0.0.1
    try:
        yield kc, km
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(kernel_and_manager: tuple[BlockingKernelClient, KernelManager]) -> BlockingKernelClient:
    return kernel_and_manager[0]


def run_cell(kc: BlockingKernelClient, code: str) -> str:
    """Run a cell to its end; its stdout, or the kernel's traceback as an AssertionError."""
    out: list[str] = []

    def keep(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = kc.execute_interactive(code, timeout=CELL_S, output_hook=keep)
    if reply["content"]["status"] != "ok":
        raise AssertionError("\n".join(reply["content"].get("traceback", [])))
    return "".join(out)


def outputs(kc: BlockingKernelClient, msg_ids: list[str]) -> tuple[dict[str, str], list[str]]:
    """Each cell's stdout by msg_id, and the order the cells went idle in, once all did."""
    out = dict.fromkeys(msg_ids, "")
    done: list[str] = []
    end = time.monotonic() + CELL_S
    while len(done) < len(msg_ids) and time.monotonic() < end:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:  # nothing yet
            continue
        parent = msg["parent_header"].get("msg_id")
        if parent not in out:
            continue
        if msg["msg_type"] == "stream":
            out[parent] += msg["content"]["text"]
        elif msg["msg_type"] == "error":
            out[parent] += "\n".join(msg["content"]["traceback"])
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            done.append(parent)
    return out, done


def started(kc: BlockingKernelClient, msg_id: str) -> None:
    """Returns once the kernel runs the cell (its execute_input), and a little more: its code is
    then in the blocking call (a page message read just before the cell began waits for its end)."""
    end = time.monotonic() + CELL_S
    while time.monotonic() < end:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if msg["msg_type"] == "execute_input" and msg["parent_header"].get("msg_id") == msg_id:
            time.sleep(0.5)
            return
    raise AssertionError(f"the kernel did not start cell {msg_id} within {CELL_S} s")


def send_comm(kc: BlockingKernelClient, msg_type: str, content: dict[str, Any]) -> None:
    kc.shell_channel.send(kc.session.msg(msg_type, content))


SETUP = """
import time
from decart_nb import Session, _loop, ui_pump
from decart_nb.session_port import port_of
s = Session(source="camera")
s.connect()
seen = []
def page(comm, msg):  # plays the page: its message makes the camera arrive
    seen.append(("pumping", ui_pump.pumping(), "nested", ui_pump._poller() is not None))
    _loop.call_soon(port_of(s).camera_arrived)
get_ipython().kernel.comm_manager.register_target("page", page)
print(s.state)
"""


def test_wait_until_handles_the_pages_message_while_the_cell_runs(kernel: BlockingKernelClient) -> None:
    """Run All: the next cell is already queued when the page's message comes. The page's message
    is handled during the blocked cell, the next cell runs after it, each output in its cell."""
    assert run_cell(kernel, SETUP).strip() == "connecting"
    waiting = kernel.execute(
        't0 = time.monotonic(); s.wait_until("connected", timeout=30)\n'
        'print("waited", s.state, seen, time.monotonic() - t0 < 25)'
    )
    after = kernel.execute('print("next cell", s.state)')
    started(kernel, waiting)  # both cells are in the kernel's hands; the first one waits
    send_comm(kernel, "comm_open", {"comm_id": "p1", "target_name": "page", "data": {}})
    out, done = outputs(kernel, [waiting, after])
    assert done == [waiting, after], out
    # Handled by the pump, inside the waiting call; a Session call made there would not pump again.
    assert out[waiting].strip() == "waited connected [('pumping', True, 'nested', False)] True", out
    assert out[after].strip() == "next cell connected", out
    reply = kernel.get_shell_msg(timeout=CELL_S)
    assert reply["content"]["status"] == "ok"


def test_held_requests_run_in_order_after_the_cell(kernel: BlockingKernelClient) -> None:
    """Shell requests other than comm ones that arrive during the pump wait for the cell's end and
    run in their order (three queued cells, then the page's message)."""
    run_cell(kernel, SETUP)
    first = kernel.execute('s.wait_until("connected", timeout=30); print("first")')
    rest = [kernel.execute(f'print("cell {n}")') for n in range(3)]
    started(kernel, first)
    send_comm(kernel, "comm_open", {"comm_id": "p1", "target_name": "page", "data": {}})
    out, done = outputs(kernel, [first, *rest])
    assert done == [first, *rest], (out, [[first, *rest].index(m) for m in done])
    assert [out[m].strip() for m in rest] == ["cell 0", "cell 1", "cell 2"]


def test_a_silent_cell_that_pumps_hands_back_what_it_held(kernel: BlockingKernelClient) -> None:
    """A silent execute (tools, extensions) has no post_run_cell: what its wait held still goes
    back to the kernel when it ends, and the kernel goes on answering."""
    run_cell(kernel, SETUP)
    waiting = kernel.execute('s.wait_until("connected", timeout=30)', silent=True)
    time.sleep(1.0)  # a silent cell publishes no execute_input to wait for
    after = kernel.execute('print("next cell", s.state, seen)')  # comes while the pump runs: held
    time.sleep(0.5)
    send_comm(kernel, "comm_open", {"comm_id": "p1", "target_name": "page", "data": {}})
    out, done = outputs(kernel, [waiting, after])
    assert done == [waiting, after], out
    assert out[after].strip() == "next cell connected [('pumping', True, 'nested', False)]", out
    assert run_cell(kernel, "print('still answering')").strip() == "still answering"


def test_past_max_held_the_rest_waits_in_order(kernel: BlockingKernelClient) -> None:
    """With MAX_HELD requests held the pump reads no further: what follows (here the page's
    message) waits for the cell's end, and every cell still runs in its order."""
    run_cell(kernel, SETUP + "ui_pump.MAX_HELD = 2\n")
    first = kernel.execute(
        'try:\n    s.wait_until("connected", timeout=3)\nexcept Exception as exc:\n    print(exc.code, seen)'
    )
    rest = [kernel.execute(f'print("cell {n}", s.state)') for n in range(4)]
    started(kernel, first)
    send_comm(kernel, "comm_open", {"comm_id": "p1", "target_name": "page", "data": {}})
    out, done = outputs(kernel, [first, *rest])
    assert done == [first, *rest], out
    assert out[first].strip() == "WAIT_TIMEOUT []", out
    assert [out[m].split()[:2] for m in rest] == [["cell", str(n)] for n in range(4)], out


def test_a_plain_blocking_cell_still_holds_comm_messages(kernel: BlockingKernelClient) -> None:
    """Only decart_nb's waits pump: a cell that sleeps gets the page's message after it ends, as
    before (the kernel is not changed behind the user's back)."""
    run_cell(kernel, SETUP)
    sleeper = kernel.execute('time.sleep(2); print("slept", s.state, seen)')
    started(kernel, sleeper)
    send_comm(kernel, "comm_open", {"comm_id": "p1", "target_name": "page", "data": {}})
    out, _ = outputs(kernel, [sleeper])
    assert out[sleeper].strip() == "slept connecting []", out


def test_interrupting_a_pumping_wait_stops_it_and_the_kernel_goes_on(
    kernel_and_manager: tuple[BlockingKernelClient, KernelManager],
) -> None:
    """Interrupt (Ctrl-C, the stop button) while wait_until pumps: KeyboardInterrupt in the cell,
    the pump let go, and the next cell's Session call pumps again."""
    kc, km = kernel_and_manager
    run_cell(kc, SETUP)
    waiting = kc.execute('s.wait_until("generating", timeout=120)')
    queued = kc.execute('print("queued")')  # held by the pump: Run All's next cell
    started(kc, waiting)
    km.interrupt_kernel()
    out, done = outputs(kc, [waiting, queued])
    assert done == [waiting, queued], out
    assert "KeyboardInterrupt" in out[waiting], out
    assert out[queued] == "", out  # aborted after the error, as the kernel does with a queued cell
    after = kc.execute('print(ui_pump.pumping()); s.wait_until("connected", timeout=30); print(seen)')
    started(kc, after)
    send_comm(kc, "comm_open", {"comm_id": "p1", "target_name": "page", "data": {}})
    out, _ = outputs(kc, [after])
    assert out[after].split() == ["False", "[('pumping',", "True,", "'nested',", "False)]"], out


OFFER_CELLS = """
from decart_nb import Session
s = Session(source="camera")
w = s.widget
print(w.comm.comm_id)
"""


@pytest.mark.webrtc
def test_snapshot_returns_a_frame_when_the_offer_comes_during_the_cell(kernel: BlockingKernelClient) -> None:
    """End to end: the page's WebRTC offer over the comm is answered while the cell is blocked in
    snapshot(), so the camera connects and the snapshot is a frame, not FRAME_TIMEOUT."""
    comm_id = run_cell(kernel, OFFER_CELLS).strip()
    snap = kernel.execute('img = s.snapshot(timeout=30); print("snapshot", img.size, s.state)')
    started(kernel, snap)
    answers: concurrent.futures.Future[str] = concurrent.futures.Future()
    lines: dict[str, str] = {}

    def read_iopub() -> None:  # the page's side of iopub: the answer, and the cell's output
        end = time.monotonic() + CELL_S
        while time.monotonic() < end:
            try:
                msg = kernel.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            content = msg["content"]
            if msg["msg_type"] == "comm_msg" and content.get("comm_id") == comm_id:
                data = content["data"]
                if data.get("method") == "custom" and data["content"].get("type") == "answer":
                    answers.set_result(data["content"]["sdp"])
            if msg["parent_header"].get("msg_id") == snap:
                if msg["msg_type"] in ("stream", "error"):
                    lines[msg["msg_type"]] = content.get("text") or "\n".join(content["traceback"])
                if msg["msg_type"] == "status" and content["execution_state"] == "idle":
                    return

    reader = threading.Thread(target=read_iopub, daemon=True)
    reader.start()

    async def page() -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(VideoStreamTrack())
        await pc.setLocalDescription(await pc.createOffer())
        offer = {"type": "offer", "sdp": pc.localDescription.sdp, "attempt": 1}
        data = {"method": "custom", "content": offer}
        send_comm(kernel, "comm_msg", {"comm_id": comm_id, "data": data})
        sdp = await asyncio.wrap_future(answers)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        await asyncio.to_thread(reader.join, CELL_S)
        await pc.close()

    asyncio.run(asyncio.wait_for(page(), CELL_S + 5))
    assert "error" not in lines, lines["error"]
    # The camera's own size (aiortc's test track: 640x480), through the local model.
    assert lines.get("stream", "").strip() == "snapshot (640, 480) generating", lines


def test_outside_a_kernel_a_wait_is_a_plain_wait() -> None:
    """Plain Python (pytest here): no pumping, fut.result() as before, on any thread."""
    assert ui_pump._poller() is None
    fut: concurrent.futures.Future[int] = concurrent.futures.Future()
    threading.Timer(0.05, fut.set_result, (7,)).start()
    assert ui_pump.wait(fut, 5) == 7
    with pytest.raises(concurrent.futures.TimeoutError):
        ui_pump.wait(concurrent.futures.Future(), 0.05)
    assert not ui_pump.pumping()


def test_outside_a_kernel_loop_run_with_pump_is_loop_run() -> None:
    async def seven() -> int:
        return 7

    _loop.acquire()
    try:
        assert _loop.run(seven(), timeout=5, pump=True) == 7
    finally:
        _loop.release()


def test_a_wait_inside_a_pumping_wait_does_not_pump(monkeypatch: pytest.MonkeyPatch) -> None:
    """A comm handler run by the pump that calls a Session method waits plainly: one pump only."""
    polls: list[bool] = []
    inner: concurrent.futures.Future[str] = concurrent.futures.Future()
    outer: concurrent.futures.Future[str] = concurrent.futures.Future()

    def poll() -> None:  # plays a widget message whose handler makes a blocking call
        polls.append(ui_pump._poller() is not None)
        if not outer.done():
            threading.Timer(0.05, inner.set_result, ("inner",)).start()
            outer.set_result(ui_pump.wait(inner, 5))

    monkeypatch.setattr(ui_pump, "_kernel_poller", lambda: contextlib.nullcontext(poll))
    assert ui_pump._poller() is not None
    assert ui_pump.wait(outer, 5) == "inner"
    assert polls == [False]  # polled once, by the outer wait; the inner wait could not pump
    assert not ui_pump.pumping()


def test_a_sweep_over_the_users_session_handles_page_messages_while_it_runs(
    kernel: BlockingKernelClient, tmp_path: Path
) -> None:
    """sweep(session=...) lets each item run for `seconds`: the page's messages (its frames, over
    the comm without decart_nb_server) are handled then too, not only at the next snapshot."""
    run_cell(
        kernel,
        "import time\n"
        "from decart_nb import Session\n"
        "from decart_nb.experiments import sweep\n"
        "s = Session(source='pattern')\n"
        "s.connect()\n"
        "handled = {}\n"
        "def page(comm, msg):\n"
        "    handled[msg['content']['data']['n']] = time.monotonic()\n"
        "get_ipython().kernel.comm_manager.register_target('page', page)\n",
    )
    swept = kernel.execute(
        f"sweep(prompts=['a', 'b'], seconds=3.0, session=s, out_dir={str(tmp_path)!r})\n"
        "print(sorted(handled.items()))"
    )
    sent = {}
    for n in range(4):  # mostly during the items' seconds, when no snapshot waits
        time.sleep(1.0)
        sent[n] = time.monotonic()  # CLOCK_MONOTONIC: the kernel's clock too (same machine)
        send_comm(kernel, "comm_open", {"comm_id": f"p{n}", "target_name": "page", "data": {"n": n}})
    out, _ = outputs(kernel, [swept])
    handled = dict(ast.literal_eval(out[swept].strip()))
    delays = {n: round(handled[n] - sent[n], 2) for n in sent}
    assert max(delays.values()) < 0.75, delays  # a 20 ms pump; held until a snapshot: 1-3 s


class FakeStream:
    """A ZMQStream's recv side: its callback, paused and resumed; an empty socket."""

    def __init__(self) -> None:
        self.socket = self
        self._recv_callback: Any = "the kernel's reader"

    def recv_multipart(self, flags: int, copy: bool) -> list[Any]:
        import zmq

        raise zmq.Again()

    def stop_on_recv(self) -> None:
        self._recv_callback = None

    def on_recv(self, callback: Any, copy: bool) -> None:
        self._recv_callback = callback


def test_a_cell_that_holds_during_a_hand_back_leaves_the_kernel_reading() -> None:
    """Run All: a cell holds requests, and another one holds more before the first hand-back is
    done. One hand-back takes them all, in order, and the kernel's reader is resumed (on 629d4af a
    second hand-back stopped it for good)."""
    ran: list[str] = []

    async def shell_main(_subshell: Any, frames: list[Any]) -> None:
        ran.append(frames[0])

    kernel = type("Kernel", (), {"shell_main": staticmethod(shell_main)})()
    stream = FakeStream()
    poller = ui_pump._CommPoller(kernel, stream)

    async def run_all() -> None:
        poller._hold(["cell 1"])  # the reader pauses; the hand-back waits for the loop
        assert stream._recv_callback is None
        await asyncio.sleep(0)
        poller._hold(["cell 2"])  # a cell that ran before the hand-back held another
        for _ in range(ui_pump.REPLAY_TURNS + 3):
            await asyncio.sleep(0)

    asyncio.run(run_all())
    assert ran == ["cell 1", "cell 2"]
    assert stream._recv_callback == "the kernel's reader"
