"""Rows for Secrets (NAME TYPE DATA AGE) and ServiceAccounts (NAME SECRETS AGE),
kube-apiserver's columns for them."""
from __future__ import annotations

from datetime import datetime

from kubeling import timefmt
from kubeling.printers.access import get, mapping, text
from kubeling.printers.columns import age_column, column, name_column

SECRET_COLUMNS = [
    name_column(),
    column("Type", "Used to facilitate programmatic handling of secret data."),
    column("Data", "Data contains the secret data.", type="integer"),
    age_column(),
]
SERVICEACCOUNT_COLUMNS = [
    name_column(),
    column("Secrets", "Secrets is a list of the secrets in the same namespace that pods running using this "
                      "ServiceAccount are allowed to use.", type="integer"),
    age_column(),
]


def _age(obj: dict, now: datetime) -> str:
    return timefmt.since(get(obj, "metadata", "creationTimestamp"), now)


def secret_row(secret: dict, now: datetime) -> dict:
    return {"cells": [text(secret, "metadata", "name"), text(secret, "type"),
                      len(mapping(secret, "data")), _age(secret, now)]}


def serviceaccount_row(sa: dict, now: datetime) -> dict:
    secrets = sa.get("secrets") if isinstance(sa.get("secrets"), list) else []
    return {"cells": [text(sa, "metadata", "name"), len(secrets), _age(sa, now)]}
