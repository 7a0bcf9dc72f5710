"""The course website, built from the notebooks and looked at in a real browser.

The site is built from scratch with Sphinx (the README command, into a temporary
folder), served on 127.0.0.1 and opened in headless Chromium (Debian's package)
through Playwright. Every page must load with no console error, no failed request
and no request leaving this machine; its maths must be typeset (no raw ``$$`` or
``\\begin{``), its images loaded and its internal links resolvable; and every answer
must stay hidden until its toggle is clicked. Screenshots of two pages go to
test-artifacts/. The API page documents every module of the library, from its
docstrings.

Without Chromium (or the ``site`` extra) these tests are skipped, except in CI
(CI=true), where that is a failure: CI must run them.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin

import pytest

# Building the site takes seconds (Sphinx imports the library for the API page).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts"
IN_CI = os.environ.get("CI", "").lower() == "true"
BUILD_TIMEOUT_S = 600

# As root and on a machine with no outside network: no sandbox, no background calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

NOTEBOOK_PAGES = [f"notebooks/{s.stem}" for s in SOLUTIONS]
# The API page, and the index of its modules that Sphinx makes.
PAGES = ["index", "search", "genindex", "api", "py-modindex"] + NOTEBOOK_PAGES
# The library's modules (ARCHITECTURE.md's rooms, less the course wing and the CLI):
# each has its section on the API page.
LIBRARY_MODULES = [
    "config",
    "presets",
    "short_runs",
    "mnist_files",
    "data",
    "model",
    "bounds",
    "evaluate",
    "training",
    "run_folder",
    "run_lock",
    "plotting",
    "pretrained",
]


def unavailable(what: str, fix: str):
    """Skip outside CI; in CI the browser tests must run, so fail."""
    if IN_CI:
        pytest.fail(f"{what}, and CI (CI=true) must run the browser tests. {fix}")
    pytest.skip(f"{what}: the browser tests need it. {fix}")


def chromium_path() -> str:
    path = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not path:
        unavailable(
            "Chromium is not installed",
            "Install it with 'apt-get install -y chromium' (or set CHROMIUM to its path).",
        )
    return path


def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        unavailable("Playwright is not installed", "Install the extra: pip install -e '.[site]'.")
    return start()


def in_a_thread_of_its_own(test):
    """Run ``test()`` in a new thread and re-raise what it raised.

    Playwright's sync API refuses to start where an asyncio loop runs, and an earlier
    test in the same worker process may leave one running on the main thread (this
    module's own session ``browser`` does, until the session ends); a new thread has
    no loop.
    """
    failures: list[BaseException] = []

    def run():
        try:
            test()
        except BaseException as e:  # re-raised on the test's own thread below
            failures.append(e)

    thread = threading.Thread(target=run, name=test.__name__)
    thread.start()
    thread.join()
    if failures:
        raise failures[0]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The site, built by the README command into a fresh folder (warnings are errors)."""
    try:
        import myst_nb  # noqa: F401
    except ImportError:
        unavailable(
            "Sphinx and myst-nb are not installed", "Install the extra: pip install -e '.[site]'."
        )
    out = tmp_path_factory.mktemp("site") / "html"
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        str(ROOT / "docs"),
        str(out),
    ]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
    )
    assert done.returncode == 0, (
        f"Building the site failed ({' '.join(command[1:])}):\n{done.stdout}\n{done.stderr}"
    )
    return out


