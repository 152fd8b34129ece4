"""Records and the abstract interface of a container runtime (CRI-like)."""
from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

# Labels as Kubernetes' dockershim / cri-dockerd put them on containers.
POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
DOCKER_TYPE = "io.kubernetes.docker.type"
SANDBOX_ID = "io.kubernetes.sandbox.id"
# Annotations kubelet keeps on containers; Docker has labels only.
CONTAINER_HASH = "annotation.io.kubernetes.container.hash"
RESTART_COUNT = "annotation.io.kubernetes.container.restartCount"
INIT_CONTAINER = "annotation.io.kubernetes.container.init"
ATTEMPT = "annotation.io.kubernetes.attempt"
TYPE_SANDBOX = "podsandbox"
TYPE_CONTAINER = "container"
SANDBOX_NAME = "POD"


class RuntimeError_(Exception):
    """The engine refused or failed an operation."""


class ImageNotFound(RuntimeError_):
    """The image is not present locally."""


class PullError(RuntimeError_):
    """Pulling the image failed (no registry, unknown image, timeout)."""


class NotFound(RuntimeError_):
    """The container or sandbox does not exist (any more): callers branch on the type,
    never on an engine's error text."""


@dataclass(frozen=True)
class Mount:
    """A host path bound into a container (CRI's Mount)."""

    host_path: str
    container_path: str
    read_only: bool = False


# What happened to a container, as the runtime reports it (CRI's ContainerEventType).
STARTED, STOPPED, DELETED = "started", "stopped", "deleted"


@dataclass(frozen=True)
class ContainerEvent:
    """One change of a container or sandbox: enough for the PLEG to know which pod to sync."""

    container_id: str
    pod_uid: str
    type: str   # STARTED | STOPPED | DELETED


@dataclass
class ContainerRecord:
    """What the runtime knows about one container (or sandbox)."""

    id: str
    name: str                 # the container's name in the pod; "POD" for a sandbox
    pod_name: str
    pod_namespace: str
    pod_uid: str
    attempt: int
    is_sandbox: bool
    sandbox_id: str
    state: str                # created | running | exited | unknown
    image: str = ""
    image_id: str = ""
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""
    # Seconds since the epoch; 0 when it has not happened.
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    pid: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    runtime: str = "docker"   # the runtime's name, the scheme of containerID

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def container_uri(self) -> str:
        """containerStatuses[].containerID: `<runtime>://<id>`."""
        return f"{self.runtime}://{self.id}"

    @property
    def image_ref(self) -> str:
        """containerStatuses[].imageID as kubelet reports it: dockershim prefixed the
        image id with docker://, a CRI runtime's image reference is used as it is."""
        if not self.image_id:
            return ""
        return f"docker://{self.image_id}" if self.runtime == "docker" else self.image_id

    @property
    def container_hash(self) -> str:
        return self.labels.get(CONTAINER_HASH, "")

    @property
    def init(self) -> bool:
        return self.labels.get(INIT_CONTAINER) == "true"


@dataclass(frozen=True)
class ImageRecord:
    """One image the runtime holds (CRI's Image): `kubeling node images` lists them."""

    id: str
    repo_tags: tuple[str, ...]
    size: int


@dataclass
class SandboxStatus:
    """CRI's PodSandboxStatus, the part the agent reads: state and the pod's IPs."""

    id: str
    state: str                # running | exited | unknown
    pod_ips: list[str] = field(default_factory=list)


@dataclass
class RuntimeStatus:
    """CRI's RuntimeStatus conditions: RuntimeReady and NetworkReady."""

    runtime_ready: bool
    network_ready: bool


@dataclass
class SandboxConfig:
    pod_name: str
    pod_namespace: str
    pod_uid: str
    attempt: int
    image: str
    hostname: str
    host_network: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerConfig:
    name: str
    pod_name: str
    pod_namespace: str
    pod_uid: str
    attempt: int
    sandbox_id: str
    image: str
    entrypoint: list[str] | None = None   # None: the image's
    cmd: list[str] | None = None          # None: the image's
    env: list[tuple[str, str]] = field(default_factory=list)
    working_dir: str | None = None
    mounts: list[Mount] = field(default_factory=list)
    memory_limit: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpu_shares: int | None = None
    tty: bool = False
    stdin: bool = False
    init: bool = False
    container_hash: str = ""
    labels: dict[str, str] = field(default_factory=dict)


