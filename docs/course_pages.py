"""Turn the solution notebooks and README into the course website's source pages.

The site is built from what is committed, never by running a notebook: each page is a
solution notebook with its stored outputs, changed only so that a reader can try first.

* Every written answer (a markdown cell tagged ``answer``) and every ``<details>``
  block becomes a collapsed dropdown, so its maths and markdown are rendered like the
  rest of the page.
* Every code cell with a ``### BEGIN SOLUTION`` region is shown as the student sees it
  (the region replaced by ``# YOUR CODE HERE``), followed by the full solution in a
  collapsed dropdown.
* The Colab badges (images fetched from Google) become plain links, and under each
  notebook's title sit a link to download its student version and links to open it
  in Colab.

``stage(docs_dir)`` writes ``index.md`` (README, its links made to work on the site)
and ``notebooks/NAME.ipynb`` for every ``notebooks/solutions/*.ipynb``. Both are
generated, git-ignored and rewritten only when their content changes, so Sphinx
rebuilds only what changed. ``conf.py`` calls it at the start of every build.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS_DIR = ROOT / "notebooks" / "solutions"
STUDENT_DIR = ROOT / "notebooks" / "student"

#: The CSS class of every answer dropdown; the browser tests find answers by it.
ANSWER_CLASS = "vae-answer"
CODE_ANSWER_TITLE = "Solution (try first!)"
WRITTEN_ANSWER_TITLE = "Answer (try first!)"

_BADGE = re.compile(r"\[!\[([^\]]*)\]\((https?://[^)\s]*colab-badge[^)\s]*)\)\]\(([^)\s]+)\)")
_DETAILS = re.compile(r"<details>\s*<summary>(.*?)</summary>(.*?)</details>", re.S)
_MD_LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)\)")


def _student_tool():
    """vae_prac/course/student.py, loaded from its file.

    Its markers (``### BEGIN SOLUTION``, the ``answer`` tag) and ``strip_solutions``
    define what an answer is, so the site uses them rather than a copy. Importing it
    as ``vae_prac.course.student`` would also import TensorFlow, which building web
    pages does not need.
    """
    spec = importlib.util.spec_from_file_location(
        "_vae_prac_student", ROOT / "vae_prac" / "course" / "student.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STUDENT = _student_tool()


def repo_url() -> str:
    """``vae_prac.REPO_URL``, read from the source without importing the package."""
    tree = ast.parse((ROOT / "vae_prac" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "REPO_URL" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise RuntimeError(
        "vae_prac/__init__.py defines no REPO_URL; the site's Colab and "
        "source links are made from it, so define it there."
    )


def colab_url(kind: str, name: str) -> str:
    """Where Colab opens notebooks/<kind>/<name> of the repository's main branch."""
    github = repo_url().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{github}/blob/main/notebooks/{kind}/{name}"


def _fence(char: str, body: str, minimum: int = 3) -> str:
    """A fence of ``char`` longer than any run of it that starts a line of ``body``."""
    runs = re.finditer(rf"^[ \t]*({re.escape(char)}+)", body, re.M)
    return char * max(minimum, 1 + max((len(m.group(1)) for m in runs), default=0))


def dropdown(title: str, body: str) -> str:
    """MyST for a collapsed dropdown (a ``<details>`` element in the page) holding body."""
    fence = _fence(":", body, minimum=4)
    return (
        f"{fence}{{dropdown}} {title.strip()}\n:class-container: {ANSWER_CLASS}\n\n"
        f"{body.strip()}\n{fence}"
    )


def _plain_badges(text: str) -> str:
    """Colab badge images become text links: the site loads nothing from elsewhere."""
    return _BADGE.sub(lambda m: f"[{m.group(1)}]({m.group(3)})", text)


def _details_to_dropdowns(text: str) -> str:
    return _DETAILS.sub(lambda m: dropdown(m.group(1), m.group(2)), text)


def _links_line(name: str) -> str:
    student = STUDENT_DIR / name
    if not student.is_file():
        raise FileNotFoundError(
            f"{student} is missing; the site links every notebook's student version. "
            "Generate it with: python -m vae_prac.course.student"
        )
    return (
        f"[Download the student notebook](path:../../notebooks/student/{name}) · "
        f"[open it in Colab]({colab_url('student', name)}) · "
        f"[the solutions in Colab]({colab_url('solutions', name)})"
    )


def _title_cell(source: str, name: str) -> str:
    """The first cell: Colab badges above the title dropped, the site's links below it."""
    lines = source.split("\n")
    title = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
    if title is None:
        raise ValueError(
            f"{name}: its first cell has no '# ' title line; every notebook "
            "of the series starts with one, and its page is named after it."
        )
    above = [line for line in lines[:title] if "colab-badge" not in line]
    return "\n".join(above + [lines[title], "", _links_line(name), ""] + lines[title + 1 :])


def _code_answer(source: str) -> str:
    """The solution cell's code, markers removed, as a fenced block in a dropdown."""
    code = "\n".join(line for line in source.split("\n") if STUDENT._marker(line) is None)
    fence = _fence("`", code)
    return dropdown(CODE_ANSWER_TITLE, f"{fence}python\n{code.strip()}\n{fence}")


def page_notebook(solution: Path):
    """The site's page for one solution notebook (a new notebook)."""
    nb = nbformat.read(solution, as_version=4)
    cells, name = [], solution.name
    for index, cell in enumerate(nb.cells):
        cell = copy.deepcopy(cell)
        where = f"{name}, cell {index}"
        if cell.cell_type == "markdown":
            source = _details_to_dropdowns(cell.source)
            if STUDENT.ANSWER_TAG in cell.metadata.get("tags", []) and ANSWER_CLASS not in source:
                source = dropdown(WRITTEN_ANSWER_TITLE, source)
            if index == 0:
                source = _title_cell(source, name)
            cell.source = _plain_badges(source)
            cells.append(cell)
        elif cell.cell_type == "code" and any(
            STUDENT._marker(line) for line in cell.source.split("\n")
        ):
            answer = nbformat.v4.new_markdown_cell(_code_answer(cell.source))
            answer["id"] = f"{cell.get('id', index)}-answer"
            cell.source = STUDENT.strip_solutions(cell.source, where)
            cells += [cell, answer]
        else:
            cells.append(cell)
    nb.cells = cells
    return nb


def _readme_link(target: str) -> str:
    """Where a README link points on the site (README's links are relative to the repo)."""
    if re.match(r"^[a-z][a-z0-9+.-]*:|^#", target):
        return target  # a URL, or an anchor on the page
    path, _, anchor = target.partition("#")
    anchor = f"#{anchor}" if anchor else ""
    parts = Path(path).parts
    if parts[:2] == ("notebooks", "solutions") and path.endswith(".ipynb"):
        return f"notebooks/{parts[-1]}{anchor}"  # its page on the site
    if parts[:2] == ("notebooks", "student") and path.endswith(".ipynb"):
        return f"path:../{path}"  # a download
    return f"{repo_url()}/blob/main/{path}{anchor}"  # anything else: on GitHub


def index_page(notebooks: list[str]) -> str:
    """README as the home page, with a table of contents of the notebook pages and the
    library's API page (api.md, written by hand around the docstrings)."""
    readme = _plain_badges((ROOT / "README.md").read_text(encoding="utf-8"))
    readme = _MD_LINK.sub(lambda m: f"[{m.group(1)}]({_readme_link(m.group(2))})", readme)
    toc = "\n".join(f"notebooks/{Path(n).stem}" for n in notebooks)
    return (
        f"{readme.rstrip()}\n\n```{{toctree}}\n:hidden:\n:caption: Notebooks\n\n{toc}\n```\n"
        f"\n```{{toctree}}\n:hidden:\n:caption: Library\n\napi\n```\n"
    )


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def stage(docs_dir: Path) -> list[Path]:
    """Write the generated pages into docs_dir; returns the notebook pages written."""
    docs_dir = Path(docs_dir)
    solutions = sorted(SOLUTIONS_DIR.glob("*.ipynb"))
    if not solutions:
        raise FileNotFoundError(
            f"No solution notebooks in {SOLUTIONS_DIR}: the site is built from them."
        )
    pages_dir = docs_dir / "notebooks"
    pages = []
    for solution in solutions:
        page = pages_dir / solution.name
        _write_if_changed(page, nbformat.writes(page_notebook(solution), version=4) + "\n")
        pages.append(page)
    for stale in set(pages_dir.glob("*.ipynb")) - set(pages):
        stale.unlink()  # a notebook removed or renamed
    _write_if_changed(docs_dir / "index.md", index_page([s.name for s in solutions]))
    return pages
