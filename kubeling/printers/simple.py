"""Rows for kinds with a couple of plain columns: namespaces, configmaps,
leases, and the default (NAME, CREATED AT) for anything without a printer."""
from __future__ import annotations

from datetime import datetime

from kubeling import timefmt
from kubeling.printers.access import get, mapping, text
from kubeling.printers.columns import AGE_DESCRIPTION, age_column, column, name_column

NAMESPACE_COLUMNS = [name_column(), column("Status", "The status of the namespace"), age_column()]
CONFIGMAP_COLUMNS = [
    name_column(),
    column("Data", "Data contains the configuration data."),
    age_column(),
]
LEASE_COLUMNS = [
    name_column(),
    column("Holder", "holderIdentity contains the identity of the holder of a current lease."),
    age_column(),
]
# kube-apiserver's fallback for resources without a printer.
DEFAULT_COLUMNS = [name_column(), column("Created At", AGE_DESCRIPTION, type="date")]


def _age(obj: dict, now: datetime) -> str:
    return timefmt.since(get(obj, "metadata", "creationTimestamp"), now)


def namespace_row(ns: dict, now: datetime) -> dict:
    return {"cells": [text(ns, "metadata", "name"), text(ns, "status", "phase"), _age(ns, now)]}


def configmap_row(cm: dict, now: datetime) -> dict:
    count = len(mapping(cm, "data")) + len(mapping(cm, "binaryData"))
    return {"cells": [text(cm, "metadata", "name"), count, _age(cm, now)]}


def lease_row(lease: dict, now: datetime) -> dict:
    return {"cells": [text(lease, "metadata", "name"), text(lease, "spec", "holderIdentity"),
                      _age(lease, now)]}


def default_row(obj: dict, now: datetime) -> dict:
    return {"cells": [text(obj, "metadata", "name"),
                      text(obj, "metadata", "creationTimestamp")]}
