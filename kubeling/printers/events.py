"""Event rows: LAST SEEN TYPE REASON OBJECT MESSAGE (+ wide columns)."""
from __future__ import annotations

from datetime import datetime

from kubeling import timefmt
from kubeling.printers.access import get, integer, text
from kubeling.printers.columns import NAME_DESCRIPTION, column

COLUMNS = [
    column("Last Seen", "The time at which the most recent occurrence of this event "
                        "was recorded."),
    column("Type", "Type of this event (Normal, Warning), new types could be added "
                   "in the future"),
    column("Reason", "This should be a short, machine understandable string that gives "
                     "the reason for the transition into the object's current status."),
    column("Object", "The object that this event is about."),
    column("Subobject", "If referring to a piece of an object instead of an entire "
                        "object, this string should contain a valid JSON/Go field "
                        "access statement.", priority=1),
    column("Source", "The component reporting this event.", priority=1),
    column("Message", "A human-readable description of the status of this operation."),
    column("First Seen", "The time at which the event was first recorded.", priority=1),
    column("Count", "The number of times this event has occurred.", priority=1),
    # In Kubernetes the event's own name carries format "name", not the first column.
    column("Name", NAME_DESCRIPTION, format="name", priority=1),
]


def _source(event: dict) -> str:
    component = text(event, "source", "component") or text(event, "reportingComponent")
    host = text(event, "source", "host") or text(event, "reportingInstance")
    return f"{component}, {host}" if host else component


def row(event: dict, now: datetime) -> dict:
    first_seen = timefmt.since(get(event, "firstTimestamp"), now)
    if timefmt.parse_time(get(event, "firstTimestamp")) is None:
        first_seen = timefmt.since(get(event, "eventTime"), now)
    last_seen = timefmt.since(get(event, "lastTimestamp"), now)
    if timefmt.parse_time(get(event, "lastTimestamp")) is None:
        last_seen = first_seen
    count = integer(event, "count")
    if isinstance(get(event, "series"), dict):
        last_seen = timefmt.since(get(event, "series", "lastObservedTime"), now)
        count = integer(event, "series", "count")
    elif count == 0:
        count = 1  # singleton events of the events.k8s.io API carry no count

    kind = text(event, "involvedObject", "kind").lower()
    name = text(event, "involvedObject", "name")
    target = f"{kind}/{name}" if name else kind
    return {"cells": [
        last_seen,
        text(event, "type"),
        text(event, "reason"),
        target,
        text(event, "involvedObject", "fieldPath"),
        _source(event),
        text(event, "message").strip(),
        first_seen,
        count,
        text(event, "metadata", "name"),
    ]}
