"""The CSR approver's decisions and the certificates pki makes."""
from __future__ import annotations

import base64

from controlplane.controllers.csr_signer import KUBELET_CLIENT_SIGNER, review, sign_problem
from kubeling import pki
from kubeling.printers.csr import condition_text


def csr(cn: str, orgs=("system:nodes",), signer=KUBELET_CLIENT_SIGNER, groups=("system:bootstrappers",),
        usages=("digital signature", "client auth"), username="system:bootstrap:abcdef") -> dict:
    req = pki.make_csr(pki.new_key_pem(), cn, list(orgs))
    return {"metadata": {"name": "x"},
            "spec": {"request": base64.b64encode(req).decode(), "signerName": signer, "usages": list(usages),
                     "groups": list(groups), "username": username}}


def test_bootstrapper_node_client_request_is_approved():
    r = review(csr("system:node:a"))
    assert r is not None and r.approve


def test_wrong_subject_signer_or_usages_is_denied():
    for bad in (csr("system:node:a", orgs=("system:masters",)), csr("system:node:a", orgs=("system:nodes", "x")),
                csr("admin"), csr("system:node:"), csr("system:node:a", usages=("server auth", "digital signature")),
                csr("system:node:a", signer="kubernetes.io/kube-apiserver-client")):
        r = review(bad)
        assert r is not None and not r.approve, bad


def test_node_renewing_itself_is_approved_another_node_is_not():
    mine = csr("system:node:a", groups=("system:nodes", "system:authenticated"), username="system:node:a")
    theirs = csr("system:node:b", groups=("system:nodes", "system:authenticated"), username="system:node:a")
    assert review(mine).approve
    assert not review(theirs).approve


def test_other_signers_from_other_users_are_left_to_an_admin():
    assert review(csr("alice", orgs=(), signer="kubernetes.io/kube-apiserver-client", groups=("system:masters",),
                      username="admin")) is None


def test_garbage_request_is_denied_and_not_signed():
    bad = csr("system:node:a")
    bad["spec"]["request"] = base64.b64encode(b"not a csr").decode()
    assert not review(bad).approve
    assert sign_problem(bad)


def test_signed_certificate_names_the_node_and_verifies_against_the_ca(tmp_path):
    pki.make_ca(tmp_path / "ca.crt", tmp_path / "ca.key")
    ca, key = (tmp_path / "ca.crt").read_bytes(), (tmp_path / "ca.key").read_bytes()
    request = pki.make_csr(pki.new_key_pem(), "system:node:a", ["system:nodes"])
    cert = pki.sign_csr(ca, key, request)
    assert pki.subject_of(pki.load_cert(cert)) == ("system:node:a", ["system:nodes"])
    assert pki.verify_signed_by(cert, ca)
    pki.make_ca(tmp_path / "other.crt", tmp_path / "other.key")
    assert not pki.verify_signed_by(cert, (tmp_path / "other.crt").read_bytes())
    assert oct((tmp_path / "ca.key").stat().st_mode & 0o777) == "0o600"


def test_serving_certificate_carries_ip_and_dns_sans(tmp_path):
    from cryptography import x509
    pki.make_ca(tmp_path / "ca.crt", tmp_path / "ca.key")
    pki.issue_cert(tmp_path / "ca.crt", tmp_path / "ca.key", tmp_path / "s.crt", tmp_path / "s.key",
                   "kube-apiserver", hosts=["192.168.56.10", "kubernetes.default.svc", "10.96.0.1"],
                   client=False, server=True)
    cert = pki.load_cert((tmp_path / "s.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["192.168.56.10", "10.96.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["kubernetes.default.svc"]


def test_condition_column():
    assert condition_text({}) == "Pending"
    assert condition_text({"status": {"conditions": [{"type": "Approved", "status": "True"}],
                                      "certificate": "eA=="}}) == "Approved,Issued"
    assert condition_text({"status": {"conditions": [{"type": "Denied", "status": "True"}]}}) == "Denied"