@pytest.fixture(scope="session")
def base_url(site):
    """The site served over HTTP on 127.0.0.1 (search and MathJax fetch files)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(site))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    with sync_playwright() as playwright:
        # Scroll bars shown, as a reader sees them (a wide derivation scrolls sideways).
        browser = playwright.chromium.launch(
            executable_path=path,
            headless=True,
            args=CHROMIUM_ARGS,
            ignore_default_args=["--hide-scrollbars"],
        )
        yield browser
        browser.close()


class PageLog:
    """What went wrong on a page: console errors, failed requests, requests to other hosts."""

    def __init__(self, page, origin: str):
        self.problems: list[str] = []
        page.on(
            "console",
            lambda m: (
                m.type == "error"
                and self.problems.append(f"console error: {m.text} ({m.location.get('url')})")
            ),
        )
        page.on("pageerror", lambda e: self.problems.append(f"uncaught exception: {e}"))
        page.on(
            "requestfailed",
            lambda r: self.problems.append(f"request failed: {r.url} ({r.failure})"),
        )
        page.on(
            "response",
            lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"),
        )

        # The site must need nothing from elsewhere (no CDN): any such request counts.
        page.on(
            "request",
            lambda r: (
                r.url.startswith((origin, "data:", "blob:"))
                or self.problems.append(f"request to another host: {r.url}")
            ),
        )


@pytest.fixture
def open_page(browser, base_url):
    pages = []

    def open_(path: str, **context):
        context.setdefault("viewport", {"width": 1280, "height": 900})
        page = browser.new_context(**context).new_page()
        # Generous: CI's 2 cores may be busy, and a page with MathJax takes seconds there.
        page.set_default_timeout(60_000)
        page.set_default_navigation_timeout(180_000)
        pages.append(page)
        log = PageLog(page, base_url)
        response = page.goto(base_url + path, wait_until="load")
        assert response.ok, f"{path}: HTTP {response.status}"
        typeset(page)
        return page, log

    yield open_
    for page in pages:
        page.context.close()


def typeset(page):
    """Wait until MathJax (if the page loads it) has typeset the page."""
    page.evaluate("""() => { window.typesetDone = false;
        const start = window.MathJax && MathJax.startup
            ? MathJax.startup.promise : Promise.resolve();
        start.then(() => { window.typesetDone = true; }); }""")
    page.wait_for_function("() => window.typesetDone === true")  # with the page's timeout


# ------------------------------------------------------------------------- helpers

RAW_TEX = re.compile(r"\$\$|\\begin\{|\\\(|\\\)|\\\[|\\\]|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$")

# Text of the page outside code, scripts and typeset maths: where TeX must not show.
PROSE_TEXT = """() => {
  const skip = "PRE, CODE, SCRIPT, STYLE, TEXTAREA, MJX-CONTAINER, NOSCRIPT";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const out = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.parentElement.closest(skip)) out.push(n.textContent);
  }
  return out.join(" ");
}"""


# Display equations that stick out of the article, or overflow their box without a
# scroll bar: their right-hand side would be cut off (MathJax does not break lines).
CUT_OFF_EQUATIONS = """() => [...document.querySelectorAll('mjx-container[display="true"]')]
    .filter(e => {
  const article = (e.closest('article') || document.body).getBoundingClientRect();
  const sticksOut = e.getBoundingClientRect().right > article.right + 1;
  const clipped = e.scrollWidth > e.clientWidth + 1 &&
                  !['auto', 'scroll'].includes(getComputedStyle(e).overflowX);
  return sticksOut || clipped;
}).length"""


def solution_answers(solution: Path) -> int:
    """How many answers a notebook holds: written answers (cells tagged 'answer'),
    code solutions (### BEGIN SOLUTION regions' cells) and <details> blocks."""
    from vae_prac.course import student

    count = 0
    for cell in json.loads(solution.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            count += any(line.strip().startswith(student.BEGIN) for line in source.split("\n"))
        else:
            details = source.count("<details>")
            count += details or student.ANSWER_TAG in cell["metadata"].get("tags", [])
    return count


@functools.lru_cache(maxsize=None)
def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def element_ids(body: bytes) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', body.decode("utf-8", "replace")))


# --------------------------------------------------------------------------- tests


def test_the_site_has_a_page_per_notebook_and_loads_nothing_from_elsewhere(site):
    built = sorted(
        str(p.relative_to(site).with_suffix(""))
        for p in site.rglob("*.html")
        if "_static" not in p.parts
    )
    assert built == sorted(PAGES), (
        f"The site's pages are {built}, expected {sorted(PAGES)} (one per solution "
        "notebook, plus the home, search, index, API and module index pages)."
    )
    outside = []
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        outside += [
            f"{page.relative_to(site)}: {m}"
            for m in re.findall(
                r'<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)="(?://|https?:)[^"]*"', text
            )
        ]
    assert not outside, "Pages load resources from other hosts (a CDN?):\n" + "\n".join(outside)
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax is not in the site."


def test_the_api_page_documents_every_module_of_the_library(site):
    text = (site / "api.html").read_text(encoding="utf-8")
    ids = element_ids(text.encode())
    missing = [m for m in LIBRARY_MODULES if f"module-vae_prac.{m}" not in ids]
    assert not missing, f"docs/api.md has no section for vae_prac.{missing}"
    # Their docstrings, not only their names: a function of each kind, and Config's fields.
    for name in (
        "config.Config",
        "short_runs.shorten",
        "data.binarize",
        "bounds.elbo",
        "evaluate.log_px",
        "training.train",
        "run_folder.read_config",
    ):
        assert f"vae_prac.{name}" in ids, f"the API page does not document vae_prac.{name}"
    assert "latent_dim" in text and "Dimensionality of the latent variable z" in text


@pytest.mark.browser
@pytest.mark.parametrize("path", PAGES)
def test_page_loads_cleanly_with_maths_images_links_and_hidden_answers(open_page, base_url, path):
    page, log = open_page(f"{path}.html")
    problems = log.problems  # what the browser reported, and what is found below

    # Answers: each hidden until its own toggle is clicked, then shown.
    answers = page.locator("details.vae-answer")
    if path.startswith("notebooks/"):
        solution = ROOT / "notebooks" / "solutions" / f"{Path(path).name}.ipynb"
        expected = solution_answers(solution)
        assert answers.count() == expected, (
            f"{path}: {answers.count()} answer toggles, but {solution.name} holds {expected} "
            "answers and solutions; each must be collapsed behind a toggle."
        )
    for i in range(answers.count()):
        answer = answers.nth(i)
        body = answer.locator(":scope > :not(summary)")
        title = answer.locator(":scope > summary").inner_text().strip()
        assert answer.get_attribute("open") is None and not body.first.is_visible(), (
            f"{path}: answer {i + 1} ('{title}') is visible before its toggle was clicked."
        )
        answer.locator(":scope > summary").click()
        body.first.wait_for(state="visible", timeout=5000)
    typeset(page)

    # Maths: typeset everywhere, answers included; no TeX left as text.
    unrendered = page.evaluate(
        "() => [...document.querySelectorAll('.math')]"
        ".filter(e => !e.querySelector('mjx-container')).length"
    )
    if unrendered:
        problems.append(f"{unrendered} maths elements were not typeset by MathJax")
    cut_off = page.evaluate(CUT_OFF_EQUATIONS)
    if cut_off:
        problems.append(
            f"{cut_off} display equation(s) wider than the text column and "
            "neither fitting nor scrolling: part of them cannot be seen"
        )
    raw = sorted({m.group(0)[:60] for m in RAW_TEX.finditer(page.evaluate(PROSE_TEXT))})
    if raw:
        problems.append(f"TeX shown as text instead of maths: {raw}")

    # Images: every one loaded.
    broken = page.evaluate(
        "() => [...document.images]"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    problems += [f"image did not load: {src}" for src in broken]

    # Internal links: the file exists, and so does the element a #fragment names.
    for href in sorted(set(page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)"))):
        if not href.startswith(base_url):
            continue
        target, fragment = urldefrag(href)
        status, body = fetch(target)
        if status != 200:
            problems.append(f"dead link: {href} (HTTP {status})")
        elif fragment and target.endswith(".html") and unquote(fragment) not in element_ids(body):
            problems.append(f"dead link: {href} (no element with id '{unquote(fragment)}')")

    assert not problems, f"{path}:\n" + "\n".join(problems)


@pytest.mark.browser
@pytest.mark.parametrize("path", NOTEBOOK_PAGES)
def test_notebook_page_links_its_student_notebook_and_colab(open_page, base_url, path):
    import vae_prac

    name = f"{Path(path).name}.ipynb"
    page, log = open_page(f"{path}.html")
    download = page.get_by_role("link", name="Download the student notebook")
    href = download.get_attribute("href")
    status, body = fetch(urljoin(base_url + path + ".html", href))
    assert status == 200 and body == (ROOT / "notebooks" / "student" / name).read_bytes(), (
        f"{path}: 'Download the student notebook' ({href}) does not serve "
        f"notebooks/student/{name} as committed."
    )
    colab = page.get_by_role("link", name="open it in Colab").get_attribute("href")
    github = vae_prac.REPO_URL.removeprefix("https://github.com/")
    assert colab == (
        f"https://colab.research.google.com/github/{github}/blob/main/notebooks/student/{name}"
    ), f"{path}: the Colab link is {colab}"
    assert not log.problems, "\n".join(log.problems)


@pytest.mark.browser
def test_navigation_goes_through_the_notebooks_in_order(open_page):
    page, _ = open_page("index.html")
    sidebar = page.locator("nav.bd-links a.reference.internal")
    listed = [a.get_attribute("href").removesuffix(".html") for a in sidebar.all()]
    expected = NOTEBOOK_PAGES + ["api"]
    assert listed == expected, f"The sidebar lists {listed}, expected {expected}."
    page.locator("a.right-next").click()
    for path in NOTEBOOK_PAGES:
        page.wait_for_url(f"**/{path}.html")
        page.get_by_role("heading", level=1).first.wait_for(state="visible")
        if path != NOTEBOOK_PAGES[-1]:
            page.locator("a.right-next").click()


@pytest.mark.browser
def test_search_box_finds_the_notebook_that_explains_jensen(open_page):
    page, log = open_page("index.html")
    page.locator("button.search-button-field, button.search-button").first.click()
    box = page.locator("form.bd-search input[name=q]:visible").first
    box.fill("Jensen")
    box.press("Enter")
    page.wait_for_url("**/search.html?q=Jensen*")
    results = page.locator("#search-results ul.search li a")
    results.first.wait_for(timeout=30_000)
    found = [a.get_attribute("href") for a in results.all()]
    assert any("02_the_elbo" in href for href in found), f"Searching 'Jensen' found {found}."
    assert not log.problems, "\n".join(log.problems)


@pytest.mark.browser
def test_screenshots_of_a_page_with_maths_and_an_answer(open_page):
    """02's derivation of the ELBO down to its Math Task, the answer closed then open;
    and the home page."""
    ARTIFACTS.mkdir(exist_ok=True)
    # Tall enough to hold the whole stretch, so one screenshot shows it as it is seen.
    page, _ = open_page("notebooks/02_the_elbo.html", viewport={"width": 1280, "height": 2400})
    heading = page.get_by_role("heading", name=re.compile("A lower bound"), level=2)
    answer = page.locator("details.vae-answer").nth(1)  # the Math Task's, below it
    assert answer.get_attribute("open") is None

    def shot(name):
        heading.evaluate("e => e.scrollIntoView({block: 'start'})")
        top, box = heading.bounding_box()["y"], answer.bounding_box()
        page.screenshot(
            path=ARTIFACTS / name,
            clip={
                "x": 0,
                "y": top - 16,
                "width": 1280,
                "height": box["y"] + box["height"] - top + 32,
            },
        )

    shot("site-02-maths-and-toggle.png")
    answer.locator(":scope > summary").click()
    answer.locator(":scope > :not(summary)").first.wait_for(state="visible")
    shot("site-02-answer-open.png")
    home, _ = open_page("index.html")
    home.screenshot(path=ARTIFACTS / "site-home.png")
    for name in ("site-02-maths-and-toggle.png", "site-02-answer-open.png", "site-home.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000, f"{name} looks empty."
