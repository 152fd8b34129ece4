"""The EncryptionConfiguration (apiserver.config.k8s.io/v1) that `kubeling up` and
`kubeling init` write for the apiserver's --encryption-provider-config: Secrets
under aescbc with one new random 32-byte key, then identity (older plaintext stays
readable). controlplane/apiserver/encryption.py reads it."""
from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"


def new_config(key: bytes | None = None, provider: str = "aescbc", key_name: str = "key1") -> str:
    secret = base64.b64encode(key or os.urandom(32)).decode()
    return yaml.safe_dump({
        "apiVersion": API_VERSION, "kind": KIND,
        "resources": [{"resources": ["secrets"],
                       "providers": [{provider: {"keys": [{"name": key_name, "secret": secret}]}},
                                     {"identity": {}}]}],
    }, sort_keys=False)


def write_config(path: Path, provider: str = "aescbc") -> bool:
    """Write a new config readable by root only (0600) unless one is there: a new key
    would make the stored Secrets unreadable. True when it wrote one."""
    path = Path(path)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(new_config(provider=provider))
    return True
