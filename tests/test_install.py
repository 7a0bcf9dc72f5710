"""The README's install command works on every supported Python.

The network tests resolve the README's `pip install -c constraints.txt -e ".[dev]"` for
each Python of tools/lock.py's PYTHONS, as a dry run against PyPI with wheels only, so a
pin with no wheel for one of them fails here and not on a student's machine (the pins are
in constraints.txt; `python tools/lock.py` regenerates them). They skip, saying so, when
PyPI cannot be reached, or when pip runs past DRY_RUN_TIMEOUT (then only after checking
PyPI's file lists for a wheel of every pin). The offline tests check the same pins
against this environment. The notebooks' install cell, as Colab runs it, must keep the
TensorFlow it finds (see `test_colab_install_keeps_its_tensorflow`).
"""

import functools
import http.client
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import types
import urllib.request
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import pytest
from packaging import tags
from packaging.specifiers import SpecifierSet
from packaging.utils import parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _load_lock():
    spec = importlib.util.spec_from_file_location("vae_prac_lock", ROOT / "tools" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock = _load_lock()
THIS_PYTHON = "{}.{}".format(*sys.version_info[:2])
# Seconds for the pip dry runs (all at once). Where the index serves wheel metadata apart
# (PEP 658, as pypi.org does) each takes seconds; where it does not, pip downloads every
# wheel (TensorFlow's is 570 MB), minutes. Past this they skip, saying so.
DRY_RUN_TIMEOUT = 240


def _pip_installs(text):
    """The arguments of each `pip install ...` of vae_prac in shell text."""
    commands = [shlex.split(c) for c in re.findall(r"pip install ([^&\n]+)", text)]
    return [[a for a in c if a != "--quiet"] for c in commands if "--upgrade" not in c]


def _extras(arguments):
    """The extras of the `-e .[...]` in pip arguments, or None if there is none."""
    for flag, value in zip(arguments, arguments[1:]):
        if flag == "-e" and value.startswith("."):
            return set(re.findall(r"[\w-]+", value.partition("[")[2]))
    return None


@pytest.fixture(scope="module")
def readme_install():
    """The README's install arguments, e.g. ['-c', 'constraints.txt', '-e', '.[dev]']."""
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1]
    quick_start = quick_start.split("\n## ", 1)[0]
    blocks = "\n".join(re.findall(r"```(?:bash|sh)?\n(.*?)```", quick_start, re.S))
    found = _pip_installs(blocks)
    assert len(found) == 1, f"README's Quick start should install with one pip command: {found}"
    return found[0]


def test_readme_and_ci_install_with_the_pins(readme_install):
    assert readme_install[:2] == ["-c", "constraints.txt"] and _extras(readme_install), (
        f"README installs with pip install {shlex.join(readme_install)}: it should be "
        'pip install -c constraints.txt -e ".[dev]"'
    )
    assert _extras(readme_install) == set(lock.README_EXTRAS), (
        f"README installs the extras {_extras(readme_install)}, tools/lock.py pins "
        f"{lock.README_EXTRAS} for every Python: make README_EXTRAS agree"
    )
    ci = _pip_installs((ROOT / ".ci" / "run").read_text())
    assert any(
        c[:2] == ["-c", "constraints.txt"]
        and _extras(c) is not None
        and _extras(readme_install) <= _extras(c)
        for c in ci
    ), (
        f".ci/run installs with {ci}: one of them should be the README's "
        f"{shlex.join(readme_install)} (the same extras or more), so CI tests what users get"
    )


def test_readme_names_every_pinned_python():
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1]
    quick_start = quick_start.split("\n## ", 1)[0]
    missing = [p for p in lock.PYTHONS if not re.search(rf"\b{re.escape(p)}\b", quick_start)]
    assert not missing, (
        f"README's Quick start does not name Python {', '.join(missing)}, for which "
        "constraints.txt is pinned and tested (tools/lock.py's PYTHONS)"
    )


