"""Open a report in headless Chromium: check every figure decodes, take a screenshot.

Used by the report's test and by ``scripts/report-screenshot`` so a person can look at
what a run's report shows. Debian's ``chromium`` package provides the browser
(``apt-get install -y chromium``); nothing here touches the network.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchtool.errors import UsageError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0", "--hide-scrollbars",
)
MARKER_ID = "bt-render-check"
# Runs first in <head>: collects console errors and failed loads (capture phase sees <img>
# errors); on load, writes what it saw into a marker element that --dump-dom prints.
PROBE = """<script>
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    var t = e.target || {};
    errors.push(e.message || ("failed to load " + (t.currentSrc || t.src || t.href || t.tagName)).slice(0, 120));
  }, true);
  var original = console.error;
  console.error = function () {
    errors.push(Array.prototype.join.call(arguments, " "));
    original.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    var images = Array.prototype.slice.call(document.images);
    var marker = document.createElement("div");
    marker.id = "%s";
    marker.setAttribute("data-images", images.length);
    marker.setAttribute("data-data-urls", images.filter(function (i) { return i.src.indexOf("data:") === 0; }).length);
    var decoded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
    marker.setAttribute("data-decoded", decoded.length);
    marker.setAttribute("data-errors", errors.length);
    marker.textContent = errors.join(" | ");
    document.body.appendChild(marker);
  });
})();
</script>""" % MARKER_ID
CONSOLE_LINE = re.compile(r":CONSOLE[:(]")


def find_chromium() -> str | None:
    """The path of a Chromium-family browser, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass(frozen=True)
class RenderCheck:
    """What the browser saw when it loaded the report."""

    images: int
    data_url_images: int
    decoded: int
    page_errors: list[str]
    console_lines: list[str]  # every console message Chromium logged (a report logs none)

    @property
    def ok(self) -> bool:
        return self.images == self.decoded == self.data_url_images and not self.page_errors and not self.console_lines


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    browser = find_chromium()
    if browser is None:
        raise UsageError(f"no Chromium found (tried {', '.join(BROWSERS)}); install it: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="bt-chromium-") as profile:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def check_rendering(report: str | Path, *, timeout: float = 120) -> RenderCheck:
    """Load ``report`` (with a probe injected into a copy) and count decoded figures and errors."""
    source = Path(report).read_text(encoding="utf-8")
    probed = source.replace("<head>", "<head>" + PROBE, 1) if "<head>" in source else PROBE + source
    with tempfile.TemporaryDirectory(prefix="bt-report-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(probed, encoding="utf-8")
        done = _run(["--virtual-time-budget=10000", "--dump-dom", page.as_uri()], timeout)
    match = re.search(rf'<div id="{MARKER_ID}"([^>]*)>(.*?)</div>', done.stdout, re.S)
    if match is None:
        raise RuntimeError(f"Chromium did not finish loading {report} (exit {done.returncode}): {done.stderr[-2000:]}")
    attrs = dict(re.findall(r'data-([a-z-]+)="(\d+)"', match.group(1)))
    errors = [e for e in match.group(2).split(" | ") if e.strip()]
    console = [line for line in done.stderr.splitlines() if CONSOLE_LINE.search(line)]
    return RenderCheck(int(attrs["images"]), int(attrs["data-urls"]), int(attrs["decoded"]), errors, console)


def screenshot(report: str | Path, png: str | Path, *, width: int = 1400, height: int = 2000,
               timeout: float = 120) -> Path:
    """A PNG of the report's first ``height`` pixels at ``width``; raises when none was written."""
    target = Path(png).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    done = _run([f"--window-size={width},{height}", f"--screenshot={target}", Path(report).absolute().as_uri()],
                timeout)
    if not target.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}")
    return target
