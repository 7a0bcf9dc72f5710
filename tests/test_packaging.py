"""The three ways of installing vae_prac agree with each other.

pyproject.toml declares the dependencies (lower bounds, so Colab keeps its own
TensorFlow); constraints.txt pins the exact versions CI tests with; environment.yml
gives conda users the same pins. A dependency added to one and forgotten in another
fails here, not on a student's machine.
"""

import importlib
import importlib.metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

try:
    import tomllib
except ImportError:   # Python 3.10
    tomllib = pytest.importorskip("tomli")
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pyproject():
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def declared(pyproject):
    """Runtime and dev requirements from pyproject.toml, keyed by canonical name."""
    project = pyproject["project"]
    reqs = [Requirement(r) for r in
            project["dependencies"] + project["optional-dependencies"]["dev"]]
    return {canonicalize_name(r.name): r for r in reqs}


@pytest.fixture(scope="module")
def constraints():
    """constraints.txt as {canonical name: Requirement}."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            pins[canonicalize_name(req.name)] = req
    return pins


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
            f"environment.yml installs {name} without the extras {sorted(req.extras)}")


def test_environment_python_satisfies_requires_python(pyproject, environment):
    pythons = [d.split("=", 1)[1] for d in environment["dependencies"]
               if isinstance(d, str) and d.split("=")[0].strip() == "python"]
    assert len(pythons) == 1, "environment.yml must pin python once (python=3.X)"
    requires = SpecifierSet(pyproject["project"]["requires-python"])
    assert requires.contains(pythons[0]), (
        f"environment.yml's python={pythons[0]} does not satisfy requires-python {requires}")
    assert environment["channels"] == ["conda-forge"]
    assert "pip" in environment["dependencies"]


def test_constraints_pin_every_dependency_within_its_range(declared, constraints):
    for name, req in declared.items():
        assert name in constraints, f"constraints.txt does not pin {name}"
        version = _exact_version(constraints[name])
        assert version, f"constraints.txt must pin {name} exactly (name==X), got {constraints[name]}"
        assert req.specifier.contains(version, prereleases=True), (
            f"constraints.txt pins {name}=={version}, outside pyproject's {req.specifier}")


def test_constraints_pin_every_extra_requirement_too(constraints):
    # tensorflow-probability[tf] pulls in tf-keras, whose minor version must match
    # TensorFlow's: both must be pinned, and to the same minor version.
    assert "tf-keras" in constraints
    tf_version = _exact_version(constraints["tensorflow"])
    tf_keras_version = _exact_version(constraints["tf-keras"])
    assert tf_version.split(".")[:2] == tf_keras_version.split(".")[:2]


def test_environment_pins_agree_with_constraints(conda_pip, constraints):
    for name, req in conda_pip.items():
        version = _exact_version(req)
        assert version, f"environment.yml should pin {name} exactly, got {req}"
        assert name in constraints, f"environment.yml pins {name}, constraints.txt does not"
        assert version == _exact_version(constraints[name]), (
            f"{name}: environment.yml pins {version}, constraints.txt "
            f"{_exact_version(constraints[name])}")


def test_installed_versions_satisfy_pyproject(declared):
    for name, req in declared.items():
        version = importlib.metadata.version(name)
        assert req.specifier.contains(version, prereleases=True), (
            f"installed {name} {version} is outside pyproject's {req.specifier}")


def _packaged(setuptools_config):
    """The packages a wheel would contain, from pyproject's [tool.setuptools]."""
    packages = setuptools_config.get("packages")
    if isinstance(packages, list):
        return set(packages)
    if isinstance(packages, dict) and "find" in packages:
        import setuptools

        find = packages["find"]
        finder = (setuptools.find_namespace_packages if find.get("namespaces", True)
                  else setuptools.find_packages)
        where = find.get("where", ["."])
        return {pkg for w in where for pkg in finder(
            where=str(ROOT / w), include=find.get("include", ("*",)),
            exclude=find.get("exclude", ()))}
    pytest.fail("pyproject.toml should say which packages to ship in [tool.setuptools]")


def test_every_subpackage_is_shipped(pyproject):
    # An editable install sees every folder, so only this catches a subpackage left out
    # of the wheel that `pip install git+...` (e.g. in Colab) builds.
    on_disk = {".".join(init.parent.relative_to(ROOT).parts)
               for init in (ROOT / "vae_prac").rglob("__init__.py")}
    missing = sorted(on_disk - _packaged(pyproject["tool"]["setuptools"]))
    assert not missing, (
        f"pyproject.toml's [tool.setuptools] leaves {missing} out of the wheel; use "
        f'[tool.setuptools.packages.find] include = ["vae_prac", "vae_prac.*"]')


def test_console_script_resolves_to_a_callable(pyproject):
    target = pyproject["project"]["scripts"]["vae-prac"]
    module, _, attr = target.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    # The installed entry point (what the `vae-prac` command runs) is the same one.
    installed = importlib.metadata.entry_points(group="console_scripts", name="vae-prac")
    assert [ep.value for ep in installed] == [target]
    assert callable(next(iter(installed)).load())
