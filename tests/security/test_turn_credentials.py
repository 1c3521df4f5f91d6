"""Attacks on TURN credentials (issue 19): someone who reads a saved notebook, its widget state or
a log must find no TURN username or credential, while the page's RTCPeerConnection still gets them.

They used to travel as the camera widget's synced `ice_servers` trait, so every tool that stores
widget state (JupyterLab's "save widget state", nbclient, ipywidgets' embedding) wrote them into
the notebook, and `session.ice_servers` printed aiortc's RTCIceServer repr with the credential.
Now the state holds only `ice_server_count`, the servers reach the page by an `ice_servers` comm
message, and the session holds SecretIceServers (repr ***).

Kernel side: the widget's state (get_state, the embed state, the manager state, an embedded page,
everything the comm sent as state) and the reprs (repr, str, IPython's formatter, vars(), a verbose
traceback of an argument error) hold no credential. A real kernel (nbclient, widget state stored)
saves none. Page side (JupyterLab with "save widget state" on, Chromium): the page's peer is
configured with the credentials, and the notebook JupyterLab saves holds none.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipywidgets
import nbformat
import pytest
from IPython.core.formatters import DisplayFormatter
from ipywidgets.embed import dependency_state, embed_data, embed_minimal_html
from ipywidgets.widgets.widget import _instances

from decart_nb import DecartNBError, ErrorCode, Session, turn
from decart_nb.widgets.camera import CameraWidget
from harness.lab import JupyterLab, LabNotebook, open_notebook
from tests.browser.harness import artifacts, chromium, clip, playwright
from tests.security.test_api_key import capture_locals, ipython_verbose, stack_data_variables
from tests.test_notebooks import kernel_name
from tests.test_turn import FakeProvider, cloudflare_answer, provider
from tests.test_widget import RecordingComm, comm_of, comms

# Fixtures shared with other modules (the browser harness, the kernel, the fake TURN provider).
__all__ = ["artifacts", "chromium", "clip", "comms", "kernel_name", "playwright", "provider"]

USER = "tc-user-5f0c2a"
CREDENTIAL = "tc-cred-b81e94d3"
CF_USER, CF_CREDENTIAL = "tc-cf-user-77d1", "tc-cf-cred-0e6a5b"
COTURN_SECRET = "tc-coturn-secret-c4a1"
TURN_URL = "turn:127.0.0.1:3478"  # nothing listens there: the page only needs to be told of it


def static_servers() -> list[dict[str, Any]]:
    """A static TURN server and a STUN URL (read from a secrets store, not typed in a cell)."""
    return [*turn.turn_server(TURN_URL, USER, CREDENTIAL), {"urls": "stun:127.0.0.1:3479"}]


def secrets_of(servers: list[dict[str, Any]]) -> list[str]:
    return [str(s[k]) for s in servers for k in ("username", "credential") if s.get(k)]


@pytest.fixture(params=["turn_server", "coturn", "cloudflare"])
def servers(request: pytest.FixtureRequest, provider: FakeProvider) -> list[dict[str, Any]]:
    """What each helper gives a session: a static password, coturn's computed one, Cloudflare's."""
    if request.param == "turn_server":
        return static_servers()
    if request.param == "coturn":
        return turn.coturn(TURN_URL, COTURN_SECRET, ttl=600)
    provider.answer = cloudflare_answer(username=CF_USER, credential=CF_CREDENTIAL)
    return turn.cloudflare("key-1", "cf-api-token", base_url=provider.url)


@pytest.fixture
def camera(
    comms: list[RecordingComm], servers: list[dict[str, Any]]
) -> Iterator[tuple[Session, RecordingComm]]:
    s = Session(source="camera", ice_servers=servers)
    try:
        yield s, comm_of(s.widget, comms)
    finally:
        s.widget.close()
        s.disconnect()


def assert_hidden(text: str, secrets: list[str], where: str) -> None:
    shown = [secret for secret in secrets if secret in text]
    assert not shown, f"{where} shows {shown}: {text[:300]}"


# -- (a) the widget's state ------------------------------------------------------------------------
def test_no_widget_state_holds_a_turn_credential(
    camera: tuple[Session, RecordingComm], servers: list[dict[str, Any]], comms: list[RecordingComm]
) -> None:
    s, rec = camera
    # What a saved notebook keeps: the manager's state of every widget, here this test's (other
    # tests' leftovers, e.g. a panel whose children were closed, are no business of this one).
    ours = [w for w in _instances.values() if any(w.comm is c for c in comms)]
    widget: CameraWidget = s.widget
    secrets = secrets_of(servers)
    assert secrets  # each helper gives a username and a credential
    html = io.StringIO()
    embed_minimal_html(html, views=[widget], title="saved", state=dependency_state(widget))
    stored = {
        "get_state": widget.get_state(),
        "embed dependency_state": dependency_state(widget),
        "manager state (what a saved notebook keeps)": ipywidgets.Widget.get_manager_state(widgets=ours),
        "embed_data": embed_data(views=[widget], state=dependency_state(widget)),
        "embedded page": html.getvalue(),
        "state the comm sent": [
            d for kind, d in rec.sent if kind == "comm_open" or d.get("method") == "update"
        ],
    }
    for where, state in stored.items():
        assert_hidden(json.dumps(state, default=str), secrets, where)
    assert widget.get_state()["ice_server_count"] == len(servers)
    # The page does get them: in the one comm message that carries them.
    sent = rec.custom("ice_servers")
    assert sent and sent[-1]["servers"] == servers


# -- (b) what prints -------------------------------------------------------------------------------
def test_nothing_that_prints_shows_a_turn_credential(
    camera: tuple[Session, RecordingComm], servers: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    s, rec = camera
    rec.from_page({"type": "want_ice_servers"})
    secrets = secrets_of(servers)
    formatter = DisplayFormatter()
    shown = {
        "repr(session.ice_servers)": repr(s.ice_servers),
        "str(session.ice_servers)": str(s.ice_servers),
        "vars() of each server": repr([vars(server) for server in s.ice_servers]),
        "IPython's formats of session.ice_servers": repr(formatter.format(s.ice_servers)),
        "IPython's formats of a server": repr(formatter.format(s.ice_servers[0])),
        "repr(session)": repr(s),
        "the session's display": repr(s._repr_mimebundle_()),
        "repr(widget)": repr(s.widget),
        "IPython's formats of the widget": repr(formatter.format(s.widget)),
        "session.events": repr(s.events),
        "session.stats": repr(s.stats),
        "log records": "\n".join(r.getMessage() for r in caplog.records),
    }
    for where, text in shown.items():
        assert_hidden(text, secrets, where)
    assert "***" in repr(s.ice_servers)


def test_the_kernels_peer_still_gets_the_credentials(servers: list[dict[str, Any]]) -> None:
    """aiortc reads a SecretIceServer's attributes: the kernel's TURN allocation is unchanged."""
    from aiortc.rtcicetransport import connection_kwargs

    s = Session(source="pattern", ice_servers=servers)
    try:
        kwargs = connection_kwargs(s.ice_servers)
    finally:
        s.disconnect()
    relay = next(x for x in servers if str(x["urls"]).startswith(("turn:", "['turn:")))
    assert (kwargs["turn_username"], kwargs["turn_password"]) == (relay["username"], relay["credential"])


def test_a_verbose_traceback_of_an_argument_error_shows_no_turn_credential() -> None:
    """An argument error after `ice_servers` has the Session's frame in its traceback, which
    %xmode Verbose, capture_locals and stack_data print with its variables."""
    with pytest.raises(DecartNBError) as info:
        Session(source="pattern", ice_servers=static_servers(), codec="av1")  # type: ignore[arg-type]
    assert info.value.code == ErrorCode.INVALID_INPUT
    for read in (capture_locals, ipython_verbose, stack_data_variables):
        assert_hidden(read(info.value), [USER, CREDENTIAL], read.__name__)


# -- a real kernel that stores widget state (nbclient) ---------------------------------------------
SAVED_CELLS = [
    "import os\nfrom decart_nb import Session, turn\n"
    "servers = turn.turn_server('turn:127.0.0.1:3478', os.environ['TC_USER'], os.environ['TC_CREDENTIAL'])\n"
    "s = Session(source='camera', ice_servers=servers)\ns.widget",
    "s.ice_servers",
    "s",
    "s.disconnect()",
]


@pytest.mark.webrtc
def test_a_notebook_saved_with_its_widget_state_holds_no_turn_credential(
    tmp_path: Path, kernel_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("TC_USER", USER)
    monkeypatch.setenv("TC_CREDENTIAL", CREDENTIAL)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in SAVED_CELLS]
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=120, store_widget_state=True)
    client.execute(cwd=str(tmp_path))
    saved = tmp_path / "saved.ipynb"
    nbformat.write(nb, saved)
    text = saved.read_text()
    assert "application/vnd.jupyter.widget-state+json" in text
    assert_hidden(text, [USER, CREDENTIAL], "the saved notebook")
    assert "ice_server_count" in text  # the camera widget's state is there
    assert "***" in text  # the displayed ice_servers


# -- the page (JupyterLab, Chromium) ---------------------------------------------------------------
@pytest.fixture(scope="module")
def saving_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """JupyterLab with "Save Jupyter widget state in notebooks" on; its kernels read the TURN
    username and credential from their environment (no cell holds them)."""
    root = tmp_path_factory.mktemp("lab-save-state")
    settings = root / ".jupyter" / "settings" / "@jupyter-widgets" / "jupyterlab-manager"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text('{"saveState": true}')
    env = {"TC_USER": USER, "TC_CREDENTIAL": CREDENTIAL}
    with JupyterLab.start(root, env=env) as lab:
        yield lab


PEER_CONFIG_JS = """() => {
  const c = [...window.__decartNB.controllers].find((c) => c.pc);
  return c ? c.pc.getConfiguration().iceServers : null;
}"""


def turn_entry(ice_servers: list[dict[str, Any]]) -> dict[str, Any]:
    """The page's RTCPeerConnection's entry for the test's TURN server ({} when it has none)."""
    return next((s for s in ice_servers if TURN_URL in json.dumps(s.get("urls"))), {})


