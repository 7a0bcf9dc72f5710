#!/usr/bin/env python3
"""Pin every package that vae_prac installs, for each supported Python.

    python tools/lock.py                          # after changing pyproject's dependencies
    python tools/lock.py --upgrade                # move every pin to the newest release
    python tools/lock.py --upgrade-package numpy  # move only these (repeat the option)

Run it from any folder, in an environment with pip and `packaging` (the dev install has
both); it needs PyPI. For each Python in PYTHONS, pip resolves the README's install,
`-e ".[dev]"`, as a dry run against PyPI, wheels only, as if it ran on that Python; on
CI_PYTHON, the Python CI tests with, it resolves every extra of pyproject.toml together
(the website's `site` extra is CI's business, pinned for that Python only). The locks are
merged into constraints.txt: a package with one version on every Python gets one line,
and one whose version differs gets a line per group of Pythons, with an environment
marker (`numpy==2.2.6 ; python_version < "3.11"`), so the README's one install command is
right on each. environment.yml gets the CI_PYTHON pins of what `.[dev]` installs.

By default the current pins are kept (passed to pip as constraints) and only what
pyproject.toml added gets new pins; what nothing needs any more is dropped. If a new
dependency needs a newer version of something pinned, pip says so: rerun with
--upgrade-package NAME or --upgrade.

The lock is resolved on the platform that runs this (Linux x86-64 for CI and Colab):
a package that only macOS or Windows needs (say, colorama) is not pinned there.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ImportError:  # Python 3.10: pytest (a dev dependency) brings tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "vae-prac"
# The Pythons the README's install command is pinned and tested for (oldest first).
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
# The Python CI tests with: every extra is pinned for it, and environment.yml uses it.
CI_PYTHON = "3.11"
# The extras of the README's install (and of environment.yml), pinned for every Python.
README_EXTRAS = ("dev",)
INDEX = "https://pypi.org/simple/"

# pip's --python-version chooses wheels and checks Requires-Python for that Python, but
# evaluates environment markers (`tomli; python_version < "3.11"`) for the Python running
# pip, so a dry run for 3.10 from 3.11 would leave out what only 3.10 needs, and read the
# markers of constraints.txt wrongly. This runs pip with its marker environment set to the
# target Python, and stops if that did not take.
RUNNER = r"""
import sys
version = sys.argv.pop(1)
problem = ("tools/lock.py: this pip's environment markers cannot be set to Python %s; "
           "install a pip that allows it (26.3 does)" % version)
try:
    import pip._internal.models.installation_report as report
    import pip._vendor.packaging.markers as markers
    from pip._internal.cli.main import main
    host = markers.default_environment()
except (ImportError, AttributeError):
    sys.exit(problem)

def target():
    env = dict(host)
    env.update(python_version=version, python_full_version=version + ".0")
    return env

markers.default_environment = target
report.default_environment = target   # the report's "environment", checked by the caller
if not markers.Marker('python_version == "%s"' % version).evaluate():
    sys.exit(problem)
sys.exit(main())
"""


class ResolutionError(RuntimeError):
    """pip could not resolve the requirements for a Python; the message says why."""


class ResolutionTimeout(ResolutionError):
    """pip did not finish in time: PyPI slow or unreachable, not a verdict on the pins."""


def target_environment(python):
    """The marker values that differ between Pythons, for `python` ("3.10")."""
    return {"python_version": python, "python_full_version": python + ".0"}


def pip_dry_run(python, requirements, constraints=None, timeout=1800):
    """What `pip install -c CONSTRAINTS REQUIREMENTS` installs on a fresh Python `python`.

    A dry run against PyPI alone, wheels only (a pin without a wheel for that Python
    fails, as it would for a user), from the repository root. pip's own configuration
    is ignored: a local mirror, wheel folder or site-wide constraint must not change the
    answer. Returns pip's installation report (a dict); raises ResolutionError.
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [
            sys.executable,
            "-c",
            RUNNER,
            python,
            "--isolated",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--only-binary=:all:",
            "--python-version",
            python,
            "--index-url",
            INDEX,
            "--no-input",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "--quiet",
            "--report",
            str(report),
        ]
        if constraints is not None:
            command += ["-c", str(constraints)]
        command += list(requirements)
        env = dict(os.environ, PIP_CONFIG_FILE=os.devnull)
        try:
            done = subprocess.run(
                command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise ResolutionTimeout(
                f"Python {python}: pip took over {timeout} s to resolve "
                f"{' '.join(requirements)}; is PyPI slow or unreachable?"
            ) from None
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-25:])
            raise ResolutionError(
                f"Python {python}: pip cannot install {' '.join(requirements)}"
                + (f" with {Path(constraints).name}" if constraints is not None else "")
                + f" (wheels from PyPI only). pip said:\n{tail}"
            )
        result = json.loads(report.read_text())
    seen = result.get("environment", {}).get("python_version")
    if seen != python:  # the markers were read for another Python: the answer is wrong
        raise ResolutionError(f"Python {python}: pip evaluated markers for Python {seen}")
    return result


