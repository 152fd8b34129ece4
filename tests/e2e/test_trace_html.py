"""The trace's HTML page in a real headless browser (Debian's chromium): it renders, every
step has its bar in the DOM with a width, and a screenshot of it is not blank. The page
is built from events a real walkthrough run recorded (tests/unit/trace/fixtures)."""
from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from kubeling.trace import render
from kubeling.trace.timeline import build_creation, build_deletion

pytestmark = pytest.mark.e2e
FIXTURE = Path(__file__).parent.parent / "unit" / "trace" / "fixtures" / "walkthrough-deletion.json"


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: run scripts/setup")
    return exe


def browse(page: Path, *args: str) -> subprocess.CompletedProcess:
    # A profile of its own under the test's directory: nothing is left in $HOME.
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={page.parent / 'profile'}", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG (enough to see it is not blank)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


@pytest.fixture
def page(tmp_path) -> tuple[Path, list]:
    rec = json.loads(FIXTURE.read_text())
    tls = [build_creation(None, rec["uid"], "web", "walk", rec["events"], [], [rec["node"]]),
           build_deletion(rec["uid"], "web", "walk", rec["events"], [rec["node"]])]
    path = tmp_path / "trace.html"
    path.write_text(render.as_html(tls), encoding="utf-8")  # type: ignore[arg-type]
    return path, tls


def test_every_step_has_a_bar_in_the_rendered_dom(page):
    path, tls = page
    dom = browse(path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    bars = dict(re.findall(r'<div class="bar[^"]*" data-step="([^"]+)"[^>]*style="[^"]*width:\s*([\d.]+)%', dom.stdout))
    for tl in tls:
        for s in tl.steps:
            assert s.key in bars, (s.key, dom.stdout[:3000])
    # Every happened step that took time has a bar with a width; the slowest is marked.
    assert all(float(bars[s.key]) > 0 for tl in tls for s in tl.steps if s.duration), bars
    assert dom.stdout.count('class="bar slowest"') == len(tls)


def test_a_screenshot_of_the_page_is_not_blank(page):
    path, _ = page
    shot = path.parent / "trace.png"
    r = browse(path, f"--screenshot={shot}", "--window-size=1400,900", "--hide-scrollbars")
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    width, height, raw = png_pixels(shot.read_bytes())
    assert (width, height) == (1400, 900)
    # A blank page is one colour; the bars, text and lanes give many, and a good share of
    # the pixels are not the white background.
    assert len(set(raw)) > 50
    assert sum(1 for b in raw[::7] if b < 200) > len(raw[::7]) // 100
