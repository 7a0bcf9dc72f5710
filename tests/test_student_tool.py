"""Tests for vae_prac.course.student (making student notebooks) and vae_prac.course.grading."""

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from vae_prac import course
from vae_prac.course import grading, student
from vae_prac.course.student import ANSWER_PLACEHOLDER, MarkerError, make_student


def notebook(*cells):
    return new_notebook(cells=list(cells))


# --- make_student ------------------------------------------------------------


def test_solution_region_becomes_stub_at_its_indentation():
    source = (
        "def f(x):\n"
        "    y = 2\n"
        "    ### BEGIN SOLUTION\n"
        "    return x * y\n"
        "    ### END SOLUTION\n"
        "\n"
        "answer = None\n"
        "### BEGIN SOLUTION\n"
        "answer = 'b'\n"
        "### END SOLUTION"
    )
    out = make_student(notebook(new_code_cell(source))).cells[0].source
    assert out == (
        "def f(x):\n"
        "    y = 2\n"
        "    # YOUR CODE HERE\n"
        "    raise NotImplementedError()\n"
        "\n"
        "answer = None\n"
        "# YOUR CODE HERE"
    )  # top level: no raise, so Run All goes on


def test_cells_without_markers_are_kept_byte_identical():
    # The marker text inside a string is not a marker: markers start their line.
    sources = [
        "x = 1  # ### BEGIN SOLUTION after code is no marker\n",
        "print('### BEGIN SOLUTION')",
        "%matplotlib inline\n\n\n   trailing spaces   \n",
    ]
    nb = notebook(*[new_code_cell(s) for s in sources], new_markdown_cell("# Title\n\n$x^2$"))
    out = make_student(nb)
    assert [c.source for c in out.cells] == sources + ["# Title\n\n$x^2$"]


def test_answer_cells_get_placeholder_and_other_markdown_is_kept():
    nb = notebook(
        new_markdown_cell("**Question.** Why?"),
        new_markdown_cell(
            "<details><summary>Answer</summary>\n\nBecause.\n\n</details>",
            metadata={"tags": ["answer"]},
        ),
    )
    out = make_student(nb)
    assert out.cells[0].source == "**Question.** Why?"
    assert out.cells[1].source == ANSWER_PLACEHOLDER
    assert "Because" not in nbformat.writes(out)
    assert out.cells[1].metadata["tags"] == ["answer"]


