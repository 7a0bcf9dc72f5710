"""The three ways of installing vae_prac agree with each other.

pyproject.toml declares the dependencies (lower bounds, so Colab keeps its own
TensorFlow); constraints.txt pins the exact versions, for each supported Python (lines
with a marker hold on some Pythons only); environment.yml gives conda users the pins of
its Python. `python tools/lock.py` writes both from pyproject.toml. A dependency added to
one and forgotten in another fails here, not on a student's machine.
"""

import importlib
import importlib.metadata
import importlib.util
import shutil
import sysconfig
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("vae_prac_lock", ROOT / "tools" / "lock.py")
lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock)


@pytest.fixture(scope="module")
def pyproject():
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def declared(pyproject):
    """Runtime and dev requirements from pyproject.toml, keyed by canonical name."""
    project = pyproject["project"]
    reqs = [
        Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]
    ]
    return {canonicalize_name(r.name): r for r in reqs}


@pytest.fixture(scope="module")
def pinned_requirements(pyproject):
    """{python: the requirements constraints.txt must pin for it}: runtime and the README's
    extras for every Python; every extra too for the Python CI tests with."""
    project = pyproject["project"]
    extras = project.get("optional-dependencies", {})
    return {
        python: [
            Requirement(r)
            for r in project["dependencies"]
            + [
                r
                for extra, reqs in extras.items()
                for r in reqs
                if extra in lock.README_EXTRAS or python == lock.CI_PYTHON
            ]
        ]
        for python in lock.PYTHONS
    }


@pytest.fixture(scope="module")
def constraints():
    """constraints.txt as {python: {canonical name: pinned version}}, for each Python."""
    text = (ROOT / "constraints.txt").read_text()
    return {python: lock.read_pins(text, python) for python in lock.PYTHONS}


@pytest.fixture(scope="module")
def environment():
    with open(ROOT / "environment.yml") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def conda_pip(environment):
    """The requirements of environment.yml's pip section, keyed by canonical name."""
    sections = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict)]
    assert len(sections) == 1, "environment.yml needs exactly one pip: section"
    reqs = [Requirement(line) for line in sections[0] if not line.startswith("-")]
    return {canonicalize_name(r.name): r for r in reqs}


def _exact_version(req):
    """The version of an exact pin `name==X`, else None."""
    specs = list(req.specifier)
    if len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version:
        return specs[0].version
    return None


def test_environment_installs_every_declared_dependency(declared, conda_pip):
    missing = sorted(set(declared) - set(conda_pip))
    assert not missing, f"environment.yml's pip section lacks {missing}"
    for name, req in declared.items():
        assert req.extras <= conda_pip[name].extras, (
            f"environment.yml installs {name} without the extras {sorted(req.extras)}"
        )


def _conda_python(environment):
    pythons = [
        d.split("=", 1)[1]
        for d in environment["dependencies"]
        if isinstance(d, str) and d.split("=")[0].strip() == "python"
    ]
    assert len(pythons) == 1, "environment.yml must pin python once (python=3.X)"
    return pythons[0]


def test_environment_python_satisfies_requires_python(pyproject, environment):
    python = _conda_python(environment)
    requires = SpecifierSet(pyproject["project"]["requires-python"])
    assert requires.contains(python), (
        f"environment.yml's python={python} does not satisfy requires-python {requires}"
    )
    assert environment["channels"] == ["conda-forge"]
    assert "pip" in environment["dependencies"]


def test_constraints_pin_every_dependency_within_its_range(pinned_requirements, constraints):
    for python, pins in constraints.items():
        for req in pinned_requirements[python]:
            if req.marker is not None and not req.marker.evaluate(lock.target_environment(python)):
                continue
            name = canonicalize_name(req.name)
            assert name in pins, (
                f"constraints.txt does not pin {name} for Python {python}: "
                "run `python tools/lock.py`"
            )
            assert req.specifier.contains(pins[name], prereleases=True), (
                f"constraints.txt pins {name}=={pins[name]} for Python {python}, outside "
                f"pyproject's {req.specifier}: run `python tools/lock.py`"
            )


def test_constraints_pin_every_extra_requirement_too(constraints):
    # tensorflow-probability[tf] pulls in tf-keras, whose minor version must match
    # TensorFlow's: both must be pinned, and to the same minor version.
    for python, pins in constraints.items():
        assert "tf-keras" in pins, f"constraints.txt does not pin tf-keras for {python}"
        assert pins["tensorflow"].split(".")[:2] == pins["tf-keras"].split(".")[:2], (
            f"Python {python}: tensorflow {pins['tensorflow']} with tf-keras {pins['tf-keras']}"
        )


