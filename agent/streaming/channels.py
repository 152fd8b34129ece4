"""The channel protocols of remotecommand and port-forward (apimachinery's
httpstream/wsstream and kubelet's remotecommand), pure helpers.

WebSocket exec/attach: every binary message starts with its channel byte: 0 stdin,
1 stdout, 2 stderr, 3 error (a JSON Status), 4 resize (JSON {"Width","Height"}).
v5.channel.k8s.io adds channel 255, "close": [255, n] says channel n is done (the
client closing stdin). SPDY carries the same streams as separate SPDY streams named
by a `streamType` header. Port-forward over WebSocket: per requested port, channel
2i carries data and 2i+1 errors, each opened by the port number (uint16, little-endian).
"""
from __future__ import annotations

import json
import struct
from typing import Any

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255

WS_V5, WS_V4, WS_V1 = "v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"
WS_EXEC_PROTOCOLS = (WS_V5, WS_V4, WS_V1)
# kubectl >= 1.31 port-forward: SPDY inside binary WebSocket messages.
WS_TUNNELED_PORTFORWARD = "SPDY/3.1+portforward.k8s.io"
WS_PORTFORWARD_PROTOCOLS = (WS_TUNNELED_PORTFORWARD, "portforward.k8s.io", WS_V5, WS_V4, WS_V1)
SPDY_EXEC_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
SPDY_PORTFORWARD_PROTOCOL = "portforward.k8s.io"

STREAM_TYPES = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR, "resize": RESIZE}


def frame(channel: int, data: bytes = b"") -> bytes:
    return bytes([channel]) + data


def split(message: bytes) -> tuple[int, bytes]:
    """(channel, payload) of a binary message; (-1, b"") for an empty one."""
    if not message:
        return -1, b""
    return message[0], message[1:]


def message_bytes(msg_type: str, data: object) -> bytes | None:
    """A WebSocket message's bytes: binary as is, text (the Python client sends str
    stdin as text frames, which wsstream also accepts) as UTF-8; None for control."""
    if msg_type == "binary" and isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if msg_type == "text" and isinstance(data, str):
        return data.encode()
    return None


def port_prefix(port: int) -> bytes:
    return struct.pack("<H", port)


def success() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(code: int, cmd: list[str]) -> dict[str, Any]:
    """What kubelet writes on the error channel when the command exits non-zero:
    client-go turns it into an exit code (kubectl exits with it)."""
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command {cmd}, "
                       f"exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def internal_error(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
            "code": 500, "details": {"causes": [{"message": message}]}}


def encode_status(status: dict[str, Any]) -> bytes:
    return json.dumps(status, separators=(",", ":")).encode()


class ResizeDecoder:
    """Terminal sizes from a resize stream: JSON objects back to back (Go's json.Decoder)."""

    def __init__(self) -> None:
        self._buf = ""
        self._dec = json.JSONDecoder()

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        """New (width, height) pairs."""
        self._buf += data.decode(errors="replace")
        sizes = []
        while True:
            text = self._buf.lstrip()
            if not text:
                self._buf = ""
                return sizes
            try:
                obj, end = self._dec.raw_decode(text)
            except ValueError:
                self._buf = text
                return sizes
            self._buf = text[end:]
            if isinstance(obj, dict):
                try:
                    sizes.append((int(obj.get("Width") or 0), int(obj.get("Height") or 0)))
                except (TypeError, ValueError):
                    pass


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The server's pick: the first of ours the client offers (kubelet prefers the newest)."""
    wanted = {p.strip() for value in offered for p in value.split(",") if p.strip()}
    return next((p for p in supported if p in wanted), None)
