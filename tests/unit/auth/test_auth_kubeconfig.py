"""Kubeconfigs with client certificates, and the client's TLS context from them."""
from __future__ import annotations

import ssl

import pytest
import yaml

from kubeling import kubeconfig, pki
from kubeling.client import Client, tls_context


def test_client_certificate_kubeconfig_round_trips_and_is_private(tmp_path):
    pki.make_ca(tmp_path / "ca.crt", tmp_path / "ca.key")
    ca = (tmp_path / "ca.crt").read_bytes()
    cert, key = pki.issue_cert_pem(ca, (tmp_path / "ca.key").read_bytes(), "system:node:a", ["system:nodes"])
    path = tmp_path / "node.kubeconfig"
    kubeconfig.write(str(path), "https://10.0.0.1:6443", ca_pem=ca, cert_pem=cert, key_pem=key, user="system:node:a")
    assert path.stat().st_mode & 0o777 == 0o600
    doc = yaml.safe_load(path.read_text())
    assert set(doc["users"][0]["user"]) == {"client-certificate-data", "client-key-data"}
    conn = kubeconfig.load(str(path))
    assert (conn.cert_pem, conn.key_pem, conn.ca_pem, conn.token) == (cert, key, ca, None)
    client = Client.from_connection(conn)
    assert isinstance(client._ssl, ssl.SSLContext)


def test_token_kubeconfig_is_unchanged(tmp_path):
    path = tmp_path / "admin.kubeconfig"
    kubeconfig.write(str(path), "https://127.0.0.1:6443", "tok", b"")
    conn = kubeconfig.load(str(path))
    assert conn.token == "tok" and conn.cert_pem is None
    assert yaml.safe_load(path.read_text())["users"][0]["user"] == {"token": "tok"}


def test_certificate_files_and_half_pairs(tmp_path):
    pki.make_ca(tmp_path / "ca.crt", tmp_path / "ca.key")
    pki.issue_cert(tmp_path / "ca.crt", tmp_path / "ca.key", tmp_path / "c.crt", tmp_path / "c.key", "u")
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "x",
           "clusters": [{"name": "c", "cluster": {"server": "https://h:6443"}}],
           "users": [{"name": "u", "user": {"client-certificate": str(tmp_path / "c.crt"),
                                            "client-key": str(tmp_path / "c.key")}}],
           "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}
    path = tmp_path / "k"
    path.write_text(yaml.safe_dump(doc))
    assert kubeconfig.load(str(path)).cert_pem == (tmp_path / "c.crt").read_bytes()
    del doc["users"][0]["user"]["client-key"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match="both client-certificate and client-key"):
        kubeconfig.load(str(path))
    with pytest.raises(ValueError):
        tls_context(None, False, (tmp_path / "c.crt").read_bytes(), None)
