"""Install the kubeling-bridge and kubeling-ipam executables: `python -m cni.install [--dest D]`.

Each is a few lines of Python run in isolated mode (-I -S: no site import) that calls
cni.shim; the paths needed for the in-process fallback are written into the file, so a CNI
runtime can run it with nothing but env + stdin.

The shim's forwarding path is stdlib-only, so it may run on a faster-starting interpreter than
kubeling's (a pyenv/venv python linked against libpython starts ~4 ms slower here than Debian's
/usr/bin/python3); the fallback then switches to kubeling's interpreter, where pyroute2 lives.
"""
from __future__ import annotations

import argparse
import os
import site
import subprocess
import sys
from pathlib import Path

DEFAULT_DEST = "/opt/cni/bin"
PLUGINS = {"kubeling-bridge": "bridge", "kubeling-ipam": "ipam"}


SYSTEM_PYTHON = "/usr/bin/python3"


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


def install(dest: str = DEFAULT_DEST, python: str | None = None, shim_python: str | None = None) -> list[str]:
    """Write both executables into `dest` (idempotent); returns their paths.

    `python` (default: this interpreter) does the work when no daemon answers; `shim_python`
    (default: /usr/bin/python3 when usable, else `python`) starts for every call."""
    python = python or sys.executable
    if shim_python is None:
        shim_python = SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) and _usable(SYSTEM_PYTHON) else python
    root = str(Path(__file__).resolve().parent.parent)
    site_dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    os.makedirs(dest, exist_ok=True)
    paths = []
    for name, plugin in PLUGINS.items():
        path = os.path.join(dest, name)
        content = render(plugin, shim_python, python, root, site_dirs)
        try:
            with open(path) as f:
                current = f.read()
        except OSError:
            current = None
        if current != content or not os.access(path, os.X_OK):
            tmp = f"{path}.tmp.{os.getpid()}"
            with open(tmp, "w") as f:
                f.write(content)
            os.chmod(tmp, 0o755)
            os.replace(tmp, path)  # a runtime never sees a half-written plugin
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cni.install")
    parser.add_argument("--dest", default=DEFAULT_DEST)
    parser.add_argument("--shim-python", help="interpreter started for every call (default: "
                        f"{SYSTEM_PYTHON} when usable, else this one)")
    opts = parser.parse_args(argv)
    for p in install(opts.dest, shim_python=opts.shim_python):
        print(p)


if __name__ == "__main__":
    main()