def installed(report):
    """{canonical name: (name as published, version)} of a report, less vae_prac."""
    found = {}
    for item in report["install"]:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if canonicalize_name(name) != PROJECT:
            found[canonicalize_name(name)] = (name, version)
    return found


def read_pins(text, python):
    """The pins of constraints text that apply on `python`: {canonical name: version}.

    Raises ValueError for a line that is not `name==version [; marker]`, or for two
    lines that both pin one package on the same Python.
    """
    pins = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            raise ValueError(f"line {number}: {line!r} is not an exact pin (name==version)")
        if req.marker is not None and not req.marker.evaluate(target_environment(python)):
            continue
        name = canonicalize_name(req.name)
        if name in pins:
            raise ValueError(f"line {number}: {req.name} is pinned twice for Python {python}")
        pins[name] = specs[0].version
    return pins


def mismatches(report, pins):
    """What a dry run installs that the pins do not fix: a list of readable lines."""
    problems = []
    for name, (shown, version) in sorted(installed(report).items()):
        if name not in pins:
            problems.append(f"{shown} {version} is installed but not pinned")
        elif pins[name] != version:
            problems.append(f"{shown} {version} is installed but pinned to {pins[name]}")
    return problems


def merge(locks, local=()):
    """constraints.txt lines from {python: {canonical name: (name, version)}}.

    Consecutive Pythons with the same version share a line; the newest group's marker is
    open-ended, so a newer Python than those tested gets the newest pins. A Python that
    does not need a package takes its neighbour's pin (a constraint installs nothing),
    except for the names in `local`, pinned only on the Pythons that resolved them.
    """
    pythons = sorted(locks, key=lambda p: tuple(map(int, p.split("."))))
    lines = []
    for name in sorted(set().union(*locks.values())):
        shown = next(locks[p][name][0] for p in pythons if name in locks[p])
        versions = [locks[p][name][1] if name in locks[p] else None for p in pythons]
        if name not in local:
            for i in range(1, len(versions)):  # fill gaps forwards, then backwards
                versions[i] = versions[i] or versions[i - 1]
            for i in range(len(versions) - 2, -1, -1):
                versions[i] = versions[i] or versions[i + 1]
        start = 0
        for end in range(len(pythons)):
            if end + 1 < len(pythons) and versions[end + 1] == versions[start]:
                continue
            if versions[start] is not None:
                clauses = []
                if start == end and 0 < start < len(pythons) - 1:
                    clauses.append(f'python_version == "{pythons[start]}"')
                else:
                    if start > 0:
                        clauses.append(f'python_version >= "{pythons[start]}"')
                    if end + 1 < len(pythons):
                        clauses.append(f'python_version < "{pythons[end + 1]}"')
                marker = f" ; {' and '.join(clauses)}" if clauses else ""
                lines.append(f"{shown}=={versions[start]}{marker}")
            start = end + 1
    return lines


def closure(roots, requires_of, environment=None):
    """Every distribution that `roots` need, with the extras asked of each.

    roots: [(name, extras)]. requires_of(canonical name) gives its Requires-Dist strings
    and raises LookupError for a distribution it does not know. Markers are evaluated
    for `environment` (the running Python's values where it says nothing).
    Returns {canonical name: set of extras}.
    """
    needed = {}
    todo = [(name, set(extras), None) for name, extras in roots]
    while todo:
        name, extras, parent = todo.pop()
        key = canonicalize_name(name)
        if key in needed and extras <= needed[key]:
            continue
        needed[key] = needed.get(key, set()) | extras
        try:
            requires = requires_of(key)
        except LookupError:
            raise LookupError(f"{name} (needed by {parent or 'the request'}) is missing") from None
        for text in requires:
            req = Requirement(text)
            if req.marker is not None and not any(
                req.marker.evaluate({**(environment or {}), "extra": extra})
                for extra in {""} | needed[key]
            ):
                continue
            todo.append((req.name, set(req.extras), name))
    return needed


def load_pyproject():
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def constraints_text(lines):
    return (
        "\n".join(
            [
                f'# The exact versions that `pip install -e ".[{",".join(README_EXTRAS)}]"` installs '
                f"from PyPI, for Python {', '.join(PYTHONS)};",
                f"# for Python {CI_PYTHON} (CI's), those of every other extra of pyproject.toml too.",
                "# A line with a marker holds on those Pythons only. Generated by",
                "# `python tools/lock.py` from pyproject.toml: change that, then run it; do not edit.",
                *lines,
            ]
        )
        + "\n"
    )


