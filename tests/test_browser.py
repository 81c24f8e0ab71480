"""The built book in a real browser, with no network: pages render, equations typeset,
images load, internal links resolve, and the console stays clean.

Headless Chromium (Debian's ``/usr/bin/chromium``, installed by ``scripts/ensure_browser.py``)
is driven by Playwright. The book (``_build/html``, built once per session by
``tests/test_book.py``'s course run) is served over a loopback HTTP server; every request to
anywhere else is blocked and reported, so a page that needs the internet — MathJax from a CDN,
say — fails here as it would for an offline reader. Screenshots of every page go to
``_build/screenshots/``. Skipped, with the reason printed, only where Chromium cannot be found.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.test_book import HTML, ROOT, build_book_once, toc_files  # one course build per session

pytestmark = [pytest.mark.book, pytest.mark.slow]

SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Pages the course most depends on: opened first and reported by name when they exist.
KEY_PAGES = ("index.html", "book/method.html", "book/notebooks/03_attention_crop.html",
             "book/notebooks/05_evaluation.html")

# Every table of the page's article whose content is wider than the room it has: the width of
# its nearest scrolling (or clipping) box, or of the article column when there is none.
TABLE_OVERFLOW_JS = r"""
function tablesWiderThanTheirColumn() {
  const article = document.querySelector('article') || document.querySelector('main') || document.body;
  return [...article.querySelectorAll('table')].map(table => {
    let room = article.clientWidth;
    for (let el = table.parentElement; el && el !== article; el = el.parentElement) {
      if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(el).overflowX)) {
        room = Math.min(room, el.clientWidth);
        break;
      }
    }
    const head = (table.querySelector('tr') || table).innerText.replace(/\s+/g, ' ').trim().slice(0, 60);
    return {head, width: table.scrollWidth, room};
  }).filter(t => t.width > t.room + 2);
}
"""

# JavaScript run in each page after it loaded and MathJax finished.
PAGE_REPORT_JS = "() => {" + TABLE_OVERFLOW_JS + r"""
  const broken = [...document.images]
    .filter(img => !img.complete || img.naturalWidth === 0)
    .map(img => img.getAttribute('src') ? img.getAttribute('src').slice(0, 120) : '(no src)');
  const mathNodes = [...document.querySelectorAll('.math')];
  const untypeset = mathNodes.filter(el => !el.querySelector('mjx-container'))
    .map(el => el.textContent.slice(0, 80));
  const errors = [...document.querySelectorAll('mjx-merror, [data-mjx-error]')]
    .map(el => (el.getAttribute('data-mjx-error') || el.textContent).slice(0, 120));
  // Text outside code, scripts and typeset math that still looks like TeX.
  const skip = new Set(['PRE', 'CODE', 'SCRIPT', 'STYLE', 'TEXTAREA', 'MJX-CONTAINER', 'KBD', 'SAMP']);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let el = node.parentElement; el; el = el.parentElement) {
        if (skip.has(el.tagName) || el.classList.contains('highlight')) return NodeFilter.FILTER_REJECT;
      }
      return NodeFilter.FILTER_ACCEPT;
    }
  });
  const raw = [];
  const tex = /\$[^$\s][^$]*\$|\\\(|\\\)|\\\[|\\\]|\\(?:frac|sum|tilde|mathbb|operatorname)\b/;
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent;
    if (tex.test(text)) raw.push(text.trim().slice(0, 120));
  }
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  // Tables wider than the column they sit in: cut off at the right (or scrolled sideways),
  // which hides the last columns — often the summaries.
  const overflowing = tablesWiderThanTheirColumn();
  // A figure that reached the page as matplotlib's text repr instead of an image.
  const figureReprs = (document.body.innerText.match(/<(?:Figure|matplotlib\.figure\.Figure)[^>\n]*>/g) || [])
    .slice(0, 5);
  return {broken, mathCount: mathNodes.length, untypeset, errors, raw, links, figureReprs, overflowing,
          title: document.title, textLength: document.body.innerText.length};
}
"""


def find_chromium() -> str | None:
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from ensure_browser import find_chromium as find
    finally:
        sys.path.pop(0)
    return find()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output readable
        pass


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("Chromium not found (looked for $FINEFCACE_CHROMIUM, chromium, chromium-browser, "
                    "google-chrome); run `python scripts/ensure_browser.py` as root to install Debian's")
    return path


@pytest.fixture(scope="module")
def served_book(chromium) -> str:
    result = build_book_once()
    assert result.returncode == 0, f"the course command failed:\n{result.stderr[-4000:]}"
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def pages_to_visit() -> list[str]:
    """Every TOC page (key pages first), as paths relative to the site root."""
    pages = [p for p in KEY_PAGES if (HTML / p).is_file()]
    pages += [f"{entry}.html" for entry in toc_files() if f"{entry}.html" not in pages]
    return pages


def visit(browser, base: str, path: str) -> dict:
    """Open one page offline; return what the page reported plus console and network problems."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
    page = context.new_page()
    blocked, failed, bad_status, console, page_errors = [], [], [], [], []

    def route(request_route):
        url = request_route.request.url
        if url.startswith(base) or url.startswith("data:") or url.startswith("blob:"):
            request_route.continue_()
        else:
            blocked.append(url)
            request_route.abort()

    page.route("**/*", route)
    page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})") if r.url.startswith(base) else None)
    page.on("response", lambda r: bad_status.append(f"{r.url} -> {r.status}") if r.status >= 400 else None)
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    try:
        page.goto(base + path, wait_until="load")
        page.wait_for_load_state("networkidle")
        # MathJax typesets asynchronously; wait for it wherever the page has math.
        mathjax = []
        if page.evaluate("document.querySelectorAll('.math').length"):
            try:
                page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                       timeout=30_000)
                page.evaluate("() => MathJax.startup.promise")
            except PlaywrightTimeoutError:
                mathjax.append("MathJax did not start within 30 s (not loaded? blocked?)")
        report = page.evaluate(PAGE_REPORT_JS)
        report["untypeset"] = mathjax + report["untypeset"]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / (path.removesuffix(".html").replace("/", "__") + ".png")
        page.screenshot(path=str(shot), full_page=True)
    finally:
        context.close()
    report.update(blocked=blocked, failed=failed, bad_status=bad_status, console=console,
                  page_errors=page_errors, screenshot=str(shot))
    return report


