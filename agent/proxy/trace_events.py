"""The proxy's events for `kubeling trace`: when this node's rules for a Service's
changed endpoints were written, measured as Kubernetes measures network programming
(from the EndpointSlice's last-change-trigger-time to the end of the sync).

One event per Service per sync that programmed a change of its endpoints (a change
without a trigger time too: the slice a proxy finds at its start), so the volume
follows endpoint changes, not syncs."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from agent.events import EventRecorder
from kubeling.timefmt import format_micro_time

REASON = "RulesProgrammed"
NODE_ANNOTATION = "trace.kubeling.io/node"
TRIGGER_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"


def programmed_events(recorder: EventRecorder, node: str
                      ) -> Callable[[set[tuple[str, str]], dict[tuple[str, str], float], float], None]:
    def on_programmed(services: set[tuple[str, str]], changes: dict[tuple[str, str], float],
                      written_at: float) -> None:
        for ns, service in sorted(services):
            changed_at = changes.get((ns, service))
            notes = {NODE_ANNOTATION: node}
            message = f"Service rules programmed on node {node}"
            if changed_at is not None:
                notes[TRIGGER_ANNOTATION] = format_micro_time(datetime.fromtimestamp(changed_at, timezone.utc))
                message += f", {max(written_at - changed_at, 0.0):.3f}s after the endpoints changed"
            recorder.object_event({"kind": "Service", "apiVersion": "v1", "namespace": ns, "name": service},
                                  "Normal", REASON, message, at=written_at, annotations=notes)
    return on_programmed
