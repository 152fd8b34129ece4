"""The channel protocol helpers of exec/attach/port-forward."""
from __future__ import annotations

import json

from agent.streaming import channels as ch


def test_exit_status_is_what_client_go_reads_as_an_exit_code():
    st = ch.exit_status(3, ["sh", "-c", "exit 3"])
    assert st["status"] == "Failure" and st["reason"] == "NonZeroExitCode"
    assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert json.loads(ch.encode_status(ch.success())) == {"metadata": {}, "status": "Success"}


def test_resize_decoder_reads_back_to_back_json_across_chunks():
    d = ch.ResizeDecoder()
    assert d.feed(b'{"Width":80,"Height":24}{"Wid') == [(80, 24)]
    assert d.feed(b'th":100,"Height":40}\n') == [(100, 40)]
    assert d.feed(b"") == []


def test_negotiation_prefers_the_newest_protocol_we_speak():
    assert ch.negotiate(["v4.channel.k8s.io", "v3.channel.k8s.io"], ch.SPDY_EXEC_PROTOCOLS) == "v4.channel.k8s.io"
    assert ch.negotiate(["channel.k8s.io, v2.channel.k8s.io"], ch.SPDY_EXEC_PROTOCOLS) == "v2.channel.k8s.io"
    assert ch.negotiate(["v9"], ch.SPDY_EXEC_PROTOCOLS) is None


def test_frames_and_port_prefix():
    assert ch.frame(ch.STDOUT, b"hi") == b"\x01hi"
    assert ch.split(b"\x00data") == (0, b"data")
    assert ch.split(b"") == (-1, b"")
    assert ch.port_prefix(8080) == bytes([0x90, 0x1F])
