"""SDP tweaks for low latency between a browser and the kernel."""

from __future__ import annotations

import re

__all__ = ["raise_start_bitrate"]

# Chrome otherwise starts a new video sender at about 300 kbps and sends 640x360 for ~20 s.
START_KBPS = 2500
MAX_KBPS = 6000
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([A-Za-z0-9-]+)/", re.M)


def raise_start_bitrate(sdp: str, start_kbps: int = START_KBPS, max_kbps: int = MAX_KBPS) -> str:
    """Add x-google start/max bitrates to every VP8/VP9/H264 format of the video sections."""
    params = f"x-google-start-bitrate={start_kbps};x-google-max-bitrate={max_kbps}"
    out = []
    for section in _media_sections(sdp):
        if section.startswith("m=video"):
            section = _with_params(section, params)
        out.append(section)
    return "".join(out)


def _with_params(section: str, params: str) -> str:
    eol = "\r\n" if "\r\n" in section else "\n"  # SDP says CRLF; hand-written SDP may not
    lines = section.split(eol)
    targets = {pt for pt, name in _RTPMAP.findall(section) if name.upper() in {"VP8", "VP9", "H264"}}
    seen = set()
    for i, line in enumerate(lines):
        m = re.match(r"^a=fmtp:(\d+) (.*)$", line)
        if m and m.group(1) in targets:
            if "x-google-start-bitrate" not in line:  # already there: leave it (idempotent)
                lines[i] = f"{line};{params}"
            seen.add(m.group(1))
    for pt in sorted(targets - seen, key=int):
        at = max(i for i, line in enumerate(lines) if line.startswith(f"a=rtpmap:{pt} "))
        lines.insert(at + 1, f"a=fmtp:{pt} {params}")
    return eol.join(lines)


def _media_sections(sdp: str) -> list[str]:
    """The session part, then one chunk per m= section (each keeps its trailing CRLF)."""
    parts = re.split(r"(?=^m=)", sdp, flags=re.M)
    return [p for p in parts if p]