class Process(Protocol):
    """One interactive exec or attach session, whatever the engine: output as
    (1 stdout | 2 stderr, bytes) until None, stdin, terminal resizes, the exit code."""

    async def read(self) -> tuple[int, bytes] | None: ...

    async def write(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    async def resize(self, width: int, height: int) -> None: ...

    async def exit_code(self, timeout: float = 5) -> int | None:
        """An exec's exit code once its output ended (None for attach)."""

    def close(self) -> None:
        """End the session (idempotent): reads return None."""


class Runtime(abc.ABC):
    """Blocking engines hide behind async methods; all calls may raise RuntimeError_."""

    # nodeInfo.containerRuntimeVersion is "<runtime_name>://<version()>"; pod statuses'
    # containerID is "<runtime_name>://<id>".
    runtime_name: str = "unknown"

    @abc.abstractmethod
    async def version(self) -> str: ...

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    # sandboxes: the runtime owns the pod network (set up on run, torn down on stop)
    @abc.abstractmethod
    async def run_sandbox(self, cfg: SandboxConfig) -> ContainerRecord: ...

    @abc.abstractmethod
    async def stop_sandbox(self, sandbox_id: str) -> None:
        """Network torn down (once), the sandbox stopped if it runs; idempotent."""

    @abc.abstractmethod
    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Idempotent: a sandbox already gone is not an error."""

    @abc.abstractmethod
    async def list_sandboxes(self, pod_uid: str | None = None) -> list[ContainerRecord]:
        """Also the sandboxes the runtime only remembers (container gone, network
        not yet torn down), so a pod's teardown reaches them."""

    @abc.abstractmethod
    async def sandbox_status(self, sandbox_id: str) -> SandboxStatus | None: ...

    @abc.abstractmethod
    async def status(self) -> RuntimeStatus: ...

    def network_ready(self) -> bool:
        """The NetworkReady condition without a round trip (pod admission and node
        status ask it often); status() reports the same."""
        return True

    # containers (inspect/list also show sandboxes, is_sandbox set: the relist and
    # port-forward read both in one call)
    @abc.abstractmethod
    async def create_container(self, cfg: ContainerConfig) -> str: ...

    @abc.abstractmethod
    async def start_container(self, container_id: str) -> None: ...

    @abc.abstractmethod
    async def stop_container(self, container_id: str, timeout: int) -> None: ...

    @abc.abstractmethod
    async def remove_container(self, container_id: str) -> None:
        """Idempotent: a container already gone is not an error."""

    @abc.abstractmethod
    async def inspect(self, container_id: str) -> ContainerRecord | None: ...

    @abc.abstractmethod
    async def list(self, pod_uid: str | None = None) -> list[ContainerRecord]: ...

    # images
    @abc.abstractmethod
    async def image_id(self, image: str) -> str | None: ...

    @abc.abstractmethod
    async def pull(self, image: str) -> str: ...

    @abc.abstractmethod
    async def image_config(self, image: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def list_images(self) -> list[ImageRecord]: ...

    # streams
    @abc.abstractmethod
    def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
             since: float | None = None, timestamps: bool = False) -> AsyncIterator[bytes]: ...

    @abc.abstractmethod
    def events(self) -> AsyncIterator[ContainerEvent]: ...

    @abc.abstractmethod
    async def exec(self, container_id: str, cmd: list[str], timeout: float = 10) -> tuple[int, bytes]:
        """Raises NotFound when the container is gone."""

    async def exec_stream(self, container_id: str, cmd: list[str], *, stdin: bool, stdout: bool, stderr: bool,
                          tty: bool, size: tuple[int, int] | None = None) -> Process:
        """An interactive exec (kubectl exec); size: the terminal's first (width, height)."""
        raise RuntimeError_("exec streams are not supported by this runtime")

    async def attach_stream(self, container_id: str, *, stdin: bool, stdout: bool, stderr: bool,
                            size: tuple[int, int] | None = None) -> Process:
        """A session on the container's main process (kubectl attach)."""
        raise RuntimeError_("attach is not supported by this runtime")

    async def sandbox_netns(self, sandbox_id: str) -> str | None:
        """The path of a running sandbox's network namespace (port-forward connects
        from inside it); None when it does not run."""
        return None

    async def release_unowned_sandboxes(self) -> list[str]:
        """Tear down the network of remembered sandboxes that name no pod and whose
        container is gone, and forget them: no pod's teardown would ever reach them and
        their IPs would leak. Returns their IDs. Runtimes that keep no such memory of
        their own (a CRI runtime tears down its sandboxes itself) have none."""
        return []

    async def close(self) -> None:
        return None
