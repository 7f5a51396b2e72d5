"""End-to-end: serve the tuner notebook with Voilà on localhost, drive it in headless Chromium, move a slider,
assert the shown decision and the plot change, and save a screenshot (tests/artifacts/tuner.png)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
NEEDS = [shutil.which("chromium"), shutil.which("chromedriver")]
if not all(NEEDS):
    if os.environ.get("CI"):
        raise RuntimeError(".ci/run must install chromium and chromium-driver for the browser test")
    pytest.skip("chromium/chromedriver not installed (apt-get install chromium chromium-driver)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NOTEBOOK = "notebooks/07_interactive_tuner.ipynb"
# Every host but this machine fails to resolve inside Chromium at once: the page's external resources (badges, CDN
# fonts) are unreachable offline, and a request that hangs instead of failing must not hold the page's scripts.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


@pytest.fixture(scope="module", params=["standalone", "jupyter-server"])
def voila_url(request, tmp_path_factory, browser):
    """The tuner served two ways: standalone ``voila NOTEBOOK``, and the route Binder's badge opens, Jupyter Server
    with Voilà's server extension at ``/voila/render/NOTEBOOK``."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("voila") / f"{request.param}.log", "w")
    if request.param == "standalone":
        cmd = [sys.executable, "-m", "voila", NOTEBOOK, "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
               "--show_tracebacks=True"]
        ready, url = None, f"http://127.0.0.1:{port}/"
    else:
        cmd = [sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password="]
        ready, url = f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}/voila/render/{NOTEBOOK}"
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, STMLTM_FAST="1"))
    for _ in range(120):
        try:
            if ready is None:  # standalone: every page request starts a kernel of its own, so wait for the port
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            else:
                urllib.request.urlopen(ready, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"{request.param} did not start")
    yield url, Path(log.name)
    browser.get("about:blank")  # leave the page before its server goes (no refused requests into the next test)
    browser.get_log("browser")
    proc.terminate()
    try:
        proc.wait(timeout=60)  # Jupyter Server shuts its kernels down first
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)
    assert "Traceback" not in Path(log.name).read_text(), f"the {request.param} server logged a traceback"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
              OFFLINE,
              "--window-size=1280,1800"):
        opts.add_argument(a)
    opts.page_load_strategy = "eager"  # Voilà streams the executed notebook; wait on elements instead
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    drv.set_page_load_timeout(300)
    drv.command_executor.client_config.timeout = 330  # the HTTP client waits as long as the page load may take
    yield drv
    drv.quit()


from stmltm_nb.decision.switching import VERDICTS  # noqa: E402 - the tuner's three verdicts


def _decision(drv):
    els = [e.text for e in drv.find_elements("css selector", ".widget-html-content") if e.text.strip()]
    return next((t for t in els if any(v in t for v in (*VERDICTS, "Invalid"))), "")


def _plot_state(drv):
    return drv.execute_script(
        "const p = document.querySelectorAll('.js-plotly-plot');"
        "if (!p.length) return null;"
        "const d = p[0].data; return JSON.stringify([d[0].y, d[2].y]);")


def _load_and_move_the_q_slider(browser, url: str) -> None:
    """Open the tuner, wait for its decision and plot, press End on the "future queries Q" slider and wait until
    both change (every wait raises selenium's ``TimeoutException``)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 180).until(lambda d: _decision(d) != "")
    WebDriverWait(browser, 180).until(lambda d: _plot_state(d) is not None)
    before, plot_before = _decision(browser), _plot_state(browser)
    sliders = browser.find_elements(By.CSS_SELECTOR, ".widget-slider")
    labels = [s.text for s in sliders]
    idx = next(i for i, t in enumerate(labels) if "future queries Q" in t)
    handle = sliders[idx].find_element(By.CSS_SELECTOR, ".noUi-handle")
    handle.click()
    handle.send_keys(Keys.END)
    WebDriverWait(browser, 180).until(lambda d: _decision(d) != before)
    WebDriverWait(browser, 180).until(lambda d: _plot_state(d) != plot_before)


def test_tuner_in_a_real_browser(voila_url, browser):
    from selenium.common.exceptions import TimeoutException

    url, server_log = voila_url
    browser.get("about:blank")
    browser.get_log("browser")  # drain: the check below covers this page only
    try:
        _load_and_move_the_q_slider(browser, url)
    except TimeoutException as e:  # the server's own account of where it got stuck (kernel start, execution)
        console = [f"{x['level']} {x['message'][:300]}" for x in browser.get_log("browser")][-20:]
        pytest.fail(f"{url}: {e.msg}; the server's log ends:\n{server_log.read_text()[-4000:]}\n"
                    f"the browser's console ends:\n" + "\n".join(console))
    after = _decision(browser)
    assert any(v in after for v in VERDICTS), after
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "tuner.png"))
    assert (ARTIFACTS / "tuner.png").stat().st_size > 10_000
    # external resources (CDN fonts, badge images) are unreachable offline; everything else must be clean
    # Voilà's own bundle may log a federated-extension loading error ("The getter for the shared module is not a
    # function") from voila/static/*.js; it is not this project's code and does not affect the widgets.
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
              and not (e.get("source") == "network" and "127.0.0.1" not in e["message"])
              and not ("voila/static/" in e["message"] and "shared module" in e["message"])]
    assert not errors, errors


def test_demo_report_opens_in_chromium_without_errors(browser, tmp_path, tiny_jobs):
    """The report's page (its two plotly figures and the decision) on a demo run of the tiny model: what the page
    shows is checked here, the demo's numbers in tests/test_jobs.py (the same sections run on the default model in
    notebook 00 and by ``make demo``)."""
    from stmltm_nb.apps.demo import run_demo

    res = run_demo(out_dir=tmp_path / "report", fast=True, progress=False)
    assert (tmp_path / "report" / "report.json").exists() and res["decision"]["terms"]["A"] is not None
    browser.get("about:blank")  # leaving Voilà fires its kernel-shutdown request: not this page's errors
    browser.get_log("browser")  # drain, so the check below covers the report page only
    browser.get((tmp_path / "report" / "report.html").as_uri())
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements("css selector", ".js-plotly-plot")) == 2)
    assert "Decision:" in browser.find_element("tag name", "h2").text
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_the_tuner_picture_shows_the_widget_alone(tmp_path):
    """``python -m tools.tuner_picture`` (run by ``make notebooks``) saves a screenshot of the tuner widget: notebook
    07 shows it above the live widget for pages without a kernel."""
    import struct

    from tools.tuner_picture import take

    out = take(tmp_path / "tuner.png")
    head = out.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert 600 < width <= 1280 and 400 < height < 2400, (width, height)  # the widget, not the whole page
