"""The Secret strategy: `stringData` is merged into `data` on every write and never
stored (Kubernetes does this when it converts the request to its internal type),
`type` defaults to Opaque, and `data` that is not base64 is refused the way the
decoder refuses it (400)."""
from __future__ import annotations

import base64
from typing import Any

from kubeling import errors
from kubeling.validation.secrets import OPAQUE, decoded

from .strategies import Strategy


def merge_string_data(obj: dict[str, Any]) -> None:
    string_data = obj.pop("stringData", None)
    data = obj.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise errors.bad_request('Secret in version "v1" cannot be handled as a Secret: '
                                 "data must be an object")
    for k, v in data.items():
        if isinstance(v, str) and decoded(v) is None:
            raise errors.bad_request(f'Secret in version "v1" cannot be handled as a Secret: '
                                     f"illegal base64 data in key {k!r}")
    if isinstance(string_data, dict):
        for k, v in string_data.items():
            # stringData wins over data for a key in both, as documented for the API.
            data[k] = base64.b64encode(str(v).encode()).decode()
    elif string_data is not None:
        raise errors.bad_request('Secret in version "v1" cannot be handled as a Secret: '
                                 "stringData must be an object")
    if data or "data" in obj:
        obj["data"] = data
    if not obj.get("type"):
        obj["type"] = OPAQUE


class SecretStrategy(Strategy):
    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        merge_string_data(obj)

    def prepare_for_update(self, new: dict[str, Any], old: dict[str, Any], resource: Any) -> None:
        super().prepare_for_update(new, old, resource)
        merge_string_data(new)
