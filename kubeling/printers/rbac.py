"""Rows for RBAC kinds, as kube-apiserver prints them (printRole, printRoleBinding):
roles NAME, CREATED AT; bindings NAME, ROLE, AGE and with -o wide USERS, GROUPS,
SERVICEACCOUNTS."""
from __future__ import annotations

from datetime import datetime

from kubeling import timefmt
from kubeling.printers.access import get, text
from kubeling.printers.columns import AGE_DESCRIPTION, age_column, column, name_column

ROLE_COLUMNS = [name_column(), column("Created At", AGE_DESCRIPTION, type="date")]
BINDING_COLUMNS = [
    name_column(),
    column("Role", "Role"),
    age_column(),
    column("Users", "Users in the roleBinding", priority=1),
    column("Groups", "Groups in the roleBinding", priority=1),
    column("ServiceAccounts", "ServiceAccounts in the roleBinding", priority=1),
]


def role_row(role: dict, now: datetime) -> dict:
    return {"cells": [text(role, "metadata", "name"), text(role, "metadata", "creationTimestamp")]}


def binding_row(binding: dict, now: datetime) -> dict:
    users, groups, sas = [], [], []
    subjects = get(binding, "subjects")
    for s in subjects if isinstance(subjects, list) else ():
        kind, name = text(s, "kind"), text(s, "name")
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            ns = text(s, "namespace")
            sas.append(f"{ns}/{name}" if ns else name)
    role = f'{text(binding, "roleRef", "kind")}/{text(binding, "roleRef", "name")}'
    return {"cells": [text(binding, "metadata", "name"), role,
                      timefmt.since(get(binding, "metadata", "creationTimestamp"), now),
                      ", ".join(users), ", ".join(groups), ", ".join(sas)]}
