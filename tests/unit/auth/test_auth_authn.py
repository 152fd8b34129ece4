"""Token file parsing and client-certificate users (authn)."""
from __future__ import annotations

import time

import pytest

from controlplane.apiserver.authn import (AUTHENTICATED, MASTERS, Authenticator, bootstrap_token_line,
                                          parse_token_file, user_from_peercert)


def test_old_one_and_two_column_lines_are_the_admin():
    tokens = parse_token_file("t1\nt2,admin\n# comment\n\n")
    assert tokens["t1"].groups == (MASTERS, AUTHENTICATED)
    assert tokens["t2"].name == "admin" and MASTERS in tokens["t2"].groups


def test_kube_apiserver_csv_format_with_quoted_groups():
    tokens = parse_token_file('tok,system:kube-proxy,uid-1,"g1,g2"\nt2,bob,u2\n')
    assert tokens["tok"].name == "system:kube-proxy" and tokens["tok"].uid == "uid-1"
    assert tokens["tok"].groups == ("g1", "g2", AUTHENTICATED)
    assert tokens["t2"].groups == (AUTHENTICATED,)


def test_bootstrap_token_line_round_trips_and_names_the_token_id():
    line = bootstrap_token_line("abcdef.0123456789abcdef")
    user = parse_token_file(line)["abcdef.0123456789abcdef"]
    assert user.name == "system:bootstrap:abcdef" and "system:bootstrappers" in user.groups
    with pytest.raises(ValueError):
        bootstrap_token_line("ABCDEF.0123456789abcdef")
    with pytest.raises(ValueError, match="line 1"):
        parse_token_file("short,x,,system:bootstrappers\n")


def test_peercert_subject_gives_user_and_groups():
    cert = {"subject": ((("organizationName", "system:nodes"),), (("commonName", "system:node:a"),))}
    user = user_from_peercert(cert)
    assert user.name == "system:node:a" and user.node_name == "a"
    assert user_from_peercert({}) is None and user_from_peercert(None) is None


def test_authenticator_token_file_reloads_and_refuses_unknown(tmp_path):
    f = tmp_path / "tokens.csv"
    f.write_text("admintok,admin\n")
    authn = Authenticator(str(f))
    assert authn.authenticate(None, "Bearer admintok").name == "admin"
    assert authn.authenticate(None, "Bearer nope") is None
    assert authn.authenticate(None, "") is None
    f.write_text("admintok,admin\n" + bootstrap_token_line("abcdef.0123456789abcdef"))
    # The file is looked at no more than once a second (a stat per request cost 1% under load).
    deadline = time.monotonic() + 5
    while (user := authn.authenticate(None, "Bearer abcdef.0123456789abcdef")) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert user is not None and user.name == "system:bootstrap:abcdef"


def test_no_authenticator_means_everyone_is_admin():
    assert MASTERS in Authenticator().authenticate(None, "").groups
