"""Encryption at rest, as kube-apiserver's `--encryption-provider-config`.

The file is an EncryptionConfiguration (apiserver.config.k8s.io/v1): for each
listed resource, an ordered list of providers. The first provider encrypts every
write; a read tries the providers in turn, chosen by the value's prefix
(`k8s:enc:<provider>:v1:<key name>:`), so a key rotation is: put the new key
first, keep the old one second, rewrite the objects, then drop the old key.

Providers: `aescbc` (AES-256/192/128-CBC, PKCS#7 padding, a random 16-byte IV
in front of the ciphertext, as Kubernetes), `secretbox` (XSalsa20-Poly1305 via
PyNaCl, a random 24-byte nonce in front) and `identity` (plaintext).

One difference from kube-apiserver: a stored value that is plain JSON is read
as it is even when `identity` is not listed (Kubernetes then fails the read),
so objects written before encryption was turned on stay readable.
"""
from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kubeling import errors
from kubeling.resources import BY_KIND

PREFIX = b"k8s:enc:"
API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Key:
    name: str
    secret: bytes


class Provider:
    """One provider of a resource's list. `prefix` is b"" for identity."""
    kind = ""

    def __init__(self, keys: list[Key]) -> None:
        self.keys = keys

    def prefixes(self) -> list[tuple[bytes, Key]]:
        return [(f"k8s:enc:{self.kind}:v1:{k.name}:".encode(), k) for k in self.keys]

    def encrypt(self, key: Key, plaintext: bytes) -> bytes:
        raise NotImplementedError

    def decrypt(self, key: Key, data: bytes) -> bytes:
        raise NotImplementedError

    def to_storage(self, plaintext: bytes) -> bytes:
        prefix, key = self.prefixes()[0]
        return prefix + self.encrypt(key, plaintext)


class AESCBC(Provider):
    kind = "aescbc"

    def encrypt(self, key: Key, plaintext: bytes) -> bytes:
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        enc = Cipher(algorithms.AES(key.secret), modes.CBC(iv)).encryptor()
        return iv + enc.update(padded) + enc.finalize()

    def decrypt(self, key: Key, data: bytes) -> bytes:
        if len(data) < 32 or len(data) % 16:
            raise ValueError("the stored data is not a whole number of AES blocks")
        dec = Cipher(algorithms.AES(key.secret), modes.CBC(data[:16])).decryptor()
        padded = dec.update(data[16:]) + dec.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(padded) + unpadder.finalize()


class SecretBox(Provider):
    kind = "secretbox"

    def encrypt(self, key: Key, plaintext: bytes) -> bytes:
        from nacl.secret import SecretBox as Box
        return bytes(Box(key.secret).encrypt(plaintext))  # nonce + box

    def decrypt(self, key: Key, data: bytes) -> bytes:
        from nacl.secret import SecretBox as Box
        return Box(key.secret).decrypt(data)


class Identity(Provider):
    kind = "identity"

    def prefixes(self) -> list[tuple[bytes, Key]]:
        return []

    def to_storage(self, plaintext: bytes) -> bytes:
        return plaintext


def _keys(kind: str, spec: Any, where: str, sizes: tuple[int, ...]) -> list[Key]:
    keys = spec.get("keys") if isinstance(spec, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ConfigError(f"{where}.keys: Required value: {kind} provider needs at least one key")
    out = []
    for i, k in enumerate(keys):
        name = k.get("name") if isinstance(k, dict) else None
        secret = k.get("secret") if isinstance(k, dict) else None
        if not isinstance(name, str) or not name or ":" in name:
            raise ConfigError(f"{where}.keys[{i}].name: Invalid value: a key needs a name without ':'")
        try:
            raw = base64.b64decode(secret or "", validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where}.keys[{i}].secret: Invalid value: secret is not base64 encoded") from None
        if len(raw) not in sizes:
            raise ConfigError(f"{where}.keys[{i}].secret: Invalid value: {kind} key must be "
                              f"{' or '.join(map(str, sizes))} bytes, got {len(raw)}")
        out.append(Key(name, raw))
    return out


def _provider(spec: Any, where: str) -> Provider:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"{where}: Invalid value: a provider has exactly one of aescbc, secretbox, identity")
    (kind, body), = spec.items()
    if kind == "aescbc":
        return AESCBC(_keys(kind, body, f"{where}.aescbc", (16, 24, 32)))
    if kind == "secretbox":
        try:
            import nacl.secret  # noqa: F401
        except ImportError:
            raise ConfigError(f"{where}.secretbox: PyNaCl is not installed") from None
        return SecretBox(_keys(kind, body, f"{where}.secretbox", (32,)))
    if kind == "identity":
        return Identity([])
    raise ConfigError(f"{where}: Unsupported value: {kind!r}: supported values: aescbc, secretbox, identity")


