"""Column definitions of a Table (meta.k8s.io/v1 TableColumnDefinition)."""
from __future__ import annotations

NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, "
    "although some resources may allow a client to request the generation of an "
    "appropriate name automatically. Name is primarily intended for creation "
    "idempotence and configuration definition. Cannot be updated."
)
AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object "
    "was created. It is not guaranteed to be set in happens-before order across "
    "separate operations. Clients may not set this value. It is represented in "
    "RFC3339 form and is in UTC."
)


def column(name: str, description: str = "", *, type: str = "string",
           format: str = "", priority: int = 0) -> dict:
    return {"name": name, "type": type, "format": format,
            "description": description, "priority": priority}


def name_column() -> dict:
    # format "name" is what lets kubectl prefix `kind/` in multi-kind output.
    return column("Name", NAME_DESCRIPTION, format="name")


def age_column() -> dict:
    return column("Age", AGE_DESCRIPTION)