@pytest.mark.browser
def test_the_page_gets_the_credentials_and_the_saved_notebook_does_not(
    chromium: Any, saving_lab: JupyterLab, artifacts: Path
) -> None:
    nb: LabNotebook = open_notebook(chromium, saving_lab, artifacts=artifacts)
    try:
        nb.run_cell(SAVED_CELLS[0])
        nb.page.wait_for_function(f"({PEER_CONFIG_JS})() !== null", timeout=30_000, polling=100)
        configured = nb.page.evaluate(PEER_CONFIG_JS)
        relay = turn_entry(configured)
        assert relay.get("username") == USER and relay.get("credential") == CREDENTIAL, (
            f"{configured}\n{nb.diagnostics()}"
        )
        assert nb.wait_py("s.state in ('connected', 'generating')", timeout=60), nb.diagnostics()
        nb.run_cell(SAVED_CELLS[1])
        nb.page.evaluate("async () => { await window.jupyterapp.commands.execute('docmanager:save'); }")
        text = (saving_lab.root / nb.path).read_text()
        assert "application/vnd.jupyter.widget-state+json" in text, "JupyterLab saved no widget state"
        assert_hidden(text, [USER, CREDENTIAL], "the notebook JupyterLab saved")
        assert "ice_server_count" in text  # the camera widget's state is there
        assert_hidden("\n".join(nb.console), [USER, CREDENTIAL], "the page's console")
        nb.execute("s.disconnect()")
    finally:
        nb.close()