def environment_text(pins):
    """environment.yml from {canonical name: (name, version, extras)}."""
    extras = ",".join(README_EXTRAS)
    pip_lines = []
    for _, (name, version, wanted) in sorted(pins.items()):
        suffix = f"[{','.join(sorted(wanted))}]" if wanted else ""
        pip_lines.append(f"      - {name}{suffix}=={version}")
    return (
        "\n".join(
            [
                f"# A conda environment for vae_prac: Python {CI_PYTHON} and, pinned, every package",
                f'# that `pip install -e ".[{extras}]"` installs on it: the versions CI tests with.',
                f"# Generated by `python tools/lock.py` from the Python {CI_PYTHON} pins of",
                "# constraints.txt (tests/test_packaging.py checks that they agree); do not edit.",
                "#   conda env create -f environment.yml     (from the repository root)",
                "#   conda activate vae-prac",
                "# The last line installs vae_prac itself, editable, with the `vae-prac` command.",
                "name: vae-prac",
                "channels:",
                "  - conda-forge",
                "dependencies:",
                f"  - python={CI_PYTHON}",
                "  - pip",
                "  - pip:",
                *pip_lines,
                f"      - -e .[{extras}]",
            ]
        )
        + "\n"
    )


def readme_part(report, python):
    """What the README's install takes of a report for `python`:
    {canonical name: (name, version, extras)}."""
    metadata = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"] for item in report["install"]
    }

    def requires_of(name):
        if name not in metadata:
            raise LookupError(name)
        return metadata[name].get("requires_dist", [])

    needed = closure([(PROJECT, README_EXTRAS)], requires_of, target_environment(python))
    return {
        name: (metadata[name]["name"], metadata[name]["version"], extras)
        for name, extras in needed.items()
        if name != PROJECT
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--upgrade",
        action="store_true",
        help="ignore the current pins: newest releases of everything",
    )
    parser.add_argument(
        "--upgrade-package",
        action="append",
        default=[],
        metavar="NAME",
        help="let this package move to its newest release (repeatable)",
    )
    args = parser.parse_args(argv)

    extras = sorted(load_pyproject()["project"].get("optional-dependencies", {}))
    requests = {
        p: ["-e", f".[{','.join(extras if p == CI_PYTHON else README_EXTRAS)}]"] for p in PYTHONS
    }
    path = ROOT / "constraints.txt"
    old = path.read_text() if path.exists() else ""
    free = {canonicalize_name(n) for n in args.upgrade_package}
    kept = (
        []
        if args.upgrade
        else [
            line
            for line in old.splitlines()
            if line.split("#", 1)[0].strip()
            and canonicalize_name(Requirement(line.split("#", 1)[0]).name) not in free
        ]
    )

    with tempfile.TemporaryDirectory() as tmp:
        current = Path(tmp) / "current-pins.txt"
        current.write_text("\n".join(kept) + "\n")
        print(
            f"Resolving on PyPI{'' if args.upgrade else ', keeping the current pins'}: "
            + "; ".join(f"Python {p}: {' '.join(r)}" for p, r in requests.items())
        )
        with ThreadPoolExecutor(len(PYTHONS)) as pool:
            jobs = {
                p: pool.submit(pip_dry_run, p, requests[p], current if kept else None)
                for p in PYTHONS
            }
            reports, failures = {}, []
            for python, job in jobs.items():
                try:
                    reports[python] = job.result()
                except ResolutionError as e:
                    failures.append(str(e))
    if failures:
        hint = (
            ""
            if args.upgrade
            else "\nIf a current pin is in the way, rerun with --upgrade-package NAME "
            "(or --upgrade)."
        )
        sys.exit("\n\n".join(failures) + hint)

    locks = {p: installed(r) for p, r in reports.items()}
    # What only the other extras need is pinned on CI_PYTHON alone.
    everywhere = set().union(*(readme_part(reports[p], p) for p in PYTHONS))
    text = constraints_text(merge(locks, local=set(locks[CI_PYTHON]) - everywhere))
    for python in PYTHONS:  # the merged file must give back each Python's lock
        problems = mismatches(reports[python], read_pins(text, python))
        if problems:
            sys.exit(
                f"tools/lock.py: merging the locks went wrong for Python {python}: "
                + "; ".join(problems)
            )
    conda = readme_part(reports[CI_PYTHON], CI_PYTHON)
    path.write_text(text)
    (ROOT / "environment.yml").write_text(environment_text(conda))

    for python in PYTHONS:
        try:
            was = read_pins(old, python)
        except ValueError:  # not a file this script wrote
            was = {}
        now = read_pins(text, python)
        changes = [f"+{n} {now[n]}" for n in sorted(now.keys() - was.keys())]
        changes += [f"-{n} {was[n]}" for n in sorted(was.keys() - now.keys())]
        changes += [
            f"{n} {was[n]} -> {now[n]}" for n in sorted(now.keys() & was.keys()) if now[n] != was[n]
        ]
        print(
            f"Python {python}: installs {len(locks[python])} packages; "
            + (", ".join(changes) if changes else "no change")
        )
    print(
        f"environment.yml: the {len(conda)} packages of "
        f".[{','.join(README_EXTRAS)}] on Python {CI_PYTHON}"
    )


if __name__ == "__main__":
    main()