class Transformer:
    """The providers of each resource (by plural, core and grouped: `secrets`,
    `leases.coordination.k8s.io`)."""

    def __init__(self, by_resource: dict[str, list[Provider]]) -> None:
        self.by_resource = by_resource

    def _providers_for_kind(self, api_version: Any, kind: Any) -> list[Provider] | None:
        res = BY_KIND.get((api_version, kind)) if isinstance(kind, str) else None
        if res is None:
            return None
        name = f"{res.plural}.{res.group}" if res.group else res.plural
        return self.by_resource.get(name)

    def to_storage(self, obj: dict[str, Any], plaintext: bytes) -> bytes:
        providers = self._providers_for_kind(obj.get("apiVersion"), obj.get("kind"))
        if not providers:
            return plaintext
        return providers[0].to_storage(plaintext)

    def from_storage(self, value: bytes) -> bytes:
        if not value.startswith(PREFIX):
            return value
        for providers in self.by_resource.values():
            for p in providers:
                for prefix, key in p.prefixes():
                    if value.startswith(prefix):
                        try:
                            return p.decrypt(key, value[len(prefix):])
                        except Exception as exc:  # wrong key material or a damaged value
                            raise errors.internal(f"unable to decrypt the stored object with "
                                                  f"{p.kind} key {key.name!r}: {type(exc).__name__}")
        raise errors.internal("no configured encryption key can read the stored object "
                              f"({value[:40].decode(errors='replace')}...)")


def parse(text: str, source: str = "encryption config") -> Transformer:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not YAML: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND or doc.get("apiVersion") not in (
            API_VERSION, "apiserver.config.k8s.io/v1beta1"):
        raise ConfigError(f"{source}: want kind {KIND}, apiVersion {API_VERSION}")
    by_resource: dict[str, list[Provider]] = {}
    for i, entry in enumerate(doc.get("resources") or []):
        where = f"resources[{i}]"
        names = entry.get("resources") if isinstance(entry, dict) else None
        specs = entry.get("providers") if isinstance(entry, dict) else None
        if not isinstance(names, list) or not names:
            raise ConfigError(f"{source}: {where}.resources: Required value")
        if not isinstance(specs, list) or not specs:
            raise ConfigError(f"{source}: {where}.providers: Required value")
        providers = [_provider(s, f"{where}.providers[{j}]") for j, s in enumerate(specs)]
        for name in names:
            # The first entry that names a resource decides for it, as in Kubernetes.
            by_resource.setdefault(str(name).rstrip("."), providers)
    return Transformer(by_resource)


def load(path: str) -> Transformer:
    return parse(Path(path).read_text(), path)


# The transformer of this apiserver process (set by server.serve from the flag);
# storage.py consults it on every encode and decode.
ACTIVE: Transformer | None = None


def configure(path: str | None) -> None:
    global ACTIVE
    ACTIVE = load(path) if path else None


def to_storage(obj: dict[str, Any], plaintext: bytes) -> bytes:
    return ACTIVE.to_storage(obj, plaintext) if ACTIVE is not None else plaintext


def from_storage(value: bytes) -> bytes:
    if ACTIVE is None:
        if value.startswith(PREFIX):
            raise errors.internal("the stored object is encrypted and no --encryption-provider-config is set")
        return value
    return ACTIVE.from_storage(value)


# What `kubeling up`/`init` write lives with the CLI's shared code (kubeling imports nothing of controlplane).
from kubeling.encryption_config import new_config, write_config  # noqa: E402,F401
