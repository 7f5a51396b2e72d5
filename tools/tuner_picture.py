"""The picture of the tuner that notebook 07 shows above the live widget (``notebooks/figures/tuner.png``), so a page
without a kernel (the repository, nbviewer, the course site) shows what the sliders look like.

Serves notebook 07 with Voilà on localhost, opens it in headless Chromium, waits until the tuner shows its decision
and its plot at the start values (the measured curves), and saves a screenshot of the widget alone. Run from the
checkout's root: ``python -m tools.tuner_picture`` (``make notebooks`` runs it before the build). Needs ``chromium``
and ``chromedriver`` (the browser test uses the same). No model is loaded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.prose import ROOT

NOTEBOOK = "notebooks/07_interactive_tuner.ipynb"
PICTURE = ROOT / "notebooks" / "figures" / "tuner.png"
# the tuner's outermost box: the first widget box that holds the sliders and the plot
FIND_TUNER = ("return [...document.querySelectorAll('.widget-vbox')].find("
              "b => b.querySelector('.widget-slider') && b.querySelector('.js-plotly-plot')) || null;")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def take(out: Path = PICTURE, timeout: float = 120.0, tries: int = 3) -> Path:
    """Serve notebook 07, wait for the tuner, save a PNG of the widget to ``out``; returns ``out``. A Voilà kernel
    that never runs the notebook (seen now and then on 2-core machines: the page stays empty) is retried with a new
    server, ``tries`` times in all."""
    from selenium.common.exceptions import TimeoutException

    for attempt in range(1, tries + 1):
        try:
            return _take(out, timeout)
        except TimeoutException:
            print(f"the tuner did not show within {timeout:.0f} s (try {attempt} of {tries})")
    raise SystemExit(f"the tuner never showed in {tries} tries: notebooks/figures/tuner.png was not retaken")


def _take(out: Path, timeout: float) -> Path:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    from stmltm_nb.decision.switching import VERDICTS

    missing = [b for b in ("chromium", "chromedriver") if not shutil.which(b)]
    if missing:
        raise SystemExit(f"the tuner's picture needs {' and '.join(missing)} (apt-get install chromium chromium-driver)")
    port = _free_port()
    log = tempfile.NamedTemporaryFile("w", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "voila", NOTEBOOK, "--no-browser", f"--port={port}",
                             "--Voila.ip=127.0.0.1"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, STMLTM_FAST="1"))
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--window-size=1280,2400", "--hide-scrollbars",
              "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):  # offline: external hosts fail at once
        opts.add_argument(a)
    opts.page_load_strategy = "eager"
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(240):  # wait for the port, not a page: every page request starts a kernel of its own
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise SystemExit(f"Voilà did not start (log: {log.name})")
        drv.set_page_load_timeout(timeout)
        drv.get(url)

        def ready(d):
            box = d.execute_script(FIND_TUNER)
            return box if box is not None and any(v in box.text for v in VERDICTS) else False

        box = WebDriverWait(drv, timeout).until(ready)
        time.sleep(2)  # the plot's last relayout
        out.parent.mkdir(parents=True, exist_ok=True)
        box.screenshot(str(out))
    finally:
        drv.quit()
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=PICTURE, help="PNG to write (default: notebooks/figures/tuner.png)")
    args = ap.parse_args(argv)
    print("wrote", take(args.out).relative_to(ROOT) if args.out.resolve().is_relative_to(ROOT) else args.out)


if __name__ == "__main__":
    main()
