"""The grader's sandbox, tried as a dishonest student would: every attack must fail.

Most tests run a small Python program through ``sandbox.run`` (a fraction of a second
each); the slow ones run a notebook through ``python -m vae_prac.course.run_notebook``
inside the sandbox, as the grader does. Where bubblewrap cannot run here the sandboxed
tests are skipped, saying why, except in CI (CI=true), where that is a failure: CI must
run them.
"""

import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

import vae_prac
from vae_prac.course import ROOT, SOLUTIONS_DIR, run_notebook, sandbox

IN_CI = os.environ.get("CI", "").lower() == "true"
REASON = sandbox.unavailable_reason()


@pytest.fixture
def bwrap():
    """Skip (fail in CI) where the sandbox cannot run."""
    if REASON is not None:
        if IN_CI:
            pytest.fail(f"CI must run the sandbox's tests: {REASON}")
        pytest.skip(REASON)


@pytest.fixture
def workdir(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def sandboxed(code, workdir, *args, timeout=30, memory_limit_gib=2.0, **options):
    """Run a Python program (dedented) in the sandbox; its Finished."""
    argv = [sys.executable, "-c", textwrap.dedent(code), *map(str, args)]
    return sandbox.run(argv, workdir, timeout=timeout, memory_limit_gib=memory_limit_gib, **options)


def answer(finished):
    """The JSON object a program printed on its last line."""
    assert finished.returncode == 0, finished.stderr.decode(errors="replace")
    return json.loads(finished.stdout.decode().splitlines()[-1])


def alive_with(token: str) -> list[int]:
    """Processes of this machine whose command line holds ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


# --------------------------------------------------------------------------
# Without bwrap: what the grader is told.


def test_without_bwrap_the_sandbox_says_what_to_install(monkeypatch, workdir):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    monkeypatch.setattr(sandbox.sys, "platform", "linux")
    sandbox.unavailable_reason.cache_clear()
    try:
        reason = sandbox.unavailable_reason()
        assert "apt-get install bubblewrap" in reason and "--no-sandbox" in reason
        with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap"):
            sandbox.run(["true"], workdir, timeout=5, memory_limit_gib=None)
    finally:
        sandbox.unavailable_reason.cache_clear()


def test_on_macos_the_sandbox_says_it_is_not_supported(monkeypatch):
    monkeypatch.setattr(sandbox.sys, "platform", "darwin")
    sandbox.unavailable_reason.cache_clear()
    try:
        assert "not supported" in sandbox.unavailable_reason()
    finally:
        sandbox.unavailable_reason.cache_clear()


def test_a_workdir_holding_the_repository_is_refused():
    with pytest.raises(ValueError, match="fresh folder"):
        sandbox.run(["true"], ROOT.parent, timeout=5, memory_limit_gib=None, sandbox=False)


# --------------------------------------------------------------------------
# Reading and writing.


def test_the_workdir_is_the_only_writable_folder(bwrap, workdir, tmp_path):
    checks_init = Path(vae_prac.__file__).parent / "checks" / "__init__.py"
    before = hashlib.sha256(checks_init.read_bytes()).hexdigest()
    targets = {
        "workdir": workdir / "mine.txt",
        "repository": ROOT / "sandbox_probe.txt",
        "installed checks": checks_init,
        "home": Path.home() / "sandbox_probe.txt",
        "beside the workdir": tmp_path / "sandbox_probe.txt",
    }
    finished = sandboxed(
        """
        import json, sys
        results = {}
        for name, path in zip(sys.argv[1::2], sys.argv[2::2]):
            try:
                with open(path, "a") as f:
                    f.write("import os  # planted\\n")
                results[name] = "written"
            except OSError as err:
                results[name] = type(err).__name__
        print(json.dumps(results))
        """,
        workdir,
        *[item for pair in targets.items() for item in pair],
    )
    results = answer(finished)
    assert results.pop("workdir") == "written"
    assert results.pop("beside the workdir") == "written"  # into the private /tmp ...
    assert not (tmp_path / "sandbox_probe.txt").exists()  # ... which is not this one
    assert all(status != "written" for status in results.values()), results
    assert (workdir / "mine.txt").is_file()
    assert not (ROOT / "sandbox_probe.txt").exists()
    assert not (Path.home() / "sandbox_probe.txt").exists()
    assert hashlib.sha256(checks_init.read_bytes()).hexdigest() == before


def test_the_solutions_notebooks_and_hidden_paths_are_invisible(bwrap, workdir, tmp_path):
    assert any(SOLUTIONS_DIR.glob("*.ipynb"))
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    (submissions / "ada.ipynb").write_text("{}")
    # Hidden although outside /tmp (which is private anyway): a folder git ignores.
    elsewhere = ROOT / "test-artifacts" / f"hidden_{secrets.token_hex(4)}"
    elsewhere.mkdir(parents=True)
    try:
        (elsewhere / "grades.csv").write_text("secret")
        finished = sandboxed(
            """
            import json, os, sys
            listed = {}
            for path in sys.argv[1:]:
                try:
                    listed[path] = sorted(os.listdir(path))
                except OSError as err:
                    listed[path] = type(err).__name__
            print(json.dumps(listed))
            """,
            workdir,
            SOLUTIONS_DIR,
            ROOT / "notebooks",
            submissions,
            elsewhere,
            hide=[submissions, elsewhere],
        )
        listed = answer(finished)
    finally:
        (elsewhere / "grades.csv").unlink()
        elsewhere.rmdir()
    for path, content in listed.items():
        assert content in ([], "FileNotFoundError"), (path, content)
    assert listed[str(ROOT / "notebooks")] == []


def test_no_grader_process_is_visible(bwrap, workdir):
    token = f"grader-{secrets.token_hex(8)}"
    grader = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", token])
    try:
        finished = sandboxed(
            """
            import json, os, sys
            token = sys.stdin.read().encode()
            seen, pids = [], [p for p in os.listdir("/proc") if p.isdigit()]
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if token in f.read():
                            seen.append(pid)
                except OSError:
                    pass
            print(json.dumps({"seen": seen, "pids": len(pids), "ppid": os.getppid()}))
            """,
            workdir,
            stdin=token.encode(),
        )
    finally:
        grader.kill()
        grader.wait()
    seen = answer(finished)
    assert seen["seen"] == [] and seen["pids"] <= 3 and seen["ppid"] == 1


def test_there_is_no_network(bwrap, workdir):
    finished = sandboxed(
        """
        import json, socket
        try:
            socket.create_connection(("1.1.1.1", 53), timeout=5).close()
            result = "connected"
        except OSError as err:
            result = type(err).__name__
        print(json.dumps(result))
        """,
        workdir,
    )
    assert answer(finished) != "connected"


def test_the_environment_is_cleared(bwrap, workdir, monkeypatch):
    monkeypatch.setenv("GRADER_SECRET", "s3cret")
    finished = sandboxed(
        "import json, os; print(json.dumps(dict(os.environ)))", workdir, env={"EXTRA": "1"}
    )
    environ = answer(finished)
    assert "GRADER_SECRET" not in environ and environ["EXTRA"] == "1"
    assert environ["HOME"].startswith("/tmp/") and environ["IPYTHONDIR"].startswith("/tmp/")


# --------------------------------------------------------------------------
# Processes: nothing outlives the run, nothing kills the grader.


# Without a memory limit no control group is made: the PID namespace alone ends the tree.
@pytest.mark.parametrize("memory", [None, 2.0])
def test_a_detached_double_forked_child_does_not_survive(bwrap, workdir, memory):
    token = secrets.token_hex(8)
    finished = sandboxed(
        f"""
        # {token}
        import os, sys, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(2)
                with open(sys.argv[1], "w") as f:
                    f.write("rewritten after the grader moved on")
            os._exit(0)
        print("parent done")
        """,
        workdir,
        workdir / "late.txt",
        memory_limit_gib=memory,
    )
    assert finished.returncode == 0 and not finished.timed_out
    assert alive_with(token) == []
    time.sleep(3)
    assert not (workdir / "late.txt").exists()


def test_killing_its_parent_leaves_the_caller_alive(bwrap, workdir):
    finished = sandboxed(
        """
        import os, signal, time
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(0.2)
        print("still here, parent", os.getppid())
        """,
        workdir,
    )
    assert finished.returncode == 0 and b"still here" in finished.stdout


def test_memory_is_limited_for_the_whole_tree(bwrap, workdir):
    group = sandbox._Cgroup.make(1 << 30)
    if group is None:
        pytest.skip(
            "no control group can be made here (needs root or a delegated cgroup): "
            "the memory limit is per process"
        )
    group.remove()
    token = secrets.token_hex(8)
    finished = sandboxed(
        f"""
        # {token}
        import os, subprocess, sys, time
        hog = (
            "import sys, time\\n"
            "block = b'x' * 1_200_000_000\\n"
            "open(sys.argv[1], 'w').close()\\n"
            "time.sleep(600)  # {token}\\n"
        )
        children = [
            subprocess.Popen([sys.executable, "-c", hog, f"got{{i}}"]) for i in range(3)
        ]
        # Wait until each child holds its memory or has been killed, then leave them.
        while not all(c.poll() is not None or os.path.exists(f"got{{i}}")
                      for i, c in enumerate(children)):
            time.sleep(0.1)
        # A child may write its file and be killed later, when another one's allocation
        # meets the limit: what matters is how many hold their 1.2 GB together.
        print("holding:", sum(c.poll() is None for c in children))
        """,
        workdir,
        memory_limit_gib=3.0,
        timeout=60,
    )
    assert finished.memory_limit == sandbox.CGROUP
    assert not finished.timed_out, finished
    holding = re.search(rb"holding: (\d)", finished.stdout)
    assert holding and int(holding.group(1)) < 3, finished  # never all three at once
    assert finished.oom_kills >= 1
    assert alive_with(token) == []  # and those that did are gone


# Without a memory limit no control group is made: the PID namespace alone ends the tree.
@pytest.mark.parametrize("memory", [None, 2.0])
def test_a_timeout_kills_a_program_that_ignores_signals(bwrap, workdir, memory):
    token = secrets.token_hex(8)
    finished = sandboxed(
        f"""
        # {token}
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring", flush=True)
        time.sleep(600)
        """,
        workdir,
        timeout=2,
        memory_limit_gib=memory,
    )
    assert finished.timed_out and finished.returncode is None
    assert finished.seconds < 15 and b"ignoring" in finished.stdout
    assert alive_with(token) == []


def test_output_beyond_the_limit_is_dropped(bwrap, workdir):
    finished = sandboxed(
        """
        import sys
        for _ in range(50):
            sys.stdout.write("x" * 100_000)
            sys.stderr.write("y" * 100_000)
        """,
        workdir,
        output_limit=10_000,
    )
    assert finished.returncode == 0
    for stream in (finished.stdout, finished.stderr):
        assert 10_000 <= len(stream) < 10_200 and b"dropped" in stream


def test_an_ipython_startup_file_is_not_seen_by_the_next_run(bwrap, workdir, tmp_path):
    plant = """
        import json, os
        startup = os.path.join(os.environ["IPYTHONDIR"], "profile_default", "startup")
        os.makedirs(startup, exist_ok=True)
        with open(os.path.join(startup, "00-pass-everything.py"), "w") as f:
            f.write("print('poisoned')")
        print(json.dumps(os.listdir(startup)))
        """
    assert answer(sandboxed(plant, workdir)) == ["00-pass-everything.py"]
    other = tmp_path / "next"
    other.mkdir()
    look = """
        import json, os
        startup = os.path.join(os.environ["IPYTHONDIR"], "profile_default", "startup")
        print(json.dumps(os.path.exists(startup)))
        """
    assert answer(sandboxed(look, other)) is False


def test_without_the_sandbox_the_process_group_is_ended(workdir):
    token = secrets.token_hex(8)
    finished = sandboxed(
        f"""
        # {token}
        import os, subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)  # {token}"])
        print(os.environ["HOME"])
        """,
        workdir,
        sandbox=False,
    )
    assert finished.returncode == 0
    assert finished.stdout.decode().strip() != str(Path.home())  # a private HOME
    time.sleep(0.2)
    assert alive_with(token) == []


# --------------------------------------------------------------------------
# The runner's output caps and reports, without a kernel.


def test_capping_survives_odd_outputs():
    cell = new_code_cell("x")
    cell.outputs = [
        {"output_type": "stream", "name": "stdout", "text": 12345},
        new_output("stream", name="stdout", text="a" * 5000),
        new_output("display_data", data={"image/png": "A" * 5000, "text/plain": "b" * 5000}),
        new_output("error", ename="E", evalue="v" * 5000, traceback=["t" * 100] * 50),
        "not an output",
    ]
    run_notebook.cap_outputs(cell, 1000)
    assert sum(run_notebook._size(dict(o)) for o in cell.outputs) < 1400
    assert "dropped" in cell.outputs[-1]["text"]
    run_notebook.coalesce_streams(cell)


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "text",
        {"errors": 3},
        {"errors": [[1, 2, 3], ["x", "y", "z"], [-1, "a", "b"]]},
        {"cell_seconds": {"1": "x", "a": 1, "2": 1e308 * 10}, "seconds": -3, "timed_out": "yes"},
    ],
)
def test_a_report_is_read_without_trusting_it(data):
    report = run_notebook.ExecutionReport.from_json(data)
    assert report.timed_out is False and report.seconds == 0.0
    assert all(isinstance(e.ename, str) for e in report.errors)
    assert all(isinstance(s, float) for s in report.cell_seconds.values())


# --------------------------------------------------------------------------
# Notebooks run in the sandbox, as the grader runs them.


def run_in_sandbox(tmp_path, workdir, cells, timeout=120, output_limit=None):
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), workdir / "sub.ipynb")
    argv = [sys.executable, "-m", "vae_prac.course.run_notebook"]
    argv += ["sub.ipynb", "out.ipynb", "report.json", "--timeout", str(timeout)]
    if output_limit:
        argv += ["--output-limit", str(output_limit)]
    finished = sandbox.run(
        argv,
        workdir,
        timeout=timeout + 60,
        memory_limit_gib=4.0,
        env={"VAE_PRAC_SHORT_RUNS": "1"},
        hide=[tmp_path / "sibling"],
    )
    report = json.loads((workdir / "report.json").read_text())
    return finished, report, nbformat.read(workdir / "out.ipynb", as_version=4)


@pytest.mark.slow
def test_a_notebook_deleting_every_notebook_deletes_only_its_own(bwrap, tmp_path, workdir):
    decoys = [tmp_path / "decoy.ipynb", tmp_path / "sibling" / "classmate.ipynb"]
    for decoy in decoys:
        decoy.parent.mkdir(exist_ok=True)
        decoy.write_text("{}")
    solutions = sorted(p.name for p in SOLUTIONS_DIR.glob("*.ipynb"))
    finished, report, out = run_in_sandbox(
        tmp_path,
        workdir,
        [
            "import glob, os\n"
            "found = glob.glob('../**/*.ipynb', recursive=True)\n"
            "found += glob.glob('/tmp/**/*.ipynb', recursive=True)\n"
            "deleted = []\n"
            "for path in found:\n"
            "    try:\n"
            "        os.remove(path)\n"
            "        deleted.append(path)\n"
            "    except OSError:\n"
            "        pass\n"
            "print(deleted)",
        ],
    )
    assert finished.returncode == 0, finished.stderr.decode(errors="replace")
    assert report["errors"] == [] and report["timed_out"] is False, report
    printed = out.cells[0].outputs[0]["text"]
    assert "sub.ipynb" in printed  # its own copy, which it may delete
    assert all(decoy.read_text() == "{}" for decoy in decoys)
    assert sorted(p.name for p in SOLUTIONS_DIR.glob("*.ipynb")) == solutions


@pytest.mark.slow
def test_a_notebook_printing_50_mb_is_capped(bwrap, tmp_path, workdir):
    finished, report, out = run_in_sandbox(
        tmp_path,
        workdir,
        [
            "import sys\nfor _ in range(50):\n    sys.stdout.write('x' * 1_000_000)",
            "print('after')",
        ],
        output_limit=10_000,
    )
    assert finished.returncode == 0, finished.stderr.decode(errors="replace")
    assert report["errors"] == [] and report["timed_out"] is False
    text = "".join(o.get("text", "") for o in out.cells[0].outputs)
    assert len(text) < 12_000 and "were dropped" in text
    assert out.cells[1].outputs[0]["text"] == "after\n"
    assert (workdir / "out.ipynb").stat().st_size < 100_000


@pytest.mark.slow
def test_the_runner_reports_a_timeout_and_errors(bwrap, tmp_path, workdir):
    finished, report, out = run_in_sandbox(
        tmp_path,
        workdir,
        [
            "1 / 0",
            "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(600)",
            "print('never')",
        ],
        timeout=5,
    )
    assert finished.returncode == 0 and not finished.timed_out
    assert report["errors"] == [[0, "ZeroDivisionError", "division by zero"]]
    assert report["timed_out"] is True and report["timed_out_cell"] == 1
    assert finished.seconds < 60
    parsed = run_notebook.ExecutionReport.from_json(report)
    assert parsed.timed_out_cell == 1 and set(parsed.cell_seconds) == {0, 1}


def test_the_data_folder_stays_readable_even_under_tmp(bwrap, workdir, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "digits.npz").write_text("digits")
    monkeypatch.setenv("VAE_PRAC_DATA_DIR", str(data))
    finished = sandboxed(
        """
        import json, os
        folder = os.environ["VAE_PRAC_DATA_DIR"]
        read = open(os.path.join(folder, "digits.npz")).read()
        try:
            open(os.path.join(folder, "digits.npz"), "w").close()
            written = True
        except OSError:
            written = False
        print(json.dumps([read, written]))
        """,
        workdir,
    )
    assert answer(finished) == ["digits", False]
