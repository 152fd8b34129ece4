"""ServiceAccount tokens: the `serviceaccounts/<name>/token` subresource
(TokenRequest, authentication.k8s.io/v1) and the authenticator of the JWTs it issues.

The tokens are Kubernetes' bound tokens: JWTs signed with the apiserver's
service-account key (ES256 for an EC P-256 key, RS256 for an RSA key) carrying
iss, sub `system:serviceaccount:<ns>:<name>`, aud, iat/nbf/exp, jti and a
`kubernetes.io` claim naming the namespace, the ServiceAccount (name, uid) and the
object the token is bound to (a Pod or Secret: name, uid). A token authenticates
only while its ServiceAccount and its bound object still exist with those uids.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from kubeling import errors
from kubeling.resources import BY_PLURAL

from . import objectmeta
from .authn import AUTHENTICATED, UserInfo

SA_PREFIX = "system:serviceaccount:"
SA_GROUP = "system:serviceaccounts"
DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32
LEEWAY = 60  # seconds of clock skew tolerated on nbf/exp, as Kubernetes' validator
BOUND_KINDS = {"Pod": "pods", "Secret": "secrets"}
TOKEN_REQUEST_VERSION = "authentication.k8s.io/v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _load_private(path: str) -> Any:
    return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)


def _load_publics(path: str) -> list[Any]:
    """Every public key of a PEM file (public keys, or private keys whose public half counts)."""
    data = Path(path).read_bytes()
    out = []
    for block in data.split(b"-----END ")[:-1]:
        start = block.rfind(b"-----BEGIN ")
        if start < 0:
            continue
        label_end = block.find(b"-----", start + 11)
        label = block[start + 11:label_end]
        pem = block[start:] + b"-----END " + label + b"-----\n"
        if b"PRIVATE KEY" in label:
            out.append(serialization.load_pem_private_key(pem, password=None).public_key())
        elif b"PUBLIC KEY" in label:
            out.append(serialization.load_pem_public_key(pem))
    if not out:
        raise ValueError(f"{path}: no PEM public or private key found")
    return out


def key_id(public: Any) -> str:
    """Kubernetes' kid: the base64url SHA-256 of the DER public key."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(hashlib.sha256(der).digest())


def _alg(key: Any) -> str:
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "ES256"
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "RS256"
    raise ValueError("service-account keys must be EC P-256 or RSA")


