"""The report in a real browser: headless Chromium opens index.html offline, every image (PNG on
the page, SVG behind each link) loads and no console message or page error appears.

Chromium is Debian's `chromium`, installed by `make test` (its `chromium` step, apt-get as root).
Without it the test skips, saying why, except in CI (`CI` set), where a missing browser fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from helpers import run_raw

from selfconsume.report.html import write_report

PROBE_HEAD = """<script>
window.__errors = [];
const __error = console.error;
console.error = (...a) => { window.__errors.push(a.join(" ")); __error(...a); };
window.addEventListener("error", e => window.__errors.push(
  "error: " + (e.message || (e.target && (e.target.src || e.target.href)))), true);
</script>"""
PROBE_TAIL = """<script>
window.addEventListener("load", async () => {
  const images = [...document.images];
  const svgs = [...document.querySelectorAll('a[href$=".svg"]')].map(a => a.href);
  const loads = src => new Promise(done => {
    const image = new Image();
    image.onload = () => done(image.naturalWidth > 0 ? null : src);
    image.onerror = () => done(src);
    image.src = src;
  });
  const badSvgs = (await Promise.all(svgs.map(loads))).filter(Boolean);
  const bad = images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute("src"));
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({images: images.length, bad, svgs: svgs.length, badSvgs,
                                    errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""
RUNS = [
    {
        "name": "warmup",
        "replicates": 50,
        "generations": 3,
        "data": {"kind": "gaussian", "n_real": 10, "n_test": 2},
        "model": {"kind": "gaussian"},
        "metrics": ["gaussian_params", "w2"],
        "sweep": {"model.params.estimator": ["unbiased", "mle"]},
    },
    {
        "name": "curated",
        "replicates": 10,
        "generations": 2,
        "data": {"kind": "discrete", "n_real": 100, "params": {"probs": [0.4, 0.3, 0.2, 0.1]}},
        "model": {"kind": "discrete"},
        "curation": {
            "kind": "bradley_terry",
            "reward": {"kind": "table", "params": {"values": [0, 1, 2, 3]}},
        },
        "metrics": ["mass", "reward"],
        "sweep": {"scheme": [{"kind": "replace"}, {"kind": "mix", "lam": 0.5}]},
    },
    {
        "name": "kde-2d",
        "replicates": 2,
        "generations": 2,
        "data": {"kind": "eight_gaussians", "n_real": 200, "n_test": 100},
        "model": {"kind": "kde"},
        "metrics": ["modes"],
    },
]


@pytest.fixture(scope="module")
def chromium() -> str:
    """The chromium on PATH; a skip naming `make chromium` without it (a failure in CI)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    why = "chromium is not on PATH: `make chromium` installs it (apt-get, as root)"
    if os.environ.get("CI"):
        pytest.fail(f"{why}; CI needs the browser test")
    pytest.skip(why)


def probe(chromium: str, page) -> tuple[dict, list[str]]:
    """Open a copy of the page with the probe scripts; return its findings and console lines."""
    text = page.read_text()
    text = text.replace('<meta charset="utf-8">', '<meta charset="utf-8">' + PROBE_HEAD, 1)
    copy = page.with_name("probe.html")
    copy.write_text(text.replace("</body>", PROBE_TAIL + "</body>"))
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    args += ["--virtual-time-budget=15000", "--enable-logging=stderr", "--v=0"]
    try:
        done = subprocess.run(
            [*args, "--dump-dom", copy.as_uri()], capture_output=True, text=True, timeout=180
        )
    except subprocess.TimeoutExpired:
        pytest.skip("chromium did not finish within 180 s")
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    if found is None:
        pytest.skip(f"chromium could not render pages here (exit {done.returncode})")
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")), console


@pytest.mark.slow
def test_every_image_loads_without_console_errors(chromium, tmp_path):
    store_path = tmp_path / "store.sqlite"
    for raw in RUNS:
        store, _ = run_raw(raw, store_path)
        store.close()
    page = write_report(store_path, tmp_path / "report")
    found, console = probe(chromium, page)
    assert found["images"] >= 6 and found["svgs"] == found["images"], found
    assert found["bad"] == [] and found["badSvgs"] == [], found
    assert found["errors"] == [] and console == [], (found, console)
    # the probe sees a broken image: delete one figure and look again
    broken = sorted((tmp_path / "report").glob("*.png"))[0]
    broken.unlink()
    found, _ = probe(chromium, page)
    assert found["bad"] == [broken.name] and found["errors"], found
