"""Small facts about ObjectMeta the server sets: times, uids, generated names."""
from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import Any

# Kubernetes' generateName suffix alphabet: no vowels, no confusable characters.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now() -> str:
    return rfc3339(dt.datetime.now(dt.timezone.utc))


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s: str) -> dt.datetime:
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def new_uid() -> str:
    return str(uuid.uuid4())


def generated_name(prefix: str) -> str:
    # Kubernetes cuts the prefix so the result stays within 63 characters.
    return prefix[:58] + "".join(secrets.choice(_ALPHABET) for _ in range(5))


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m