@pytest.fixture(scope="module")
def pins_text():
    return (ROOT / "constraints.txt").read_text()


def test_constraints_are_exact_pins_once_per_python(pins_text):
    for python in lock.PYTHONS:
        try:
            pins = lock.read_pins(pins_text, python)
        except ValueError as e:
            pytest.fail(
                f"constraints.txt, Python {python}: {e}; regenerate it with `python tools/lock.py`"
            )
        assert "tensorflow" in pins, f"constraints.txt pins no TensorFlow for Python {python}"


def test_merged_pins_give_back_each_pythons_lock():
    locks = {
        "3.10": {"numpy": ("numpy", "2.2.6"), "tomli": ("tomli", "2.5.0")},
        "3.11": {"numpy": ("numpy", "2.4.6")},
        "3.12": {"numpy": ("numpy", "2.5.5"), "six": ("six", "1.17.0")},
    }
    text = "\n".join(lock.merge(locks))
    for python, pins in locks.items():
        got = lock.read_pins(text, python)
        assert {n: got[n] for n in pins} == {n: v for n, (_, v) in pins.items()}
    # One line where the Pythons agree (a pin of a package not installed does nothing).
    assert "tomli==2.5.0" in text.splitlines() and "six==1.17.0" in text.splitlines()
    with pytest.raises(ValueError, match="pinned twice"):
        lock.read_pins("numpy==1\nnumpy==2 ; python_version >= '3.11'", "3.12")
    with pytest.raises(ValueError, match="not an exact pin"):
        lock.read_pins("numpy>=1", "3.12")


# Offline: what is installed here, from vae_prac[dev] down, must be pinned for this Python
# (no unpinned transitive dependency), at the pinned version (CI tests the pins).


@pytest.fixture(scope="module")
def installed_closure():
    if THIS_PYTHON not in lock.PYTHONS:
        pytest.skip(
            f"Python {THIS_PYTHON} has no pins: constraints.txt is for {', '.join(lock.PYTHONS)}"
        )

    def requires_of(name):
        try:
            return importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            raise LookupError(name) from None

    try:
        needed = lock.closure([(lock.PROJECT, lock.README_EXTRAS)], requires_of)
    except LookupError as e:
        pytest.fail(
            f'{e}: install with the README\'s command, pip install -c constraints.txt -e ".[dev]"'
        )
    needed.pop(lock.PROJECT)
    return needed


def test_pins_cover_everything_installed(installed_closure, pins_text):
    pins = lock.read_pins(pins_text, THIS_PYTHON)
    unpinned = sorted(set(installed_closure) - set(pins))
    assert not unpinned, (
        f"vae_prac[dev] installs {unpinned} on Python {THIS_PYTHON}, which constraints.txt "
        "does not pin: run `python tools/lock.py`"
    )


def test_installed_versions_are_the_pinned_ones(installed_closure, pins_text):
    pins = lock.read_pins(pins_text, THIS_PYTHON)
    wrong = [
        f"{name} {importlib.metadata.version(name)} (pinned {pins[name]})"
        for name in sorted(installed_closure)
        if name in pins and importlib.metadata.version(name) != pins[name]
    ]
    assert not wrong, (
        f"installed here but not at the pinned version: {', '.join(wrong)}; install the "
        'pins with pip install -c constraints.txt -e ".[dev]"'
    )


def test_environment_yml_pins_everything_installed(installed_closure):
    yaml = pytest.importorskip("yaml")
    if THIS_PYTHON != lock.CI_PYTHON:
        pytest.skip(f"environment.yml is for Python {lock.CI_PYTHON}, not {THIS_PYTHON}")
    with open(ROOT / "environment.yml") as f:
        sections = [d["pip"] for d in yaml.safe_load(f)["dependencies"] if isinstance(d, dict)]
    pinned = {
        lock.canonicalize_name(lock.Requirement(line).name)
        for section in sections
        for line in section
        if not line.startswith("-")
    }
    missing = sorted(set(installed_closure) - pinned)
    assert not missing, (
        f"environment.yml does not pin {missing}, which vae_prac[dev] installs: "
        "run `python tools/lock.py`"
    )


