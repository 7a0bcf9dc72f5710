"""A student notebook run in JupyterLab, in a real browser, as a student would.

JupyterLab is started on 127.0.0.1 with a token, and headless Chromium (Debian's
package, driven by Playwright) opens a copy of the student notebook 05 (the series'
training notebook) and runs every cell from the Run menu. Its kernels train with
``VAE_PRAC_SHORT_RUNS`` (``vae_prac.short_runs``): the same history rows, figures and
check lines in a hundredth of the iterations, since what is checked is what the student
sees, not how well the model learned. Then what the student sees is checked: no cell
shows a stderr block or an error, every check line prints, every figure the solution
shows appears, and a progress bar is a widget. The notebook trains with its hooks'
figures and no bar, so the test then types into a new cell the call the README shows,
``vae_prac.train(...)`` with its default progress bar, runs it, and checks that the
bar renders as a widget. A screenshot after the training cell goes to test-artifacts/.

Without Chromium (or the ``site`` extra) this is skipped, except in CI (CI=true),
where that is a failure: CI must run it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from vae_prac import short_runs

pytestmark = [pytest.mark.browser, pytest.mark.notebook]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "05_training.ipynb"
ARTIFACTS = ROOT / "test-artifacts"
IN_CI = os.environ.get("CI", "").lower() == "true"
SERVER_START_S = 180
UI_START_S = 600
RUN_ALL_S = 1200  # a busy machine is slow to start a kernel and TensorFlow
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# What a student types after the notebook: README's own example, shortened.
TYPED_CELL = (
    "quick = vae_prac.train(vae_prac.Config(n_iterations=300, log_every=100, "
    "print_every=300), verbose=False)"
)
# What its progress bar counts to: 300 iterations, shortened (one per history row).
TYPED_ITERATIONS = 300 // 100
CHECK_LINE = re.compile(r"\[check ([\w.-]+)\]")
TEXT_PROGRESS_BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d+")  # tqdm drawn as text


def unavailable(what: str, fix: str):
    """Skip outside CI; in CI the browser tests must run, so fail."""
    if IN_CI:
        pytest.fail(f"{what}, and CI (CI=true) must run the browser tests. {fix}")
    pytest.skip(f"{what}: the browser tests need it. {fix}")


def requirements() -> str:
    """Chromium's path, once Playwright, JupyterLab and ipywidgets are importable."""
    for module in ("playwright", "jupyterlab", "ipywidgets"):
        try:
            __import__(module)
        except ImportError:
            unavailable(
                f"{module} is not installed", "Install the extra: pip install -e '.[site]'."
            )
    path = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not path:
        unavailable(
            "Chromium is not installed",
            "Install it with 'apt-get install -y chromium' (or set CHROMIUM to its path).",
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """JupyterLab serving a folder with a copy of the student notebook; yields (url, folder)."""
    work, settings = tmp_path / "work", tmp_path / "settings"
    work.mkdir()
    # A copy: JupyterLab saves the notebook it runs, and the repository's must stay blank.
    shutil.copy(ROOT / "notebooks" / "student" / NOTEBOOK, work / NOTEBOOK)
    # Every cell in the page (no virtual scrolling), so the outputs of all cells can be
    # read; no news or update checks, which would call outside this machine.
    for plugin, values in {
        "notebook-extension/tracker": {"windowingMode": "none"},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")
    port, token = free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        **{short_runs.ENV_VAR: "1"},
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
    )
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        # --allow-root: CI runs as root. The read-only extension manager asks no registry.
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work}",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={tmp_path / 'ws'}",
            "--LabApp.extension_manager=readonly",
        ],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            log_text = (tmp_path / "jupyterlab.log").read_text
            assert server.poll() is None, f"JupyterLab exited ({server.returncode}):\n{log_text()}"
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, (
                    f"JupyterLab did not answer within {SERVER_START_S} s:\n"
                    f"{(tmp_path / 'jupyterlab.log').read_text()}"
                )
                time.sleep(1)
        yield f"{url}/lab/tree/{NOTEBOOK}?token={token}&reset", work
    finally:
        # The server and the kernels it started: its own process group.
        stop(server, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop(server, signal.SIGKILL)
            server.wait()
        log.close()


def stop(server, sig):
    try:
        os.killpg(server.pid, sig)
    except ProcessLookupError:
        pass  # already gone


def outputs_of(cell):
    """[(mime type, text)] of a cell's outputs, as JupyterLab shows them."""
    return cell.locator(".jp-OutputArea-output").evaluate_all(
        "els => els.map(e => [e.getAttribute('data-mime-type') || '', e.innerText])"
    )


def open_notebook(page, url, n_code_cells):
    """Load JupyterLab with the notebook, and wait for its cells and an idle kernel."""
    page.goto(url, wait_until="domcontentloaded", timeout=UI_START_S * 1000)
    cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-CodeCell")
    # JupyterLab's start-up in the browser is heavy: minutes on a busy machine.
    cells.first.wait_for(timeout=UI_START_S * 1000)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
        timeout=UI_START_S * 1000
    )
    try:  # cells are rendered a few at a time
        page.wait_for_function(
            "() => document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell').length"
            f" >= {n_code_cells}",
            timeout=UI_START_S * 1000,
            polling=1000,
        )
    finally:
        assert cells.count() == n_code_cells, (
            f"JupyterLab shows {cells.count()} code cells, the notebook has {n_code_cells}."
        )
    return cells