def sign(private: Any, claims: dict[str, Any]) -> str:
    alg = _alg(private)
    header = {"alg": alg, "kid": key_id(private.public_key())}
    signing_input = (_b64(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + _b64(json.dumps(claims, separators=(",", ":")).encode())).encode()
    if alg == "ES256":
        r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        sig = private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return signing_input.decode() + "." + _b64(sig)


def verify(publics: list[Any], token: str) -> dict[str, Any] | None:
    """The claims of a token one of `publics` signed; None for anything else."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        sig = _unb64(parts[2])
    except (ValueError, TypeError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    for pub in publics:
        alg = _alg(pub)
        if header.get("alg") != alg:
            continue
        try:
            if alg == "ES256":
                if len(sig) != 64:
                    continue
                der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
                pub.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
            else:
                pub.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
            return claims
        except InvalidSignature:
            continue
    return None


def generate_key(path: Path) -> None:
    """A new EC P-256 service-account signing key (PEM, 0600), unless one exists."""
    if path.exists():
        return
    import os
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    return UserInfo(f"{SA_PREFIX}{namespace}:{name}", uid,
                    (SA_GROUP, f"{SA_GROUP}:{namespace}", AUTHENTICATED))


@dataclass
class ServiceAccountTokens:
    """The apiserver's service-account token configuration (its three flags)."""
    signing_key: Any  # private key, or None: then tokens are validated but not issued
    public_keys: list[Any]
    issuer: str = DEFAULT_ISSUER
    audiences: tuple[str, ...] = ()

    @classmethod
    def from_files(cls, signing_key_file: str | None, key_files: list[str], issuer: str | None,
                   audiences: list[str] | None = None) -> "ServiceAccountTokens":
        signing = _load_private(signing_key_file) if signing_key_file else None
        publics: list[Any] = []
        for f in key_files:
            publics.extend(_load_publics(f))
        if signing is not None and not publics:
            publics.append(signing.public_key())
        issuer = issuer or DEFAULT_ISSUER
        return cls(signing, publics, issuer, tuple(audiences or [issuer]))

    # ---- TokenRequest ------------------------------------------------------

    async def request(self, registry: Any, namespace: str, name: str, body: Any) -> dict[str, Any]:
        if self.signing_key is None:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a TokenRequest object")
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        audiences = spec.get("audiences") or list(self.audiences)
        expiration = spec.get("expirationSeconds")
        expiration = DEFAULT_EXPIRATION if expiration is None else expiration
        errs = []
        if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
            errs.append(errors.invalid_value("spec.audiences", audiences, "must be a list of non-empty strings"))
        if not isinstance(expiration, int) or isinstance(expiration, bool):
            errs.append(errors.invalid_value("spec.expirationSeconds", expiration, "must be an integer"))
        elif expiration < MIN_EXPIRATION:
            errs.append(errors.invalid_value("spec.expirationSeconds", expiration,
                                             "may not specify a duration less than 10 minutes"))
        elif expiration > MAX_EXPIRATION:
            errs.append(errors.invalid_value("spec.expirationSeconds", expiration,
                                             "may not specify a duration larger than 2^32 seconds"))
        ref = spec.get("boundObjectRef")
        if ref is not None and (not isinstance(ref, dict) or ref.get("kind") not in BOUND_KINDS):
            errs.append(errors.not_supported("spec.boundObjectRef.kind",
                                             ref.get("kind") if isinstance(ref, dict) else ref, list(BOUND_KINDS)))
        if errs:
            raise errors.invalid("TokenRequest", name, errs, "authentication.k8s.io")
        sa = await registry.get(BY_PLURAL[("", "serviceaccounts")], namespace, name)
        sa_uid = sa["metadata"].get("uid", "")
        k8s: dict[str, Any] = {"namespace": namespace, "serviceaccount": {"name": name, "uid": sa_uid}}
        if ref:
            res = BY_PLURAL[("", BOUND_KINDS[ref["kind"]])]
            try:
                obj = await registry.get(res, namespace, ref.get("name") or "")
            except errors.ApiError as exc:
                if exc.code == 404:
                    raise errors.not_found(res.plural, ref.get("name") or "")
                raise
            uid = obj["metadata"].get("uid", "")
            if ref.get("uid") and ref["uid"] != uid:
                raise errors.conflict(res.plural, ref.get("name") or "",
                                      f"the UID in the bound object reference ({ref['uid']}) does not match "
                                      f"the UID in record. The object might have been deleted and then recreated")
            k8s[ref["kind"].lower()] = {"name": obj["metadata"]["name"], "uid": uid}
            if ref["kind"] == "Pod" and (obj.get("spec") or {}).get("nodeName"):
                k8s["node"] = {"name": obj["spec"]["nodeName"]}
            ref = {"kind": ref["kind"], "apiVersion": "v1", "name": obj["metadata"]["name"], "uid": uid}
        now = int(time.time())
        claims = {"aud": audiences, "exp": now + expiration, "iat": now, "iss": self.issuer,
                  "jti": str(uuid.uuid4()), "kubernetes.io": k8s, "nbf": now,
                  "sub": f"{SA_PREFIX}{namespace}:{name}"}
        token = sign(self.signing_key, claims)
        expires = objectmeta.rfc3339(dt.datetime.fromtimestamp(now + expiration, dt.timezone.utc))
        out_spec: dict[str, Any] = {"audiences": audiences, "expirationSeconds": expiration,
                                    "boundObjectRef": ref}
        return {"kind": "TokenRequest", "apiVersion": TOKEN_REQUEST_VERSION,
                "metadata": {"name": name, "namespace": namespace, "creationTimestamp": objectmeta.now()},
                "spec": out_spec, "status": {"token": token, "expirationTimestamp": expires}}

    # ---- authentication ------------------------------------------------------

    async def authenticate(self, token: str, registry: Any) -> UserInfo | None:
        """The ServiceAccount user of a valid token we issued; None otherwise."""
        if token.count(".") != 2:
            return None
        claims = verify(self.public_keys, token)
        if claims is None or claims.get("iss") != self.issuer:
            return None
        now = time.time()
        exp, nbf = claims.get("exp"), claims.get("nbf", 0)
        if not isinstance(exp, (int, float)) or exp + LEEWAY < now:
            return None
        if isinstance(nbf, (int, float)) and nbf - LEEWAY > now:
            return None
        aud = claims.get("aud")
        aud = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not set(aud) & set(self.audiences):
            return None
        sub = claims.get("sub")
        k8s = claims.get("kubernetes.io")
        if not isinstance(sub, str) or not sub.startswith(SA_PREFIX) or not isinstance(k8s, dict):
            return None
        ns, _, name = sub[len(SA_PREFIX):].partition(":")
        sa_claim = k8s.get("serviceaccount") or {}
        if k8s.get("namespace") != ns or not isinstance(sa_claim, dict) or sa_claim.get("name") != name:
            return None
        # Bound tokens: valid only while what they name is still the same object.
        if not await _same_object(registry, "serviceaccounts", ns, name, sa_claim.get("uid")):
            return None
        for kind, plural in BOUND_KINDS.items():
            bound = k8s.get(kind.lower())
            if bound is not None:
                if not isinstance(bound, dict) or not await _same_object(
                        registry, plural, ns, bound.get("name"), bound.get("uid"), kind == "Pod"):
                    return None
        return service_account_user(ns, name, str(sa_claim.get("uid") or ""))


async def _same_object(registry: Any, plural: str, ns: str, name: Any, uid: Any, live: bool = False) -> bool:
    if not isinstance(name, str) or not name:
        return False
    try:
        obj = await registry.get(BY_PLURAL[("", plural)], ns, name)
    except errors.ApiError:
        return False
    meta = obj.get("metadata") or {}
    if uid and meta.get("uid") != uid:
        return False
    if live and meta.get("deletionTimestamp"):
        # A deleting pod's token stays valid through its grace period (its containers
        # may still need the API while they stop), and ends when the deadline passes.
        try:
            deadline = objectmeta.parse_time(meta["deletionTimestamp"])
        except (TypeError, ValueError):
            return False
        if deadline < dt.datetime.now(dt.timezone.utc):
            return False
    return True


async def request(registry: Any, namespace: str, name: str, body: Any,
                  config: ServiceAccountTokens | None) -> dict[str, Any]:
    """POST serviceaccounts/<name>/token; 404 when this apiserver issues no tokens."""
    if config is None or config.signing_key is None:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    return await config.request(registry, namespace, name, body)
