"""`make book`: the course as a static site built from the executed notebooks (``tools/book.py``). The build is
checked on its files (a page per notebook in order, every local link and anchor resolves, every image file exists,
a static image for every plotly figure) and in a real browser: Chromium opens every page and finds each image
loaded. Needs Sphinx, MyST-NB and the Book theme (the dev extras) and, for the browser, Chromium."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

pytest.importorskip("myst_nb", reason="the book needs the dev extras (myst-nb, sphinx-book-theme)")

from tools.book import build, link_pages, pages  # noqa: E402 - after the skip

PLOTLY_MIME = "application/vnd.plotly.v1+json"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.imgs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "img" and a.get("src"):
            self.imgs.append(a["src"])


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    return page


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("book"))


def test_notebook_links_become_page_links():
    text = "see [the glossary](00_overview.ipynb#g-stm) and [solutions](solutions.ipynb), not [x](https://a.b/c.ipynb)"
    assert link_pages(text) == ('see <a href="00_overview.html#g-stm">the glossary</a> and '
                                '<a href="solutions.html">solutions</a>, not [x](https://a.b/c.ipynb)')


def test_every_notebook_is_a_page_in_course_order(site):
    names = [p.stem for p in pages()]
    assert names[:2] == ["00_overview", "01_stm_buffer"] and names[-1] == "solutions" and len(names) == 12
    for name in names:
        assert (site / f"{name}.html").is_file(), name
    index = (site / "index.html").read_text()
    assert [n for n in names if f'href="{n}.html"' in index] == names


def test_every_local_link_anchor_and_image_resolves(site):
    broken = []
    parsed = {p: _parse(p) for p in site.glob("*.html")}
    for path, page in parsed.items():
        for href in page.hrefs:
            url = urlparse(href)
            if url.scheme or href.startswith(("mailto:", "javascript:")):
                continue
            target = (path.parent / unquote(url.path)).resolve() if url.path else path
            if not target.exists():
                broken.append(f"{path.name}: {href} (no file)")
            elif url.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if url.fragment not in ids:
                    broken.append(f"{path.name}: {href} (no anchor)")
        for src in page.imgs:
            url = urlparse(src)
            if not url.scheme and not (path.parent / unquote(url.path)).is_file():
                broken.append(f"{path.name}: image {src} missing")
    assert not broken, "\n".join(broken[:20])


def test_each_plotly_figure_has_its_static_image_on_the_page(site):
    for nb in pages():
        data = json.loads(nb.read_text())
        outputs = [o for c in data["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
        pngs = sum("image/png" in o.get("data", {}) for o in outputs)
        figures = sum(PLOTLY_MIME in o.get("data", {}) for o in outputs)
        imgs = [s for s in _parse(site / f"{nb.stem}.html").imgs if not urlparse(s).scheme]
        assert len(imgs) >= pngs >= figures, f"{nb.stem}: {len(imgs)} images on the page, {pngs} PNG outputs, " \
                                             f"{figures} plotly figures"


NEEDS = [shutil.which("chromium"), shutil.which("chromedriver")]


@pytest.mark.skipif(not all(NEEDS), reason="chromium/chromedriver not installed")
def test_chromium_opens_every_page_and_every_image_loads(site):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--allow-file-access-from-files", "--window-size=1280,1800"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        for name in ["index", *(p.stem for p in pages())]:
            drv.get((site / f"{name}.html").as_uri())
            title = drv.title
            assert title and "404" not in title, name
            broken = drv.execute_script(
                "return Array.from(document.images).filter(i => i.src.startsWith('file:'))"
                ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);")
            assert not broken, f"{name}: images that did not load: {broken[:5]}"
            text = drv.execute_script("return document.body.innerText;")
            assert not re.search(r"Traceback \(most recent call last\)", text or ""), name
    finally:
        drv.quit()