def lose_kernel_sends(answer: bool) -> str:
    """A cell: every ice_servers message the kernel sends by itself is lost (as one that reaches
    the page before its model exists); the page's request is answered (`answer`) or not."""
    reply = "_send(self)" if answer else "None"
    return (
        "from decart_nb.widgets import camera as _camera\n"
        "_send, _asked = _camera.CameraWidget._send_ice_servers, []\n"
        "_camera.CameraWidget._send_ice_servers = lambda self: None\n"
        f"_camera._HANDLERS['want_ice_servers'] = lambda self, content: (_asked.append(1), {reply})\n"
    )


COUNT_PEERS_JS = """() => {
  window.__peersMade = [];
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(config) { super(config); window.__peersMade.push(config); }
  };
}"""


@pytest.mark.browser
def test_a_page_that_missed_the_servers_asks_and_waits_for_them(
    chromium: Any, saving_lab: JupyterLab, artifacts: Path
) -> None:
    nb: LabNotebook = open_notebook(chromium, saving_lab, artifacts=artifacts)
    try:
        nb.page.evaluate(COUNT_PEERS_JS)
        nb.run_cell(lose_kernel_sends(answer=True))
        nb.run_cell(SAVED_CELLS[0])
        nb.page.wait_for_function("() => window.__peersMade.length > 0", timeout=30_000, polling=100)
        assert nb.py("len(_asked)") >= 1, nb.diagnostics()
        first = nb.page.evaluate("() => window.__peersMade[0].iceServers")
        assert turn_entry(first).get("credential") == CREDENTIAL, f"{first}\n{nb.diagnostics()}"
        assert nb.wait_py("s.state in ('connected', 'generating')", timeout=60), nb.diagnostics()
        nb.execute("s.disconnect()")
    finally:
        nb.close()


