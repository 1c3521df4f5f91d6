"""raise_start_bitrate on real SDP: only video codecs change, once, and peers still accept it."""

from __future__ import annotations

import asyncio
import re

import pytest

from decart_nb.rtc.sdp import MAX_KBPS, START_KBPS, raise_start_bitrate

PARAMS = f"x-google-start-bitrate={START_KBPS};x-google-max-bitrate={MAX_KBPS}"

# What Chrome offers (trimmed): audio with opus/red, video with VP8, VP9, H264, their rtx, red, ulpfec.
CHROME_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS stream",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:Xv3q",
        "a=ice-pwd:0123456789abcdefghijklmn",
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
        "a=setup:actpass",
        "a=mid:0",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:63 red/48000/2",
        "a=fmtp:63 111/111",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 102 103 104 105 106",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:Xv3q",
        "a=ice-pwd:0123456789abcdefghijklmn",
        "a=setup:actpass",
        "a=mid:1",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        "a=rtpmap:96 VP8/90000",
        "a=rtcp-fb:96 goog-remb",
        "a=rtcp-fb:96 transport-cc",
        "a=rtcp-fb:96 ccm fir",
        "a=rtcp-fb:96 nack",
        "a=rtcp-fb:96 nack pli",
        "a=rtpmap:97 rtx/90000",
        "a=fmtp:97 apt=96",
        "a=rtpmap:98 VP9/90000",
        "a=rtcp-fb:98 nack pli",
        "a=fmtp:98 profile-id=0",
        "a=rtpmap:99 rtx/90000",
        "a=fmtp:99 apt=98",
        "a=rtpmap:102 H264/90000",
        "a=rtcp-fb:102 nack pli",
        "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
        "a=rtpmap:103 rtx/90000",
        "a=fmtp:103 apt=102",
        "a=rtpmap:104 red/90000",
        "a=rtpmap:105 rtx/90000",
        "a=fmtp:105 apt=104",
        "a=rtpmap:106 ulpfec/90000",
        "a=ssrc-group:FID 1111 2222",
        "a=ssrc:1111 cname:abc",
        "a=ssrc:2222 cname:abc",
        "",
    ]
)


def sections(sdp: str) -> list[str]:
    return [p for p in re.split(r"(?=^m=)", sdp, flags=re.M) if p]


def fmtp(sdp: str, pt: int) -> list[str]:
    """The parameters of every fmtp line of payload type `pt` in the video sections."""
    video = "".join(s for s in sections(sdp) if s.startswith("m=video"))
    return re.findall(rf"^a=fmtp:{pt} (.*?)\r?$", video, flags=re.M)


def video_codecs(sdp: str) -> dict[int, str]:
    """Payload type -> codec name, for the video sections of an SDP."""
    video = "".join(s for s in sections(sdp) if s.startswith("m=video"))
    return {int(pt): name for pt, name in re.findall(r"^a=rtpmap:(\d+) ([A-Za-z0-9-]+)/", video, flags=re.M)}


def test_only_the_video_codecs_get_the_bitrates() -> None:
    out = raise_start_bitrate(CHROME_OFFER)
    before, after = sections(CHROME_OFFER), sections(out)
    assert after[0] == before[0]  # session part
    assert after[1] == before[1]  # audio, opus red included
    for pt in (96, 98, 102):
        assert fmtp(out, pt)[-1:] and len(fmtp(out, pt)) == 1, (pt, fmtp(out, pt))
        assert fmtp(out, pt)[0].endswith(PARAMS)
    assert fmtp(out, 98)[0].startswith("profile-id=0;")
    assert fmtp(out, 102)[0].startswith("level-asymmetry-allowed=1;packetization-mode=1;")
    for pt, params in ((97, ["apt=96"]), (99, ["apt=98"]), (103, ["apt=102"]), (105, ["apt=104"])):
        assert fmtp(out, pt) == params  # rtx untouched
    assert fmtp(out, 104) == [] and fmtp(out, 106) == []  # red, ulpfec untouched
    # Exactly one line more (VP8 had no fmtp), every line still CRLF-terminated, none empty.
    assert out.count("\r\n") == CHROME_OFFER.count("\r\n") + 1
    assert out.endswith("\r\n") and "\r\n\r\n" not in out and "\n" not in out.replace("\r\n", "")


def test_it_is_idempotent() -> None:
    once = raise_start_bitrate(CHROME_OFFER)
    assert raise_start_bitrate(once) == once


def test_lf_only_sdp_is_handled_too() -> None:
    lf = CHROME_OFFER.replace("\r\n", "\n")
    out = raise_start_bitrate(lf)
    assert "\r" not in out
    assert all(len(fmtp(out, pt)) == 1 and fmtp(out, pt)[0].endswith(PARAMS) for pt in (96, 98, 102))
    assert raise_start_bitrate(out) == out


def test_every_video_section_and_no_audio_only_sdp_is_touched() -> None:
    video = CHROME_OFFER[CHROME_OFFER.index("m=video") :]
    two = CHROME_OFFER + video.replace("a=mid:1", "a=mid:2")
    out = raise_start_bitrate(two)
    assert sum(PARAMS in s for s in sections(out)) == 2
    audio_only = CHROME_OFFER[: CHROME_OFFER.index("m=video")]
    assert raise_start_bitrate(audio_only) == audio_only
    assert video_codecs(CHROME_OFFER) == {
        96: "VP8",
        97: "rtx",
        98: "VP9",
        99: "rtx",
        102: "H264",
        103: "rtx",
        104: "red",
        105: "rtx",
        106: "ulpfec",
    }


@pytest.mark.webrtc
def test_aiortc_offer_and_answer_carry_it_and_peers_accept_it() -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from decart_nb.media.sources import PatternTrack
    from decart_nb.rtc.peer import KernelPeer

    async def scenario() -> None:
        client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        client.addTransceiver("audio", direction="recvonly")
        client.addTransceiver(PatternTrack(320, 240, 30), direction="sendrecv")
        await client.setLocalDescription(await client.createOffer())
        offer = client.localDescription.sdp
        raised = raise_start_bitrate(offer)
        assert raise_start_bitrate(raised) == raised
        assert sections(raised)[:2] == sections(offer)[:2]  # session and audio untouched
        codecs = video_codecs(offer)
        for pt, name in codecs.items():
            changed = PARAMS in "".join(fmtp(raised, pt))
            assert changed == (name.upper() in {"VP8", "VP9", "H264"}), (pt, name)
        # The kernel's own answer path adds it to the codec it chose, and the client accepts it.
        kernel = KernelPeer(
            ice_servers=[],
            codec="vp8",
            output=PatternTrack(320, 240, 30),
            on_state=lambda peer, state: None,
        )
        try:
            answer = await kernel.answer(offer)
            chosen = [pt for pt, name in video_codecs(answer).items() if name == "VP8"]
            assert chosen and all(fmtp(answer, pt) == [PARAMS] for pt in chosen)
            assert raise_start_bitrate(answer) == answer
            await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        finally:
            await kernel.close()
            await client.close()

    asyncio.run(scenario())
