"""Install the kubeling-bridge and kubeling-ipam executables: `python -m cni.install [--dest D]`.

Each is a few lines of Python run in isolated mode (-I -S: no site import) that calls
cni.shim; the paths needed for the in-process fallback are written into the file, so a CNI
runtime can run it with nothing but env + stdin.

The shim's forwarding path is stdlib-only, so it may run on a faster-starting interpreter than
kubeling's (a pyenv/venv python linked against libpython starts ~4 ms slower here than Debian's
/usr/bin/python3); the fallback then switches to kubeling's interpreter, where pyroute2 lives.

Even the fastest interpreter start costs more CPU than the reference bridge plugin's whole ADD
(~14 ms vs ~4 ms on the 2-core test machine), so when a C compiler is present kubeling-bridge is
cni/shim.c compiled (~1 ms to start): it speaks the same wire protocol to the daemon and execs the
Python shim, written beside it as .kubeling-bridge.py, whenever the daemon does not answer.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

DEFAULT_DEST = "/opt/cni/bin"
PLUGINS = {"kubeling-bridge": "bridge", "kubeling-ipam": "ipam"}


SYSTEM_PYTHON = "/usr/bin/python3"
# Plugins served by the compiled forwarder when it builds (IPAM always runs in-process, so a
# forwarder would only add an exec; and cni.delegate recognises our IPAM by its script marker).
COMPILED = ("bridge",)
SHIM_C = Path(__file__).resolve().parent / "shim.c"


def render(plugin: str, shim_python: str, python: str, root: str, site_dirs: list[str]) -> str:
    return (
        f"#!{shim_python} -IS\n"
        f"# kubeling-cni-shim: {plugin}\n"
        "import sys\n"
        f"sys.path.insert(0, {root!r})\n"
        "from cni.shim import main\n"
        f"main({plugin!r}, {[root, *site_dirs]!r}, {python!r})\n"
    )


def _usable(python: str) -> bool:
    try:
        out = subprocess.run([python, "-IS", "-c", "import sys; print(sys.version_info >= (3, 8))"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.stdout.strip() == "True"


def install(dest: str = DEFAULT_DEST, python: str | None = None, shim_python: str | None = None,
            compile_forwarder: bool = True) -> list[str]:
    """Write both executables into `dest` (idempotent); returns their paths.

    `python` (default: this interpreter) does the work when no daemon answers; `shim_python`
    (default: /usr/bin/python3 when usable, else `python`) starts for every call to a Python
    shim; `compile_forwarder` makes kubeling-bridge the compiled forwarder when cc is present."""
    python = python or sys.executable
    if shim_python is None:
        shim_python = SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) and _usable(SYSTEM_PYTHON) else python
    root = str(Path(__file__).resolve().parent.parent)
    site_dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    os.makedirs(dest, exist_ok=True)
    paths = []
    for name, plugin in PLUGINS.items():
        path = os.path.join(dest, name)
        script = render(plugin, shim_python, python, root, site_dirs).encode()
        if plugin in COMPILED and compile_forwarder and _cc() is not None:
            fallback = os.path.join(dest, f".{name}.py")
            _put(fallback, script)
            if not _put_forwarder(path, plugin, fallback):
                _put(path, script)
        else:
            _put(path, script)
        paths.append(path)
    return paths


def _put(path: str, content: bytes, mode: int = 0o755) -> None:
    try:
        with open(path, "rb") as f:
            current = f.read()
    except OSError:
        current = None
    if current != content or os.stat(path).st_mode & 0o777 != mode:
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)  # a runtime never sees a half-written plugin


def _cc() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _put_forwarder(path: str, plugin: str, fallback: str) -> bool:
    """Compile cni/shim.c for `plugin` into `path`, unless what is there came from the same
    source and settings (its hash is kept in a sidecar file). False when it does not compile."""
    source = SHIM_C.read_bytes()
    defines = [f"-DPLUGIN={_c_string(plugin)}", f"-DFALLBACK={_c_string(fallback)}"]
    digest = hashlib.sha256(source + "\0".join(defines).encode()).hexdigest()
    stamp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.build")
    try:
        with open(stamp) as f:
            built = f.read().strip()
    except OSError:
        built = ""
    if built == digest and os.access(path, os.X_OK) and _is_elf(path):
        return True
    tmp = f"{path}.tmp.{os.getpid()}"
    cc = _cc()
    assert cc is not None
    base = [cc, "-O2", "-s", "-Wall", "-Wextra", *defines, "-o", tmp, str(SHIM_C)]
    # Static when libc allows it: no dynamic loader work on each of the runtime's calls.
    for argv in ([*base, "-static"], base):
        if subprocess.run(argv, capture_output=True).returncode == 0:
            break
    else:
        err = subprocess.run(base, capture_output=True, text=True).stderr
        print(f"cni.install: compiling {SHIM_C} failed, installing the Python shim: {err}", file=sys.stderr)
        return False
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    _put(stamp, digest.encode() + b"\n", 0o644)
    return True


def _c_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cni.install")
    parser.add_argument("--dest", default=DEFAULT_DEST)
    parser.add_argument("--shim-python", help="interpreter started for every call (default: "
                        f"{SYSTEM_PYTHON} when usable, else this one)")
    parser.add_argument("--no-compile", action="store_true",
                        help="install kubeling-bridge as a Python script even when cc is present")
    opts = parser.parse_args(argv)
    for p in install(opts.dest, shim_python=opts.shim_python, compile_forwarder=not opts.no_compile):
        print(p)


if __name__ == "__main__":
    main()