# Online, against PyPI.


def _pypi_problem():
    """Why PyPI cannot be reached, or None."""
    request = urllib.request.Request(lock.INDEX + "pip/", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=15):
            return None
    except OSError as e:  # URLError, HTTPError, timeouts
        return str(e)


@pytest.fixture(scope="module")
def pypi():
    problem = _pypi_problem()
    if problem:
        pytest.skip(
            f"PyPI ({lock.INDEX}) cannot be reached ({problem}); the install checks need it"
        )


@functools.lru_cache(maxsize=None)
def _files(name, tries=3):
    """The files PyPI lists for a project (PEP 691 JSON)."""
    request = urllib.request.Request(
        f"{lock.INDEX}{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    for attempt in range(tries):  # many pages at once: a dropped connection is retried
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)["files"]
        except (OSError, http.client.HTTPException):
            if attempt == tries - 1:
                raise


def _wheel_problems(pins, python):
    """The pins that a wheels-only install on `python` (this platform) cannot use,
    read off PyPI's file lists: no pip, so a quick check and a clear message."""
    version_info = tuple(map(int, python.split(".")))
    platforms = list(tags.platform_tags())
    usable = set(tags.cpython_tags(version_info, platforms=platforms)) | set(
        tags.compatible_tags(version_info, "cp{}{}".format(*version_info), platforms)
    )
    names = sorted(pins)
    with ThreadPoolExecutor(16) as pool:
        index = dict(zip(names, pool.map(_files, names)))
    problems = []
    for name in names:
        pinned = Version(pins[name])
        wheels = [
            f
            for f in index[name]
            if f["filename"].endswith(".whl")
            and not f.get("yanked")
            and f"-{pins[name]}" in f["filename"]
            and parse_wheel_filename(f["filename"])[1] == pinned
        ]
        if not wheels:
            problems.append(f"{name}=={pinned} has no wheel on PyPI (or it was yanked)")
        elif not any(
            SpecifierSet(f.get("requires-python") or "").contains(python + ".0") for f in wheels
        ):
            problems.append(f"{name}=={pinned} requires Python {wheels[0].get('requires-python')}")
        elif not any(parse_wheel_filename(f["filename"])[3] & usable for f in wheels):
            problems.append(f"{name}=={pinned} has no wheel for Python {python} here")
    return problems


# numpy 1.21.0 allows Python 3.10 (Requires-Python >=3.7) but has no wheel for it
# (those came with 1.21.3): pip's dry runs must refuse it, as a wheels-only install would.
NO_WHEEL_FOR_310 = "numpy==1.21.0"


@pytest.fixture(scope="module")
def dry_runs(pypi, readme_install):
    """{case: pip's report, or the ResolutionError}, all resolved at once."""
    cases = {python: (python, readme_install) for python in lock.PYTHONS}
    cases["no wheel"] = ("3.10", [NO_WHEEL_FOR_310])

    def run(case):
        try:
            return lock.pip_dry_run(*case, timeout=DRY_RUN_TIMEOUT)
        except lock.ResolutionError as e:
            return e

    with ThreadPoolExecutor(len(cases)) as pool:
        return dict(zip(cases, pool.map(run, cases.values())))


