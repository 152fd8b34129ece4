"""`agent.proxy`'s mode choice: --proxy-mode wins; without it, the mode measured faster where the
host's iptables is the nft backend (and nft works), iptables everywhere else."""
from __future__ import annotations

import pytest

from agent.proxy import __main__ as proxy_main


@pytest.mark.parametrize("backend,nft_works,expected", [
    ("nft", True, proxy_main.FASTER_ON_NFT),
    ("nft", False, "iptables"),
    ("legacy", True, "iptables"),
])
def test_default_mode_follows_the_iptables_backend(monkeypatch, backend, nft_works, expected):
    monkeypatch.setattr(proxy_main, "nft_available", lambda: nft_works)
    assert proxy_main.default_mode(backend) == expected


def test_proxy_mode_flag():
    assert proxy_main.parse_args(["--proxy-mode", "nftables"]).proxy_mode == "nftables"
    assert proxy_main.parse_args([]).proxy_mode is None
    with pytest.raises(SystemExit):
        proxy_main.parse_args(["--proxy-mode", "ipvs"])