@pytest.mark.browser
def test_a_page_never_sent_the_servers_makes_no_peer_and_says_so(
    chromium: Any, saving_lab: JupyterLab, artifacts: Path
) -> None:
    nb: LabNotebook = open_notebook(chromium, saving_lab, artifacts=artifacts)
    try:
        nb.page.evaluate(COUNT_PEERS_JS)
        nb.run_cell(lose_kernel_sends(answer=False))
        nb.run_cell(SAVED_CELLS[0].replace("s.widget", "s.widget.transport = 'webrtc'\ns.widget"))
        says = "() => (document.querySelector('.decart-notice')?.textContent || '').includes(NOTICE)"
        nb.page.wait_for_function(
            says.replace("NOTICE", "'No ICE servers from the kernel'"), timeout=30_000, polling=200
        )
        assert nb.page.evaluate("() => window.__peersMade.length") == 0, nb.diagnostics()
        assert nb.py("len(_asked)") >= 1
        nb.execute("s.disconnect()")
    finally:
        nb.close()


class _Entry:
    """Something that is no ICE server but prints like one, credential and all."""

    def __repr__(self) -> str:
        return f"Entry(urls={TURN_URL!r}, credential={CREDENTIAL!r})"


def test_a_bad_or_unusual_ice_entry_is_named_by_its_type_not_its_repr() -> None:
    """A refused entry's message once quoted its repr (60 characters: enough for a credential), and
    a read-only mapping passed the argument check, then failed in the peer with its whole repr."""
    from types import MappingProxyType

    from decart_nb.rtc.peer import ice_servers_from

    with pytest.raises(DecartNBError) as caught:
        Session(source="pattern", ice_servers=[_Entry()])
    assert caught.value.code == ErrorCode.INVALID_INPUT
    assert CREDENTIAL not in str(caught.value) and "_Entry" in str(caught.value)
    with pytest.raises(DecartNBError) as caught:
        ice_servers_from([_Entry()])
    assert CREDENTIAL not in str(caught.value)
    frozen = MappingProxyType({"urls": TURN_URL, "username": USER, "credential": CREDENTIAL})
    (server,) = ice_servers_from([frozen])  # a mapping like the browser's dicts is one
    assert (server.username, server.credential) == (USER, CREDENTIAL)
