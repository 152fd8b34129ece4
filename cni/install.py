"""Install the kubeling-bridge and kubeling-ipam executables: `python -m cni.install [--dest D]`.

Each is a few lines of Python run with this interpreter in isolated mode (-I -S: no site
import, ~10 ms start) that calls cni.shim; the paths needed for the in-process fallback
are written into the file, so a CNI runtime can run it with nothing but env + stdin.
"""
from __future__ import annotations

import argparse
import os
import site
import sys
from pathlib import Path

DEFAULT_DEST = "/opt/cni/bin"
PLUGINS = {"kubeling-bridge": "bridge", "kubeling-ipam": "ipam"}


def render(plugin: str, python: str, root: str, site_dirs: list[str]) -> str:
    return (
        f"#!{python} -IS\n"
        f"# kubeling-cni-shim: {plugin}\n"
        "import sys\n"
        f"sys.path.insert(0, {root!r})\n"
        "from cni.shim import main\n"
        f"main({plugin!r}, {site_dirs!r})\n"
    )


def install(dest: str = DEFAULT_DEST, python: str | None = None) -> list[str]:
    """Write both executables into `dest` (idempotent); returns their paths."""
    python = python or sys.executable
    root = str(Path(__file__).resolve().parent.parent)
    site_dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    os.makedirs(dest, exist_ok=True)
    paths = []
    for name, plugin in PLUGINS.items():
        path = os.path.join(dest, name)
        content = render(plugin, python, root, site_dirs)
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
    opts = parser.parse_args(argv)
    for p in install(opts.dest):
        print(p)


if __name__ == "__main__":
    main()