@pytest.fixture(scope="module")
def reports(browser, served_book) -> dict[str, dict]:
    return {path: visit(browser, served_book, path) for path in pages_to_visit()}


def _problems(reports: dict[str, dict], key: str) -> dict[str, list]:
    return {path: r[key] for path, r in reports.items() if r[key]}


def test_every_page_was_visited_and_has_content(reports):
    assert "index.html" in reports and len(reports) == len(pages_to_visit())
    empty = [p for p, r in reports.items() if r["textLength"] < 200]
    assert not empty, f"pages with (almost) no text: {empty}"
    for path, report in reports.items():
        assert Path(report["screenshot"]).stat().st_size > 10_000, f"{path}: screenshot looks blank"


def test_nothing_is_fetched_from_the_network(reports):
    assert not _problems(reports, "blocked"), \
        f"pages tried to reach the internet (blocked; an offline reader gets nothing): {_problems(reports, 'blocked')}"


def test_no_failed_requests_or_error_responses(reports):
    assert not _problems(reports, "failed"), f"failed requests: {_problems(reports, 'failed')}"
    assert not _problems(reports, "bad_status"), f"HTTP errors: {_problems(reports, 'bad_status')}"


def test_no_console_or_script_errors(reports):
    assert not _problems(reports, "console"), f"console errors: {_problems(reports, 'console')}"
    assert not _problems(reports, "page_errors"), f"uncaught script errors: {_problems(reports, 'page_errors')}"