def test_environment_pins_agree_with_constraints(environment, conda_pip, constraints):
    python = _conda_python(environment)
    assert python == lock.CI_PYTHON, (
        f"environment.yml has python={python}, tools/lock.py writes it for "
        f"{lock.CI_PYTHON}: run `python tools/lock.py`"
    )
    pins = constraints[python]
    for name, req in conda_pip.items():
        version = _exact_version(req)
        assert version, f"environment.yml should pin {name} exactly, got {req}"
        assert name in pins, (
            f"environment.yml pins {name}, constraints.txt does not for Python {python}"
        )
        assert version == pins[name], (
            f"{name}: environment.yml pins {version}, constraints.txt {pins[name]} "
            f"for Python {python}: run `python tools/lock.py`"
        )


def test_classifiers_name_the_supported_pythons(pyproject):
    requires = SpecifierSet(pyproject["project"]["requires-python"])
    listed = {
        c.rsplit(" :: ", 1)[1]
        for c in pyproject["project"]["classifiers"]
        if c.startswith("Programming Language :: Python :: 3.")
    }
    assert listed == set(lock.PYTHONS), (
        f"pyproject's classifiers name Python {sorted(listed)}; constraints.txt is "
        f"pinned and tested for {list(lock.PYTHONS)}"
    )
    for python in lock.PYTHONS:
        assert requires.contains(python + ".0"), (
            f"requires-python {requires} excludes Python {python}, which is supported"
        )


def test_installed_versions_satisfy_pyproject(declared):
    for name, req in declared.items():
        version = importlib.metadata.version(name)
        assert req.specifier.contains(version, prereleases=True), (
            f"installed {name} {version} is outside pyproject's {req.specifier}"
        )


def _packaged(setuptools_config):
    """The packages a wheel would contain, from pyproject's [tool.setuptools]."""
    packages = setuptools_config.get("packages")
    if isinstance(packages, list):
        return set(packages)
    if isinstance(packages, dict) and "find" in packages:
        import setuptools

        find = packages["find"]
        finder = (
            setuptools.find_namespace_packages
            if find.get("namespaces", True)
            else setuptools.find_packages
        )
        where = find.get("where", ["."])
        return {
            pkg
            for w in where
            for pkg in finder(
                where=str(ROOT / w),
                include=find.get("include", ("*",)),
                exclude=find.get("exclude", ()),
            )
        }
    pytest.fail("pyproject.toml should say which packages to ship in [tool.setuptools]")


def test_every_subpackage_is_shipped(pyproject):
    # An editable install sees every folder, so only this catches a subpackage left out
    # of the wheel that `pip install git+...` (e.g. in Colab) builds.
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "vae_prac").rglob("__init__.py")
    }
    missing = sorted(on_disk - _packaged(pyproject["tool"]["setuptools"]))
    assert not missing, (
        f"pyproject.toml's [tool.setuptools] leaves {missing} out of the wheel; use "
        f'[tool.setuptools.packages.find] include = ["vae_prac", "vae_prac.*"]'
    )


def test_console_script_resolves_to_a_callable(pyproject):
    target = pyproject["project"]["scripts"]["vae-prac"]
    module, _, attr = target.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    # The installed entry point (what the `vae-prac` command runs) is the same one.
    installed = importlib.metadata.entry_points(group="console_scripts", name="vae-prac")
    assert [ep.value for ep in installed] == [target]
    assert callable(next(iter(installed)).load())


def test_the_stored_results_are_shipped(pyproject):
    # Notebook 06 reads vae_prac/results/ through the package, also from a wheel (Colab).
    import fnmatch

    patterns = pyproject["tool"]["setuptools"]["package-data"]["vae_prac"]
    results = sorted((ROOT / "vae_prac" / "results").iterdir())
    assert results, "vae_prac/results holds nothing"
    for file in results:
        assert any(fnmatch.fnmatch(f"results/{file.name}", p) for p in patterns), (
            f"vae_prac/results/{file.name} would be left out of the wheel"
        )


def test_the_habits_tools_are_dev_dependencies_and_the_hooks_run_what_exists(declared):
    """CI runs ruff and mypy (.ci/run), so the README's install brings them; every hook of
    .pre-commit-config.yaml runs a command of that install, or a module that exists."""
    assert {"ruff", "mypy"} <= set(declared), "pyproject's dev extra must have ruff and mypy"
    with open(ROOT / ".pre-commit-config.yaml") as f:
        hooks = [hook for repo in yaml.safe_load(f)["repos"] for hook in repo["hooks"]]
    assert {h["id"] for h in hooks} >= {"ruff-check", "ruff-format", "student-notebooks"}
    scripts = Path(sysconfig.get_path("scripts"))  # this environment's commands
    for hook in hooks:
        words = hook["entry"].split()
        if words[:2] == ["python", "-m"]:
            assert importlib.util.find_spec(words[2]) is not None, (
                f"pre-commit hook {hook['id']} runs {words[2]}, which does not exist"
            )
        else:
            assert shutil.which(words[0], path=scripts), (
                f"pre-commit hook {hook['id']} runs {words[0]}, "
                "which the dev install does not provide"
            )
