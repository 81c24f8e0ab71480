"""The built book in a real browser, with no network: pages render, equations typeset,
images load, internal links resolve, and the console stays clean — and the book reads well at
its page width: no table wider than its column, no output cut or scrolled at the right edge, no
Python dict or list repr outside code, no NaN/inf, cut cell or empty header row in a table,
figure text no smaller than ``finefcace.plots.MIN_TEXT_PT`` as shown, alt text in words on every
image. Each of these detectors has a test on a hand-made page showing that it fires.

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

from finefcace.plots import MIN_TEXT_PT
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

# Every output box of the page (a cell's output, or any box inside one) that holds more than it
# shows sideways: its content is wider than the box and the box clips it (overflow hidden or clip)
# or scrolls it (auto or scroll). Both hide values at the page's width; a reader does not scroll a
# training log sideways to find the validation accuracy. Tables are left to the table check.
OUTPUT_CLIPPING_JS = r"""
function outputsCutAtTheRight() {
  const article = document.querySelector('article') || document.querySelector('main') || document.body;
  const boxes = [...article.querySelectorAll('.cell_output, .cell_output *')]
    .filter(el => !el.closest('table') && el.tagName !== 'TABLE');
  const found = [];
  for (const el of boxes) {
    const overflow = getComputedStyle(el).overflowX;
    if (!['hidden', 'clip', 'auto', 'scroll'].includes(overflow)) continue;
    if (el.scrollWidth > el.clientWidth + 2) {
      found.push({text: el.innerText.replace(/\s+/g, ' ').trim().slice(0, 60), overflow,
                  width: el.scrollWidth, room: el.clientWidth});
    }
  }
  // nested boxes report the same overflow once: keep the innermost
  return found.filter((f, i) => !found.some((g, j) => j > i && g.text === f.text && g.width === f.width));
}
"""

# Python reprs a reader should never see outside code: a dict ({'n_train': 1600, ...}), a list
# or tuple of strings (['a', 'b']). Looked for in prose, captions, table cells, output text and
# image alt text — not in code the reader is shown (a cell's input, inline code, code blocks).
# Lists of numbers are left alone: "[80.2, 85.9]" is how the book writes an interval.
PYTHON_REPR_JS = r"""
const PYTHON_REPR = /\{\s*['"][^'"\n]{1,40}['"]\s*:|[\[(]\s*'[^'\n]*'\s*,\s*'[^'\n]*'|[\[(]\s*'[^'\n]*'\s*,?\s*[\])]/;
function pythonReprsShown() {
  const article = document.querySelector('article') || document.querySelector('main') || document.body;
  const codeTags = new Set(['CODE', 'KBD', 'SCRIPT', 'STYLE', 'TEXTAREA']);
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let el = node.parentElement; el && el !== article; el = el.parentElement) {
        if (codeTags.has(el.tagName) || el.classList.contains('cell_input')) return NodeFilter.FILTER_REJECT;
        // a code block in the text (``` fences): highlighted, outside any cell output
        if (el.classList.contains('highlight') && !el.closest('.cell_output')) return NodeFilter.FILTER_REJECT;
      }
      return NodeFilter.FILTER_ACCEPT;
    }
  });
  const found = [];
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent;
    const match = text.match(PYTHON_REPR);
    if (match) found.push(text.slice(Math.max(0, match.index - 30), match.index + 60).replace(/\s+/g, ' ').trim());
  }
  for (const img of article.querySelectorAll('img')) {
    const alt = img.getAttribute('alt') || '';
    if (PYTHON_REPR.test(alt)) found.push('alt text: ' + alt.slice(0, 90));
  }
  return found;
}
"""

# Table cells a reader cannot read as a value: a missing or infinite number as Python or pandas
# prints it (NaN, nan, inf, +inf, -inf, None, <NA>: the table should say what it means — "not
# reported", "no variation" — instead), a cell pandas cut short ("one linear c..."), and header
# rows with nothing in them (the empty row pandas adds for an index or columns name).
TABLE_VALUES_JS = r"""
function unreadableTableCells() {
  const article = document.querySelector('article') || document.querySelector('main') || document.body;
  // Python's and pandas' spellings only: "none" or "Infant" in words are fine.
  const missing = /(^|[\s(\[\/])[+\-\u2212]?(nan|NaN|NAN|inf|Inf|INF|infinity|Infinity|None|<NA>|NaT)(?=$|[\s)\],;\/%])/;
  const found = [];
  for (const table of article.querySelectorAll('table')) {
    const head = (table.querySelector('tr') || table).innerText.replace(/\s+/g, ' ').trim().slice(0, 40);
    for (const cell of table.querySelectorAll('td, th')) {
      const text = cell.innerText.replace(/\s+/g, ' ').trim();
      if (missing.test(text)) found.push({head, cell: text.slice(0, 60), why: 'missing or infinite value'});
      else if (/(\u2026|\.\.\.)$/.test(text) && text.length > 3) found.push({head, cell: text.slice(-60), why: 'cut short'});
    }
    for (const row of table.querySelectorAll('thead tr')) {
      const cells = [...row.querySelectorAll('th, td')];
      const filled = cells.filter(c => c.innerText.trim() !== '');
      if (cells.length > 1 && filled.length <= 1) {
        found.push({head, cell: row.innerText.replace(/\s+/g, ' ').trim().slice(0, 60), why: 'empty header row'});
      }
    }
  }
  return found;
}
"""

#: The smallest figure text the check accepts, in CSS points (1 pt = 4/3 CSS px) as the reader
#: sees it at the book's width (one value for the library and this check: finefcace.plots).
#: See :func:`test_figure_text_is_legible_at_the_page_width`.
MIN_FIGURE_TEXT_PT = MIN_TEXT_PT

# Figures the course shows carry what the browser cannot measure in a PNG: the size of their
# smallest text in points and the resolution they were drawn at (finefcace.plots.figure_html
# writes data-smallest-text-pt and data-dpi). Text of s pt drawn at d dpi is s*d/72 image pixels;
# the page shows the image at displayed/natural width, so the reader sees
#   s * d/72 * displayed/natural  CSS px  =  s * d/96 * displayed/natural  CSS pt.
# Also every image's alt text: present, and words rather than a file name or hash.
FIGURE_TEXT_JS = r"""
function figureText(minimumPt) {
  const article = document.querySelector('article') || document.querySelector('main') || document.body;
  const small = [], unlabelled = [], unmeasured = [];
  for (const img of article.querySelectorAll('img')) {
    const src = (img.getAttribute('src') || '').slice(0, 80);
    const alt = (img.getAttribute('alt') || '').trim();
    if (alt.length < 12 || /^[0-9a-f]{16,}(\.\w+)?$/i.test(alt) || /\.(png|jpe?g|svg|gif)$/i.test(alt)) {
      unlabelled.push({src, alt});
    }
    if (!img.closest('.cell_output')) continue;
    const points = parseFloat(img.dataset.smallestTextPt), dpi = parseFloat(img.dataset.dpi);
    if (!(points > 0 && dpi > 0)) { unmeasured.push({src, alt: alt.slice(0, 60)}); continue; }
    const shown = points * dpi / 96 * img.getBoundingClientRect().width / img.naturalWidth;
    if (shown < minimumPt) {
      small.push({alt: alt.slice(0, 70), text: (img.dataset.smallestText || '').slice(0, 40),
                  pt: Math.round(shown * 10) / 10});
    }
  }
  return {small, unlabelled, unmeasured};
}
"""

# JavaScript run in each page after it loaded and MathJax finished.
PAGE_REPORT_JS = ("() => {" + TABLE_OVERFLOW_JS + OUTPUT_CLIPPING_JS + PYTHON_REPR_JS + TABLE_VALUES_JS
                  + FIGURE_TEXT_JS + r"""
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
  const clipped = outputsCutAtTheRight();
  const reprs = pythonReprsShown();
  const unreadable = unreadableTableCells();
  const figures = figureText(MIN_FIGURE_TEXT_PT);
  return {broken, mathCount: mathNodes.length, untypeset, errors, raw, links, figureReprs, overflowing,
          clipped, reprs, unreadable, smallText: figures.small, unlabelled: figures.unlabelled,
          unmeasured: figures.unmeasured, title: document.title, textLength: document.body.innerText.length};
}
""").replace("MIN_FIGURE_TEXT_PT", str(MIN_FIGURE_TEXT_PT))


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


def _run_on(browser, page_html: str, js: str, call: str):
    """Evaluate one of the page checks on a hand-made page (the checks' own tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.set_content(page_html)
        page.wait_for_load_state("load")
        return page.evaluate("() => {" + js + f" return {call}; }}")
    finally:
        context.close()


def test_no_output_is_cut_at_the_right_edge(reports):
    """At the book's page width no cell output holds more than it shows sideways. The rule: a
    box inside a cell's output whose content is wider than the box (scrollWidth > clientWidth)
    while the box clips (overflow hidden/clip) or scrolls (auto/scroll) is reported — clipped
    text is lost, and a log or printout scrolled sideways hides its last values (a run's
    validation accuracy and time) from a reader who does not think to scroll. Tables have their
    own check above."""
    assert not _problems(reports, "clipped"), \
        f"outputs cut at the right edge (text, overflow, width, room in px): {_problems(reports, 'clipped')}"


def test_the_clipping_check_finds_a_box_that_hides_its_end(browser):
    """It can fail: a long line in a clipping box and one in a sideways-scrolling box are both
    reported; the same line in a wide enough box, and a short one, are not."""
    line = "epoch 1/4  loss=0.6931  train_acc=0.5012  val_acc=0.5000  " * 6
    page_html = ("<article style='width: 600px'>"
                 f"<div class='cell_output'><pre id='hidden' style='overflow-x: hidden'>{line}</pre></div>"
                 f"<div class='cell_output'><div style='overflow: auto'><pre>scrolled {line}</pre></div></div>"
                 "<div class='cell_output'><pre style='overflow: auto'>short</pre></div>"
                 "</article>")
    found = _run_on(browser, page_html, OUTPUT_CLIPPING_JS, "outputsCutAtTheRight()")
    assert sorted(f["overflow"] for f in found) == ["auto", "hidden"], found
    assert all(f["width"] > f["room"] for f in found)
    wide = page_html.replace("width: 600px", "width: 20000px")
    assert _run_on(browser, wide, OUTPUT_CLIPPING_JS, "outputsCutAtTheRight()") == []


def test_no_python_repr_in_the_text(reports):
    """A dict or a list of strings as Python prints it ({'n_train': 1600, ...}, ['a', 'b'])
    never reaches prose, captions, table cells, printed outputs or alt text: the book says it
    in words (finefcace.training.study.data_in_words, say). Code shown as code is exempt."""
    assert not _problems(reports, "reprs"), f"Python reprs shown to the reader: {_problems(reports, 'reprs')}"


def test_the_repr_check_finds_dicts_and_lists_outside_code(browser):
    """It can fail: a dict in a paragraph, a list of strings in a table cell and in an image's
    alt text are found; the same dict in inline code, in a cell's input, and an interval
    "[80.2, 85.9]" are not."""
    page_html = ("<article><p>trained on {'n_train': 1600, 'n_val': 320}</p>"
                 "<table><tr><td>['tone_1', 'tone_2']</td></tr></table>"
                 "<img alt=\"groups ('Female',) by tone\" src='data:,'>"
                 "<p>the config <code>{'n_train': 1600}</code> and 83.1 [80.2, 85.9]</p>"
                 "<div class='cell_input'><pre>x = {'seed': 0}</pre></div></article>")
    found = _run_on(browser, page_html, PYTHON_REPR_JS, "pythonReprsShown()")
    assert len(found) == 3, found
    assert "'n_train': 1600" in found[0] and "'tone_1'" in found[1] and found[2].startswith("alt text")


def test_no_table_shows_nan_inf_a_cut_cell_or_an_empty_header_row(reports):
    """Every table cell reads as a value or says in words why there is none: no NaN, nan, inf,
    +inf, -inf, None or <NA>; no cell pandas cut short with "..."; no header row left empty."""
    assert not _problems(reports, "unreadable"), \
        f"table cells a reader cannot read: {_problems(reports, 'unreadable')}"


def test_the_table_value_check_finds_nan_inf_cut_cells_and_empty_header_rows(browser):
    """It can fail: NaN, +inf, -inf (also as "−inf"), Python's None, a cut cell and pandas' empty
    index-name row are reported; "Infant", "not reported", "none" in words and an ordinary header
    row are not."""
    page_html = ("<article><table><thead><tr><th></th><th>accuracy</th><th>DoB</th></tr>"
                 "<tr><th>method</th><th></th><th></th></tr></thead>"
                 "<tbody><tr><th>a</th><td>NaN</td><td>+inf</td></tr>"
                 "<tr><th>b</th><td>\u2212inf</td><td>one linear c...</td></tr>"
                 "<tr><th>c</th><td>Infant</td><td>not reported</td></tr>"
                 "<tr><th>d</th><td>options: none</td><td>None</td></tr></tbody></table></article>")
    found = _run_on(browser, page_html, TABLE_VALUES_JS, "unreadableTableCells()")
    assert sorted(f["why"] for f in found) == ["cut short", "empty header row"] + ["missing or infinite value"] * 4
    assert {f["cell"] for f in found if f["why"].startswith("missing")} == {"NaN", "+inf", "\u2212inf", "None"}


def test_figure_text_is_legible_at_the_page_width(reports):
    """Every figure a notebook shows has its smallest text at least ``MIN_FIGURE_TEXT_PT`` as
    the reader sees it at the book's width: the font size the figure was drawn with, scaled by
    the figure's resolution and by how much the page shrinks the image (displayed over natural
    width) — a 10 pt title on a 2000-px-wide figure squeezed into a 700-px column reads as 3.6
    pt. 7 pt on screen (9.3 CSS px) is the small end of what figure guidelines accept for
    labels at final size; the book's body text is 12 pt. The sizes come from the figure itself
    (``finefcace.plots.figure_html`` records them as the image is made), so every figure the
    course shows is measured, and one shown without that record is reported too."""
    assert not _problems(reports, "unmeasured"), \
        f"notebook figures shown without their text size (not through finefcace.plots.figure_html): " \
        f"{_problems(reports, 'unmeasured')}"
    assert not _problems(reports, "smallText"), \
        f"figures whose smallest text is below {MIN_FIGURE_TEXT_PT} pt at the page width: {_problems(reports, 'smallText')}"


def test_every_image_says_what_it_shows(reports):
    """Every image has alt text in words — not empty, not a file name or a content hash."""
    assert not _problems(reports, "unlabelled"), f"images without descriptive alt text: {_problems(reports, 'unlabelled')}"


def test_the_figure_text_check_finds_small_text_and_images_without_alt(browser):
    """It can fail: a figure 2000 px wide with 8-pt text at 100 dpi shown in a 600-px column
    reads as 2.5 pt and is reported; the same image shown at its natural width (8.3 pt) is not.
    An image with a hash for alt text is reported as unlabelled, one without the size record as
    unmeasured."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2000, 200), "white").save(buffer, format="PNG")
    src = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    figure = (f"<div class='cell_output'><img src='{src}' alt='accuracy per group, two models' "
              "data-smallest-text-pt='8' data-smallest-text='tone_1' data-dpi='100' style='max-width: 100%'></div>")
    page_html = (f"<article style='width: 600px'>{figure}"
                 f"<div class='cell_output'><img src='{src}' alt='{'ab12' * 16}.png' style='max-width: 100%'></div>"
                 "</article>")
    found = _run_on(browser, page_html, FIGURE_TEXT_JS, "figureText(7)")
    assert [f["text"] for f in found["small"]] == ["tone_1"] and 2.0 < found["small"][0]["pt"] < 3.0
    assert len(found["unlabelled"]) == 1 and len(found["unmeasured"]) == 1
    wide = page_html.replace("width: 600px", "width: 3000px")
    assert _run_on(browser, wide, FIGURE_TEXT_JS, "figureText(7)")["small"] == []


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