def test_outputs_counts_and_run_metadata_are_cleared():
    cell = new_code_cell(
        "print(1)",
        execution_count=7,
        outputs=[new_output("stream", name="stdout", text="1\n")],
        metadata={"tags": ["keep-me"], "execution": {"iopub.status.busy": "t"}},
    )
    nb = notebook(cell)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    nb.metadata["kernelspec"] = {
        "name": "some-other-kernel",
        "display_name": "x",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.9"}
    out = make_student(nb)
    assert out.cells[0].outputs == [] and out.cells[0].execution_count is None
    assert out.cells[0].metadata == {"tags": ["keep-me"]}
    assert "widgets" not in out.metadata
    assert out.metadata["kernelspec"]["name"] == "python3"
    assert "version" not in out.metadata["language_info"]
    # The solution itself is left alone.
    assert nb.cells[0].execution_count == 7 and "widgets" in nb.metadata


@pytest.mark.parametrize(
    "source, message",
    [
        ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
        ("x = 1\n### END SOLUTION\n", "has no '### BEGIN SOLUTION'"),
        (
            "### BEGIN SOLUTION\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n### END SOLUTION",
            "cannot nest",
        ),
    ],
)
def test_unmatched_markers_are_errors_naming_notebook_and_cell(source, message):
    nb = notebook(new_code_cell("ok = 1"), new_code_cell(source))
    with pytest.raises(MarkerError, match=message) as err:
        make_student(nb, "07_example.ipynb")
    assert "07_example.ipynb, cell 1" in str(err.value)


def test_markers_in_markdown_are_an_error():
    nb = notebook(new_markdown_cell("### BEGIN SOLUTION\nsecret\n### END SOLUTION"))
    with pytest.raises(MarkerError, match="only work in code cells"):
        make_student(nb, "n.ipynb")


def test_output_is_deterministic_and_idempotent(tmp_path):
    sol = tmp_path / "notebooks" / "solutions" / "01_x.ipynb"
    sol.parent.mkdir(parents=True)
    nbformat.write(
        notebook(
            new_markdown_cell("# T"),
            new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
        ),
        sol,
    )
    first = student.generate(sol)
    assert student.generate(sol) == first
    target = student.write_student(sol)
    assert target == tmp_path / "notebooks" / "student" / "01_x.ipynb"
    assert target.read_text() == first
    # Generating from the student version changes nothing more (no markers left).
    nb = nbformat.reads(first, as_version=4)
    assert student.dumps(make_student(nb, "01_x.ipynb")) == first
    assert json.loads(first)["nbformat"] == 4


def test_out_of_date_reports_missing_and_changed(tmp_path):
    sol = tmp_path / "notebooks" / "solutions" / "01_x.ipynb"
    sol.parent.mkdir(parents=True)
    nbformat.write(notebook(new_code_cell("a = 1")), sol)
    assert "missing" in student.out_of_date([sol])[0]
    target = student.write_student(sol)
    assert student.out_of_date([sol]) == []
    target.write_text(target.read_text().replace("a = 1", "a = 2"))
    assert "differs" in student.out_of_date([sol])[0]


def test_student_path_needs_a_solutions_folder(tmp_path):
    with pytest.raises(ValueError, match="solutions"):
        student.student_path(tmp_path / "elsewhere" / "x.ipynb")


def test_cli_check_exit_codes(tmp_path, capsys):
    sol = tmp_path / "notebooks" / "solutions" / "01_x.ipynb"
    sol.parent.mkdir(parents=True)
    nbformat.write(notebook(new_code_cell("a = 1")), sol)
    assert student.main(["--check", str(sol)]) == 1
    assert student.main([str(sol)]) == 0
    assert student.main(["--check", str(sol)]) == 0
    bad = tmp_path / "notebooks" / "solutions" / "02_bad.ipynb"
    nbformat.write(notebook(new_code_cell("### BEGIN SOLUTION")), bad)
    assert student.main([str(bad)]) == 2
    assert "02_bad.ipynb, cell 0" in capsys.readouterr().err


def test_execute_stores_outputs_then_regenerates_the_student_version(tmp_path):
    folder = tmp_path / "notebooks" / "solutions"
    folder.mkdir(parents=True)
    good = folder / "01_ok.ipynb"
    nbformat.write(
        notebook(
            new_code_cell("import os\nprint(os.path.basename(os.getcwd()))"),
            new_code_cell("# NBVAL_RAISES_EXCEPTION\nraise KeyError('expected')"),
            new_code_cell(
                "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\nf()"
            ),
        ),
        good,
    )
    assert student.main(["--execute", str(good)]) == 0
    nb = nbformat.read(good, as_version=4)
    assert [c.execution_count for c in nb.cells] == [1, 2, 3]
    assert nb.cells[0].outputs[0].text == "solutions\n"  # ran in the notebook's folder
    assert nb.cells[1].outputs[0].ename == "KeyError"
    assert nb.cells[2].outputs[0].data["text/plain"] == "1"
    assert all("execution" not in c.metadata for c in nb.cells)
    assert student.out_of_date([good]) == []

    bad = folder / "02_bad.ipynb"
    nbformat.write(notebook(new_code_cell("1 / 0")), bad)
    before = bad.read_bytes()
    with pytest.raises(RuntimeError, match="cell 0 raised ZeroDivisionError"):
        student.execute_in_place(bad)
    assert bad.read_bytes() == before


# --- grading -----------------------------------------------------------------


def _stream(text):
    return new_output("stream", name="stdout", text=text)


def test_grade_stored_outputs_reads_check_lines():
    nb = notebook(
        new_code_cell("c1", outputs=[_stream("[check a] passed\nother text\n")]),
        new_code_cell("c2", outputs=[_stream("[check b] not yet: the shape is wrong\n")]),
        new_code_cell("c3", outputs=[_stream("[check c] not done yet: replace ...\n")]),
        new_code_cell(
            "c4", outputs=[new_output("stream", name="stderr", text="[check d] passed\n")]
        ),
        new_code_cell("c5", outputs=[_stream("  [check e] passed (indented: not a check line)\n")]),
    )
    assert grading.grade_stored_outputs(nb) == {"a": "passed", "b": "not yet", "c": "not done yet"}


def test_a_check_line_split_across_stream_messages_is_still_read():
    cell = new_code_cell("c", outputs=[_stream("[check split] pas"), _stream("sed\n")])
    assert grading.grade_stored_outputs(notebook(cell)) == {"split": "passed"}
    grading.coalesce_streams(cell)
    assert [o.text for o in cell.outputs] == ["[check split] passed\n"]


def test_grade_notebooks_rejects_a_bad_timeout():
    with pytest.raises(ValueError, match="timeout"):
        grading.grade_notebooks([], timeout=0)


# --- opened and saved in JupyterLab ------------------------------------------------

COMMITTED_NOTEBOOKS = sorted((course.ROOT / "notebooks").glob("*/*.ipynb"))


def _as_the_browser_sends(value):
    """A notebook's JSON as JupyterLab's model gives it back: every multi-line string
    that the file stores as a list of lines (sources, stream text, output data) joined."""
    if isinstance(value, dict):
        return {
            key: (
                "".join(item)
                if isinstance(item, list)
                and (key in ("source", "text") or "/" in key)  # "text/plain"
                else _as_the_browser_sends(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_as_the_browser_sends(item) for item in value]
    return value


@pytest.mark.parametrize("path", COMMITTED_NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_notebook_opened_and_saved_in_jupyterlab_is_unchanged(path):
    # JupyterLab sends the notebook's JSON to Jupyter's server, which validates it and
    # writes it with nbformat (splitting the strings into lines again). A notebook saved
    # without a change must come back byte for byte, so a student's diff shows only
    # their work; and the committed notebooks are already what normalize() makes.
    text = path.read_text(encoding="utf-8")
    nb = nbformat.from_dict(_as_the_browser_sends(json.loads(text)))
    nbformat.validate(nb)
    saved = nbformat.writes(nb, version=nbformat.NO_CONVERT)
    assert saved + ("" if saved.endswith("\n") else "\n") == text
    assert student.dumps(student.normalize(nb, path.name)) == text


def test_a_kernel_changes_only_the_python_version_in_the_metadata():
    # When its kernel starts, JupyterLab replaces the notebook's kernelspec and
    # language_info with the kernel's and marks the notebook unsaved if they differ.
    # The kernelspec matches; language_info differs only in the Python version
    # ("3.11.7"), which the committed notebooks leave out because it depends on the
    # machine: a student's Python may be any supported one.
    kernelspec = pytest.importorskip("jupyter_client.kernelspec")
    ipkernel = pytest.importorskip("ipykernel.ipkernel")
    try:
        spec = kernelspec.KernelSpecManager().get_kernel_spec("python3")
    except kernelspec.NoSuchKernel:
        pytest.skip("no python3 kernel here: JupyterLab could not run the notebooks")
    from_kernel = {
        "kernelspec": {
            "name": "python3",
            "display_name": spec.display_name,
            "language": spec.language,
        },
        "language_info": dict(ipkernel.IPythonKernel.language_info),
    }
    stored = nbformat.read(COMMITTED_NOTEBOOKS[0], as_version=4).metadata
    assert stored["kernelspec"] == from_kernel["kernelspec"]
    kernel, ours = from_kernel["language_info"], stored["language_info"]
    differs = {key for key in kernel.keys() | ours.keys() if kernel.get(key) != ours.get(key)}
    assert differs == {"version"}
