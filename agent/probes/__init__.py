"""One module per probe handler (kubelet's pkg/probe): http, tcp, exec; plus
the port lookup they share and the preStop hook runner."""
from __future__ import annotations

from dataclasses import dataclass

SUCCESS = "success"
# A success kubelet reports with a ProbeWarning event (e.g. a redirect to another host).
WARNING = "warning"
FAILURE = "failure"


@dataclass(frozen=True)
class Outcome:
    result: str
    output: str = ""


class ProbeError(Exception):
    """The probe could not be run at all (bad port name, no pod IP, runtime
    error). Kubelet reports these as 'errored' and does not count them."""
