"""The import rules of ARCHITECTURE.md, held true.

Every ``import`` of a vae_prac module, at any level of any function, is read from the
source (with ``ast``, so nothing is run), and each module's imports are compared with
what its room may import: the library imports only the library modules above it in
ARCHITECTURE.md's table and never the course wing or the command line; ``checks/`` never
imports ``course/``; nothing but the entry points imports ``cli``.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vae_prac"

# The library, in ARCHITECTURE.md's order: a module may import only those before it.
LIBRARY = [
    "config",
    "presets",
    "short_runs",
    "mnist_files",
    "data",
    "model",
    "bounds",
    "evaluate",
    "run_lock",
    "run_folder",
    "fused_updates",
    "training",
    "plotting",
    "pretrained",
]
WINGS = {"checks", "course"}
ENTRY = {"cli", "__main__", "__init__"}


def room(path: Path) -> str:
    """The room of a source file: its first name under vae_prac/ (``checks``, ``model``)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imported_rooms(path: Path) -> set[str]:
    """The rooms of vae_prac that a source file imports (``__init__`` for the package's
    own names, such as ``from vae_prac import Config``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rooms = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "vae_prac":
                names = []
                for alias in node.names:
                    module = PACKAGE / alias.name
                    is_module = module.is_dir() or module.with_suffix(".py").is_file()
                    names.append(f"vae_prac.{alias.name}" if is_module else "vae_prac")
            else:
                names = [node.module]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(
                f"{path.relative_to(ROOT)}: relative imports are not used "
                f"here; write the absolute name."
            )
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "vae_prac":
                rooms.add(parts[1] if len(parts) > 1 else "__init__")
    return rooms


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_rooms_are_the_ones_architecture_md_names():
    rooms = {room(p) for p in SOURCES}
    assert rooms == set(LIBRARY) | WINGS | ENTRY, (
        "a module was added or removed: give it its row in ARCHITECTURE.md and in LIBRARY "
        "here (the order is the import order)"
    )
    text = (ROOT / "ARCHITECTURE.md").read_text()
    for name in LIBRARY:
        assert f"`{name}.py`" in text or f"`{name}/`" in text, name
    positions = [text.find(f"`{name}") for name in LIBRARY]
    assert positions == sorted(positions), "ARCHITECTURE.md lists the library in LIBRARY's order"


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(PACKAGE)) for p in SOURCES])
def test_imports_follow_the_rules(path):
    here = room(path)
    imports = imported_rooms(path) - {here}
    # The package's own __init__ runs before any of its modules, so any may use it (data
    # imports TensorFlow through it, muted); it imports the rest only on first use.
    if here in LIBRARY:
        allowed = set(LIBRARY[: LIBRARY.index(here)]) | {"__init__"}
    elif here == "checks":
        allowed = set(LIBRARY) | {"__init__"}
    elif here == "course":
        allowed = set(LIBRARY) | {"checks", "__init__"}
    else:  # the entry points may import anything
        allowed = set(LIBRARY) | WINGS | ENTRY
    assert imports <= allowed, (
        f"{path.relative_to(ROOT)} ({here}) imports {sorted(imports - allowed)}, which "
        f"ARCHITECTURE.md does not allow it"
    )


def test_importing_the_library_loads_neither_wing():
    """What the source says, checked at run time too: importing every library module (and
    so TensorFlow) loads no module of checks/, course/ or cli."""
    code = (
        "import importlib, sys\n"
        f"for name in {LIBRARY!r}:\n"
        "    importlib.import_module('vae_prac.' + name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2] in "
        "(['vae_prac', 'checks'], ['vae_prac', 'course'], ['vae_prac', 'cli'])))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]", out.stdout
