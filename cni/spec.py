"""The runtime-facing contract: CNI_* environment, stdin config, versions, result shapes."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

from cni.errors import (
    DECODING_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_ENVIRONMENT,
    UNKNOWN_CONTAINER,
    CniError,
)

CURRENT_VERSION = "1.1.0"
SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")

# Which variables each command cannot do without (libcni/skel behaviour: DEL may lack a netns).
_REQUIRED = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "STATUS": ("CNI_PATH",),
    "GC": ("CNI_PATH",),
    "VERSION": (),
}
_CONTAINER_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
# libcni's rule for a network name: it names the IPAM directory and rule comments, so a
# NUL, a slash or a leading dot must never reach a path or iptables; and it must fit in
# one file name (255 bytes).
NETWORK_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]{0,254}")


@dataclass(frozen=True)
class CmdArgs:
    command: str
    container_id: str
    netns: str
    ifname: str
    args: str
    path: list[str]
    env: Mapping[str, str]

    def args_dict(self) -> dict[str, str]:
        return parse_cni_args(self.args)


def parse_cni_args(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in raw.split(";"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise CniError(INVALID_ENVIRONMENT, f"invalid CNI_ARGS pair {part!r}")
        out[key] = value
    return out


def validate_ifname(name: str) -> None:
    if not name:
        raise CniError(INVALID_ENVIRONMENT, "interface name is empty")
    if len(name) > 15:
        raise CniError(INVALID_ENVIRONMENT, "interface name is too long", f"interface name should be less than 16 characters")
    if name in (".", "..") or any(c in name for c in "/: \t\n"):
        raise CniError(INVALID_ENVIRONMENT, "interface name contains an invalid character or is . or ..", name)


def parse_env(env: Mapping[str, str]) -> CmdArgs:
    command = env.get("CNI_COMMAND", "")
    if not command:
        raise CniError(INVALID_ENVIRONMENT, "required env variables [CNI_COMMAND] missing")
    if command not in COMMANDS:
        raise CniError(INVALID_ENVIRONMENT, f"unknown CNI_COMMAND: {command}")
    missing = [k for k in _REQUIRED[command] if not env.get(k)]
    if missing:
        raise CniError(INVALID_ENVIRONMENT, f"required env variables [{','.join(missing)}] missing")
    cid = env.get("CNI_CONTAINERID", "")
    if command in ("ADD", "CHECK", "DEL"):
        if not cid:
            raise CniError(UNKNOWN_CONTAINER, "missing containerID")
        if not _CONTAINER_ID.match(cid):
            raise CniError(INVALID_ENVIRONMENT, "invalid characters in containerID", cid)
        validate_ifname(env.get("CNI_IFNAME", ""))
    args = env.get("CNI_ARGS", "")
    parse_cni_args(args)
    return CmdArgs(
        command=command,
        container_id=cid,
        netns=env.get("CNI_NETNS", ""),
        ifname=env.get("CNI_IFNAME", ""),
        args=args,
        path=[p for p in env.get("CNI_PATH", "").split(":") if p],
        env=env,
    )


def version_key(version: str) -> tuple[int, int, int]:
    parts = version.split(".")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise CniError(DECODING_FAILURE, f"invalid version {version!r}") from None
    if len(nums) > 3 or not nums:
        raise CniError(DECODING_FAILURE, f"invalid version {version!r}")
    while len(nums) < 3:
        nums.append(0)
    return nums[0], nums[1], nums[2]


# A network config is a few levels deep (ipam.ranges[0][0].subnet is the deepest usual one);
# a hostile one nested past Python's recursion limit must be a decoding error, not a crash.
MAX_CONFIG_DEPTH = 64


def _depth_over(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_config(stdin: bytes) -> dict[str, Any]:
    """Decode the network config and reject versions we cannot speak (code 1)."""
    try:
        conf = json.loads(stdin)
    except (ValueError, UnicodeDecodeError) as e:
        raise CniError(DECODING_FAILURE, f"error parsing configuration: {e}") from None
    except RecursionError:
        conf = too_deep = True
    else:
        too_deep = _depth_over(conf, MAX_CONFIG_DEPTH)
    if too_deep:
        raise CniError(DECODING_FAILURE, f"error parsing configuration: nested deeper than {MAX_CONFIG_DEPTH} levels")
    if not isinstance(conf, dict):
        raise CniError(DECODING_FAILURE, "error parsing configuration: not a JSON object")
    version = conf.get("cniVersion", "")
    if not isinstance(version, str):
        raise CniError(DECODING_FAILURE, "cniVersion must be a string")
    if version == "":
        version = "0.1.0"
    version_key(version)
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            INCOMPATIBLE_VERSION,
            "incompatible CNI versions",
            f'config is "{version}", plugin supports {SUPPORTED_VERSIONS}',
        )
    conf["cniVersion"] = version
    return conf


def config_version_or_default(stdin: bytes) -> str:
    """Best-effort cniVersion for error results, even when the config does not parse."""
    try:
        version = json.loads(stdin).get("cniVersion")
        if isinstance(version, str) and version:
            return version
    except Exception:
        pass
    return CURRENT_VERSION


def version_result(stdin: bytes) -> dict[str, Any]:
    version = CURRENT_VERSION
    if stdin.strip():
        conf = parse_config(stdin)
        version = conf["cniVersion"]
    return {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


def _ip_version(address: str) -> str:
    return "6" if ":" in address else "4"


def normalize_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a result of any supported version into the 1.x shape we work with."""
    out = {k: v for k, v in result.items() if k != "cniVersion"}
    out["ips"] = [{k: v for k, v in ip.items() if k != "version"} for ip in result.get("ips") or []]
    return out


def format_result(result: Mapping[str, Any], cni_version: str) -> dict[str, Any]:
    """Render a 1.x-shaped result in the config's version (0.3/0.4 carry ips[].version)."""
    out: dict[str, Any] = {"cniVersion": cni_version}
    legacy = version_key(cni_version) < (1, 0, 0)
    for key in ("interfaces", "ips", "routes", "dns"):
        if key not in result:
            continue
        value = result[key]
        if key == "ips":
            value = [
                ({"version": _ip_version(ip["address"]), **ip} if legacy else dict(ip)) for ip in value
            ]
        out[key] = value
    out.setdefault("dns", {})
    return out