def run_all(page, cells) -> list[int]:
    """Run > Run All Cells, from the menu; returns the code cells that did not run."""
    cells.first.locator(".jp-InputArea-prompt").click()  # the notebook is the current document
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(
        ".lm-Menu-item:not(.lm-mod-disabled)", has_text=re.compile(r"^Run All Cells")
    ).click()
    prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt")
    try:
        prompts.first.filter(has_text=re.compile(r"\[(\*|\d+)\]")).wait_for(timeout=120_000)
    except Exception as err:
        raise AssertionError("Run > Run All Cells did not start running the notebook.") from err
    # Done when no cell is running or queued ([*]): all ran, or Run All stopped at an
    # error and left the rest unrun ([ ]).
    page.wait_for_function(
        """() => ![...document.querySelectorAll(
                      '.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')]
                  .some(p => p.innerText.includes('*'))""",
        timeout=RUN_ALL_S * 1000,
        polling=2000,
    )
    return [
        i for i, text in enumerate(prompts.all_inner_texts()) if not re.search(r"\[\d+\]", text)
    ]


def what_the_student_sees(cells, code_cells, not_run) -> list[str]:
    """Problems in the outputs, compared with the solution's stored ones."""
    problems, student_checks = [], set()
    for index in range(cells.count()):
        for mime, text in outputs_of(cells.nth(index)):
            if mime in ("application/vnd.jupyter.stderr", "application/vnd.jupyter.error"):
                problems.append(f"cell {index}: {mime.split('.')[-1]} block: {text[:600]}")
            if TEXT_PROGRESS_BAR.search(text):
                problems.append(f"cell {index}: a progress bar drawn as text: {text[:200]}")
            student_checks.update(CHECK_LINE.findall(text))
        stored = code_cells[index].get("outputs", [])
        figures = cells.nth(index).locator(".jp-OutputArea-output img")
        if any("image/png" in o.get("data", {}) for o in stored) and figures.count() == 0:
            problems.append(
                f"cell {index}: the solution shows a figure here, the student sees none"
            )
        not_loaded = figures.evaluate_all("imgs => imgs.filter(i => !(i.naturalWidth > 0)).length")
        if not_loaded:
            problems.append(f"cell {index}: {not_loaded} figure(s) did not load")
    if not_run:
        problems.append(f"cells {not_run} did not run: Run All stopped at an error")
    solution_checks = {
        name
        for c in code_cells
        for o in c.get("outputs", [])
        for name in CHECK_LINE.findall("".join(o.get("text", "")))
    }
    if student_checks != solution_checks:
        problems.append(
            f"check lines printed: {sorted(student_checks)}; the solution "
            f"prints {sorted(solution_checks)}"
        )
    return problems