@pytest.mark.network
@pytest.mark.parametrize("python", lock.PYTHONS)
def test_readme_install_resolves_on(python, dry_runs, pins_text):
    pins = lock.read_pins(pins_text, python)
    result = dry_runs[python]
    if isinstance(result, lock.ResolutionTimeout):
        # A slow network is no verdict: check what can be checked without pip.
        problems = _wheel_problems(pins, python)
        assert not problems, (
            f"On Python {python} the README's install would fail: "
            + "; ".join(problems)
            + ". Regenerate the pins with `python tools/lock.py`."
        )
        pytest.skip(
            f"{result}: every pin has a wheel for Python {python}, but pip's "
            "resolution of the whole install was not checked"
        )
    if isinstance(result, Exception):
        pytest.fail(
            f"The README's install fails on Python {python}:\n{result}\n"
            "Fix the pins with `python tools/lock.py`."
        )
    problems = lock.mismatches(result, pins)
    assert not problems, (
        f"On Python {python} the README's install is not fully pinned: "
        + "; ".join(problems)
        + ". Run `python tools/lock.py`."
    )
    assert {"tensorflow", "tensorflow-probability", "pytest"} <= set(lock.installed(result))


@pytest.mark.network
def test_dry_run_refuses_a_release_without_a_wheel_for_that_python(dry_runs):
    result = dry_runs["no wheel"]
    if isinstance(result, lock.ResolutionTimeout):
        pytest.skip(str(result))
    assert isinstance(result, lock.ResolutionError), (
        f"{NO_WHEEL_FOR_310} resolved for Python 3.10 though it has no wheel for it: "
        "the dry runs do not test what a user's install would meet"
    )


@pytest.mark.network
def test_the_311_pins_have_no_wheels_for_310(pypi, pins_text):
    # The issue this guards against: pins resolved on 3.11, installed on 3.10. Only the
    # pins that differ are looked up.
    pins_310, pins_311 = (lock.read_pins(pins_text, p) for p in ("3.10", "3.11"))
    differ = {n: v for n, v in pins_311.items() if pins_310.get(n) != v}
    if not differ:
        pytest.skip("constraints.txt pins the same versions on 3.10 and 3.11")
    assert _wheel_problems(differ, "3.10"), (
        f"the Python 3.11 pins of {sorted(differ)} all have wheels for 3.10, so why do "
        "the 3.10 pins differ? Regenerate constraints.txt with `python tools/lock.py "
        "--upgrade`"
    )
    assert not _wheel_problems(differ, "3.11")


# The notebooks' install cell in Colab. Colab has its own TensorFlow and, maybe, no
# tf-keras, which TensorFlow Probability imports and which must match TensorFlow's minor
# version. Without a requirement on the TensorFlow it finds, pip takes the newest tf-keras
# and replaces TensorFlow to match it (a 570 MB download, and not Colab's build), whatever
# range pyproject.toml gives: so the cell names the installed TensorFlow. This runs the
# cell as IPython would in Colab, and resolves what it asks for in an environment that
# has only that TensorFlow. pip decides from installed packages' metadata alone, so a
# `.dist-info` folder stands in for TensorFlow's 2 GB.

COLAB_TENSORFLOWS = ("2.20.0", "2.21.0")


@pytest.fixture(scope="module")
def colab_install_cell():
    """The source of the solution notebooks' install cell (the same in each)."""
    cells = {}
    for path in sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code" and "%pip install" in source:
                cells[path.name] = source
                break
    assert cells, "no solution notebook has a `%pip install` cell"
    assert len(set(cells.values())) == 1, (
        "the notebooks install vae_prac in different ways: "
        + "; ".join(f"{name}: {source!r}" for name, source in cells.items())
    )
    return next(iter(cells.values()))