def test_every_image_loads(reports):
    assert not _problems(reports, "broken"), f"images that did not load (naturalWidth 0): {_problems(reports, 'broken')}"


def test_figures_are_images_not_text(reports):
    """A notebook figure shown as "<Figure size 1020x700 with 24 Axes>" never became an image
    (in a kernel, a pyplot-free Figure needs the inline backend's PNG formatter)."""
    assert not _problems(reports, "figureReprs"), \
        f"figures rendered as text, not images: {_problems(reports, 'figureReprs')}"


def test_no_table_is_wider_than_its_column(reports):
    """At the book's page width (the viewport of :func:`visit`), every table fits the text
    column: none hides its last columns — the summaries, often — behind a sideways scroll."""
    assert not _problems(reports, "overflowing"), \
        f"tables wider than their column (head, width, room in px): {_problems(reports, 'overflowing')}"


def test_the_table_check_finds_a_table_wider_than_its_column(browser):
    """The check above can fail: a 30-column table in a 600-px column is reported, with its
    width; a 3-column one is not, nor is a wide table in a column wide enough for it."""
    cells = "".join(f"<td>value {i}.00 [low, high]</td>" for i in range(30))
    page_html = ("<article style='width: 600px'><div style='overflow-x: auto'>"
                 f"<table id='wide'><tr>{cells}</tr></table></div>"
                 "<table id='narrow'><tr><td>a</td><td>b</td><td>c</td></tr></table></article>")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.set_content(page_html)
        found = page.evaluate("() => {" + TABLE_OVERFLOW_JS + " return tablesWiderThanTheirColumn(); }")
        assert len(found) == 1 and found[0]["head"].startswith("value 0.00")
        assert found[0]["width"] > found[0]["room"] and found[0]["room"] <= 600
        page.set_content(page_html.replace("width: 600px", "width: 20000px"))
        assert page.evaluate("() => {" + TABLE_OVERFLOW_JS + " return tablesWiderThanTheirColumn(); }") == []
    finally:
        context.close()


def test_equations_are_typeset_without_errors(reports):
    assert reports["book/method.html"]["mathCount"] >= 10, "the method chapter should hold the paper's equations"
    assert not _problems(reports, "untypeset"), f"math MathJax did not typeset: {_problems(reports, 'untypeset')}"
    assert not _problems(reports, "errors"), f"MathJax errors: {_problems(reports, 'errors')}"
    assert not _problems(reports, "raw"), f"un-rendered TeX in the text: {_problems(reports, 'raw')}"


def test_internal_links_resolve(reports, served_book):
    """Every same-site link answers 200, and its #fragment exists in the target page."""
    targets: dict[str, set[str]] = {}
    for path, report in reports.items():
        for link in report["links"]:
            if link.startswith(served_book):
                url, _, fragment = link.partition("#")
                targets.setdefault(url, set()).add(fragment)
    broken = []
    for url, fragments in sorted(targets.items()):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            broken.append(f"{url} -> {error.code}")
            continue
        ids = set(re.findall(r'\b(?:id|name)="([^"]+)"', body))
        for fragment in fragments - {""}:
            if urllib.parse.unquote(fragment) not in ids:
                broken.append(f"{url}#{fragment} (no such anchor)")
    assert not broken, f"broken internal links: {broken}"
    assert len(targets) >= len(reports), "too few internal links found: is the navigation rendered?"


def test_solutions_are_folded_until_clicked(browser, served_book):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(served_book + "book/exercises.html", wait_until="networkidle")
        toggles = page.locator(".admonition.dropdown")
        assert toggles.count() >= 10, "the exercises should have their solutions in dropdowns"
        body = toggles.first.locator(".admonition-title ~ *").first
        assert not body.is_visible(), "a solution is visible before it is opened"
        toggles.first.locator(".admonition-title").click()
        body.wait_for(state="visible", timeout=5_000)
    finally:
        context.close()