def add_and_run_cell(page, source: str):
    """A new code cell at the end of the notebook, typed and run as a student does."""
    code_cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-CodeCell")
    cell = code_cells.nth(code_cells.count())  # the one about to be added
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")  # a new cell below, in command mode
    page.keyboard.press("Enter")  # edit it
    page.keyboard.insert_text(source)
    page.keyboard.press("Shift+Enter")  # run it (and open an empty cell below)
    cell.locator(".jp-InputArea-prompt", has_text=re.compile(r"\[\d+\]")).wait_for(timeout=600_000)
    return cell


def test_student_notebook_runs_in_jupyterlab_as_a_student_sees_it(jupyterlab):
    chromium = requirements()
    from playwright.sync_api import sync_playwright
    from test_site import in_a_thread_of_its_own

    url, _ = jupyterlab
    solution = json.loads((ROOT / "notebooks" / "solutions" / NOTEBOOK).read_text(encoding="utf-8"))
    code_cells = [c for c in solution["cells"] if c["cell_type"] == "code"]
    training = next(
        i for i, c in enumerate(code_cells) if "vae_prac.train(" in "".join(c["source"])
    )
    ARTIFACTS.mkdir(exist_ok=True)

    console_errors: list[tuple[str, str]] = []

    def in_the_browser():
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.on(
                "console",
                lambda m: (
                    m.type == "error" and console_errors.append((m.text, m.location.get("url", "")))
                ),
            )
            try:
                cells = open_notebook(page, url, len(code_cells))
                not_run = run_all(page, cells)

                training_cell = cells.nth(training)
                figures = training_cell.locator(".jp-OutputArea-output img")
                (figures.last if figures.count() else training_cell).scroll_into_view_if_needed()
                page.screenshot(path=ARTIFACTS / "jupyterlab-05-after-training.png")
                problems = what_the_student_sees(cells, code_cells, not_run)
                assert not problems, "In JupyterLab the student sees:\n" + "\n".join(problems)

                # train() as README shows it, with its default progress bar.
                typed = add_and_run_cell(page, TYPED_CELL)
                shown = outputs_of(typed)
                bar = typed.locator(".jp-OutputArea-output .widget-hprogress .progress-bar")
                assert bar.count() == 1, (
                    f"The progress bar of vae_prac.train() is not a widget in JupyterLab; the cell "
                    f"shows {shown}. (tqdm needs ipywidgets in the kernel's environment.)"
                )
                label = typed.locator(".widget-hbox").first.inner_text()
                done = f"{TYPED_ITERATIONS}/{TYPED_ITERATIONS}"
                assert done in label and bar.evaluate("e => e.style.width") == "100%", (
                    f"The progress bar did not reach the end of training: {label!r}"
                )
                assert not [m for m, _ in shown if m.endswith(("stderr", "error"))], shown
                typed.scroll_into_view_if_needed()
                page.screenshot(path=ARTIFACTS / "jupyterlab-progress-widget.png")
            except BaseException:
                page.screenshot(path=ARTIFACTS / "jupyterlab-failure.png")  # what went wrong, seen
                raise
            finally:
                browser.close()

    in_a_thread_of_its_own(in_the_browser)
    # The notebooks' Colab badges are images from Google: a student online sees them,
    # this machine is offline. Any other error in the browser counts.
    origin = url.split("/lab/")[0]
    errors = [
        f"{text} ({where})"
        for text, where in console_errors
        if not (text.startswith("Failed to load resource") and not where.startswith(origin))
    ]
    assert not errors, "JupyterLab logged errors in the browser:\n" + "\n".join(errors)
