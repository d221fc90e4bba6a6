"""report.html in a real browser: headless Chromium renders it; the rendered DOM and a
screenshot show every section and every image, sortable tables and no script errors.

The page under test gets two probe scripts (a copy of it does): one at the top of <head> that
records errors and console.error calls, one at the end that, once the page has loaded, writes
what it finds (sections, images decoded, a sort by clicking, the layout at laptop size) into a
<pre id="probe"> that ``--dump-dom`` prints. A control page with a broken image and a script
error shows that the probe catches both.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from effnet.host import torch_threads
from effnet.report import write_report
from helpers.report import make_run
from helpers.torch_threads import one_torch_thread as one_torch_thread  # autouse

pytest.importorskip("matplotlib")
pytest.importorskip("captum")
pytestmark = pytest.mark.filterwarnings("ignore:skipping")

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
if CHROMIUM is None:
    pytest.skip(
        "no Chromium to render the report with: apt-get install -y chromium (.ci/run does)",
        allow_module_level=True,
    )

LAPTOP = (1366, 768)
SECTIONS = ["curves", "confusion", "per-class", "gallery", "calibration", "config", "split"]

_CATCH = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var tag = e.target && e.target.tagName;
  var what = e.message || (tag ? 'failed to load ' + tag : '?');
  window.__errors.push('error: ' + what);
}, true);
window.addEventListener('unhandledrejection', function (e) {
  window.__errors.push('unhandled rejection: ' + e.reason);
});
(function () {
  var original = console.error;
  console.error = function () {
    window.__errors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    return original.apply(console, arguments);
  };
})();
</script>"""

_PROBE = """<script>
window.addEventListener('load', function () {
  var out = {errors: window.__errors};
  out.sections = Array.prototype.map.call(document.querySelectorAll('section[id]'),
    function (s) { return s.id; });
  out.images = Array.prototype.map.call(document.images, function (img) {
    var box = img.getBoundingClientRect();
    return {alt: img.alt, complete: img.complete, natural: [img.naturalWidth, img.naturalHeight],
            shown: [Math.round(box.width), Math.round(box.height)]};
  });
  out.cards = document.querySelectorAll('.card').length;
  var table = document.getElementById('per-class-table');
  if (table) {
    var recall = table.tHead.rows[0].cells[2];
    var column = function () {
      return Array.prototype.map.call(table.tBodies[0].rows,
        function (r) { return parseFloat(r.cells[2].getAttribute('data-v')); });
    };
    recall.click();
    out.ascending = column();
    recall.click();
    out.descending = column();
    out.sortState = recall.getAttribute('aria-sort');
  }
  var summary = document.getElementById('summary-line').getBoundingClientRect();
  out.summaryBottom = summary.bottom;
  out.viewport = [window.innerWidth, window.innerHeight];
  out.scrollWidth = document.documentElement.scrollWidth;
  out.scrollHeight = document.documentElement.scrollHeight;
  out.errors = window.__errors;
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _chromium(tmp: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--virtual-time-budget=10000",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args, url], capture_output=True, text=True, timeout=120, check=False
    )


def _probe(page: Path, tmp: Path) -> tuple[dict[str, Any], str]:
    """Render a probed copy of ``page`` at laptop size: (probe results, Chromium's log)."""
    text = page.read_text()
    probed = text.replace("<head>", "<head>" + _CATCH, 1).replace("</body>", _PROBE + "</body>")
    copy = page.with_name("probe-" + page.name)
    copy.write_text(probed)
    done = _chromium(tmp, copy.as_uri(), f"--window-size={LAPTOP[0]},{LAPTOP[1]}", "--dump-dom")
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the probe did not report (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1))), done.stderr


def _console_errors(log: str) -> list[str]:
    """Page errors Chromium logs (``CONSOLE`` lines with an uncaught exception or an error)."""
    return [
        line
        for line in log.splitlines()
        if "CONSOLE" in line and ("Uncaught" in line or "Error" in line or "error" in line)
    ]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with torch_threads(1):
        return write_report(make_run(tmp_path_factory.mktemp("browser")))


def test_every_section_and_image_renders_without_errors(report: Path, tmp_path: Path) -> None:
    probe, log = _probe(report, tmp_path)
    assert probe["errors"] == [] and _console_errors(log) == []
    assert probe["sections"][0] == "summary" and set(SECTIONS) <= set(probe["sections"])
    # three plots (curves, confusion, reliability) and a picture + a map per gallery card
    images = probe["images"]
    assert probe["cards"] > 0 and len(images) == 3 + 2 * probe["cards"]
    for img in images:
        assert img["complete"] and min(img["natural"]) > 0, img  # decoded
        assert min(img["shown"]) > 0, img  # laid out with a size
    assert sum("class-activation map" in img["alt"] for img in images) == probe["cards"]
    # the per-class table sorts when its header is clicked
    assert probe["ascending"] == sorted(probe["ascending"])
    assert probe["descending"] == sorted(probe["ascending"], reverse=True)
    assert probe["sortState"] == "descending"
    # on a laptop screen the summary is read first, without scrolling, and nothing is cut off
    width, height = probe["viewport"]  # the window less Chromium's own frame
    assert width == LAPTOP[0] and 500 < height <= LAPTOP[1]
    assert probe["summaryBottom"] < height / 2
    assert probe["scrollWidth"] <= width


def test_screenshot_shows_the_page(report: Path, tmp_path: Path) -> None:
    probe, _ = _probe(report, tmp_path)
    shot = tmp_path / "report.png"
    height = int(probe["scrollHeight"])
    done = _chromium(
        tmp_path, report.as_uri(), f"--window-size={LAPTOP[0]},{height}", f"--screenshot={shot}"
    )
    assert shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as img:
        assert img.size == (LAPTOP[0], height)
        pixels = np.asarray(img.convert("L"), dtype=np.float64)
    # not blank: text and plots on the white page, in the first screen and all the way down
    assert pixels[: LAPTOP[1]].std() > 20 and pixels[-LAPTOP[1] :].std() > 5
    assert (pixels < 80).mean() > 0.005  # dark text and lines


def test_the_probe_catches_broken_images_and_script_errors(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
        '<section id="summary"><div id="summary-line">x</div></section>'
        '<img alt="broken" src="data:image/png;base64,AAAA">'
        "<script>console.error('boom'); undefinedFunction();</script></body></html>"
    )
    probe, _ = _probe(page, tmp_path)
    assert any("boom" in e for e in probe["errors"])
    assert any("undefinedFunction" in e for e in probe["errors"])
    (img,) = probe["images"]
    assert img["natural"] == [0, 0]