def _pip_arguments_in_colab(source, tensorflow):
    """The arguments that the cell gives %pip in Colab with TensorFlow `tensorflow`:
    the cell is transformed by IPython's own transformer and its `{expressions}` are
    expanded in the cell's namespace, as IPython does. The cell is expected to read the
    installed version with importlib.metadata (importing TensorFlow before installing
    would need a restart after it)."""
    from IPython.core.inputtransformer2 import TransformerManager
    from IPython.utils.text import DollarFormatter

    calls = []

    class Shell:
        def run_line_magic(self, name, line, _stack_depth=1):
            scope = dict(sys._getframe(1).f_locals)
            calls.append((name, DollarFormatter().vformat(line, args=[], kwargs=scope)))

    shell = Shell()
    real_version = importlib.metadata.version

    def version(name):
        return tensorflow if name == "tensorflow" else real_version(name)

    code = TransformerManager().transform_cell(source)
    with (
        mock.patch.dict(sys.modules, {"google.colab": types.ModuleType("google.colab")}),
        mock.patch("importlib.metadata.version", version),
    ):
        exec(
            compile(code, "<the notebooks' install cell>", "exec"),
            {"get_ipython": lambda: shell, "__name__": "__main__"},
        )
    installs = [shlex.split(line) for name, line in calls if name == "pip"]
    assert len(installs) == 1 and installs[0][0] == "install", (
        f"in Colab the install cell should run one `%pip install`, it ran {calls}"
    )
    return installs[0][1:]


def _environment_with(path, dists):
    """A virtual environment (no pip) in which `dists` {name: version} look installed."""
    venv.create(path, with_pip=False, symlinks=os.name != "nt")
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for name, version in dists.items():
        info = Path(site) / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text("")
    return python


def _colab_dry_run(source, tensorflow):
    """What the install cell would install where only TensorFlow `tensorflow` is:
    {canonical name: version}, or the exception (a timeout skips, a failure fails)."""
    arguments = _pip_arguments_in_colab(source, tensorflow)
    ours = [a for a in arguments if a.replace(" ", "").startswith("vae_prac@")]
    assert len(ours) == 1, f"the install cell should install vae_prac @ git+...: {arguments}"
    # This checkout's pyproject.toml stands for the one the cell would fetch.
    arguments[arguments.index(ours[0])] = str(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        python = _environment_with(Path(tmp) / "colab", {"tensorflow": tensorflow})
        report = Path(tmp) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "--isolated",
            "install",
            "--dry-run",
            "--report",
            str(report),
            "--index-url",
            lock.INDEX,
            "--no-input",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            *arguments,
        ]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=DRY_RUN_TIMEOUT,
                env=dict(os.environ, PIP_CONFIG_FILE=os.devnull),
            )
        except subprocess.TimeoutExpired as e:
            return e
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            return RuntimeError(f"pip install {shlex.join(arguments)} failed:\n{tail}")
        return {
            lock.canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]
        }


@pytest.fixture(scope="module")
def colab_dry_runs(pypi, colab_install_cell):
    with ThreadPoolExecutor(len(COLAB_TENSORFLOWS)) as pool:
        return dict(
            zip(
                COLAB_TENSORFLOWS,
                pool.map(
                    lambda version: _colab_dry_run(colab_install_cell, version), COLAB_TENSORFLOWS
                ),
            )
        )


@pytest.mark.parametrize("tensorflow", COLAB_TENSORFLOWS)
@pytest.mark.network
def test_colab_install_keeps_its_tensorflow(tensorflow, colab_dry_runs):
    result = colab_dry_runs[tensorflow]
    if isinstance(result, subprocess.TimeoutExpired):
        pytest.skip(f"pip took over {DRY_RUN_TIMEOUT} s to resolve the install cell; is PyPI slow?")
    if isinstance(result, Exception):
        pytest.fail(str(result))
    assert "tensorflow" not in result, (
        f"In Colab with TensorFlow {tensorflow} and no tf-keras, the notebooks' install "
        f"cell replaces TensorFlow with {result['tensorflow']} (a 570 MB download): it "
        "should name the installed TensorFlow, e.g. "
        "\"tensorflow=={version('tensorflow')}\" after `from importlib.metadata import version`"
    )
    minor = tensorflow.rsplit(".", 1)[0] + "."
    assert result.get("tf-keras", "").startswith(minor), (
        f"with TensorFlow {tensorflow} the install cell installs tf-keras "
        f"{result.get('tf-keras')}, which does not match it"
    )
