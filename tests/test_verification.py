"""The verdict's program: what it loads of a submission, and what it makes of it.

``definitions`` reads a submission with ``ast`` alone, so its tests are fast and many.
The tests of the program itself (``main``, run as the grader runs it, unsandboxed here)
take a TensorFlow import each: one process per notebook or per group of attacks, all
marked slow. The honesty tests come first: every solution passes every check, a blank
notebook passes none; then the attacks, on notebooks 01 and 04 (their checks are fast).
"""

import inspect
import json
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from vae_prac import data, model
from vae_prac.course import SOLUTIONS_DIR, verification
from vae_prac.course.verification import MISSING, NOT_YET, PASSED

NOTEBOOKS = sorted(p.stem for p in SOLUTIONS_DIR.glob("*.ipynb"))


def notebook(*sources):
    return new_notebook(cells=[new_code_cell(textwrap.dedent(s)) for s in sources])


def loaded(*sources) -> str:
    return verification.definitions(notebook(*sources))[0]


# --------------------------------------------------------------------------
# definitions(): what is loaded, what is not (pure ast, nothing executed).


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np",
        "from vae_prac.checks import data as check",
        "answer_kl = 'c'",
        "answer: str = 'b'",
        "S = 0.5",
        "X, Y = 1.0, -2.0",
        "SHAPE = (28, 28, 1)",
        "TABLE = {'a': [1, 2], 'b': {3}}",
        "HALF = S / 2 if S else -S",
        "f32 = np.float32",
        "name = f'{S:.2f}'",
        "first = SHAPE[0]",
        "square = lambda v: np.square(v) + 1",
        "def f(x, k=2, *, s=S, **kw):\n    return np.log(x) ** k",
        "async def g():\n    return 1",
        "@tf.function\ndef f(x):\n    return x",
        "@tf.function(jit_compile=True, reduce_retracing=True)\ndef f(x):\n    return x",
        "class A:\n    '''Doc.'''\n    k = 3\n    def f(self):\n        return self.k",
        "class B(tf.Module):\n    pass",
        "class C:\n    @property\n    def x(self):\n        return 1\n"
        "    @x.setter\n    def x(self, v):\n        pass\n    @staticmethod\n    def s():\n"
        "        return 2",
        "prior = tfd.Normal(loc=0.0, scale=1.0)",
        "scale = math.sqrt(1 + S**2)",
        "w = tf.constant([1.0, 2.0], tf.float32)",
    ],
)
def test_definitions_are_loaded(source):
    prelude = (
        "import math\nimport numpy as np\nimport tensorflow as tf\n"
        "import tensorflow_probability as tfp\ntfd = tfp.distributions\nS = 0.5"
    )
    assert textwrap.dedent(source).strip() in loaded(prelude, source)


@pytest.mark.parametrize(
    "source",
    [
        "x = f(3)",
        "x = np.zeros(3).sum()",
        "np.allclose = lambda *a, **k: True",
        "sys.modules['vae_prac.course.verification'] = fake",
        "json.dumps = fake",
        "importlib.import_module = fake",
        "sys.meta_path.insert(0, Finder())",
        "sys.meta_path[0:0] = [finder]",
        "xs = [i for i in range(3)]",
        "x = (yield)",
        "print('hello')",
        "for i in range(3):\n    pass",
        "if True:\n    answer = 'b'",
        "with open('f') as f:\n    pass",
        "x += 1",
        "del x",
        "my_rep = functools.partial(model.reparameterize)",
        "@my_decorator\ndef f(x):\n    return x",
        "@tf.function(input_signature=make())\ndef f(x):\n    return x",
        "@functools.wraps(make())\ndef f(x):\n    return x",
        "def f(x=make()):\n    return x",
        "def f(x: make() = 1):\n    return x",
        "def f(*, x=[i for i in y]):\n    return x",
        "square = lambda v, k=make(): v",
        "class A(make()):\n    pass",
        "class A(metaclass=Meta):\n    pass",
        "class A:\n    x = make()",
        "class A:\n    print('at creation')",
        "class A:\n    def __init_subclass__(cls):\n        pass",
        "class A:\n    def __class_getitem__(cls, item):\n        pass",
        "class A:\n    @bad\n    def f(self):\n        pass",
        "@dataclasses.dataclass\nclass A:\n    x: list = dataclasses.field(default_factory=list)",
        "prior = tfd.Normal(loc=evil)",  # evil: a function, handed to a constructor
        "w = np.apply_along_axis(exec, 0, np.array(['code']))",
        "w = tf.constant(exec)",
        "from . import x",
    ],
)
def test_statements_that_run_code_are_not_loaded(source):
    prelude = "import tensorflow_probability as tfp\ntfd = tfp.distributions\ndef evil():\n    pass"
    assert textwrap.dedent(source).strip() not in loaded(prelude, source)


def test_a_rebound_builtin_is_no_longer_an_allowed_decorator():
    found = loaded("def evil(f):\n    return f", "property = evil", "@property\ndef f():\n    pass")
    assert "property = evil" in found
    assert "def f():" not in found


def test_reference_if_needed_becomes_its_fallback():
    source = loaded(
        "import vae_prac\nfrom vae_prac import checks",
        "reparameterize = checks.reference_if_needed('reparameterize', mine,\n"
        "                                            vae_prac.reparameterize)",
        "elsewhere = other.reference_if_needed('reparameterize', mine, vae_prac.reparameterize)",
    )
    assert "reparameterize = vae_prac.reparameterize" in source
    assert "elsewhere" not in source


def test_each_cell_keeps_its_line_numbers_and_later_definitions_come_later():
    nb = notebook(
        "x = f()\n\ndef g():\n    return 1",
        "def g():\n    return 2",
    )
    found = verification._extract(nb)
    assert [index for index, _ in found.blocks] == [0, 1]
    assert found.blocks[0][1].splitlines()[2] == "def g():"
    assert found.blocks[0][1].splitlines()[0] == ""  # the call, left blank
    assert "return 2" in found.blocks[1][1]


def test_magics_cell_magics_and_broken_cells():
    nb = notebook(
        "%matplotlib inline\nimport numpy as np\n!ls\ndef f():\n    %time x = 1\n    return 1",
        "%%writefile x.py\nimport os",
        "def broken(:\n    pass",
        "x = !ls",
    )
    nb.cells.insert(0, new_markdown_cell("# A title"))
    source, notes = verification.definitions(nb)
    assert "import numpy as np" in source and "def f():" in source
    assert "    pass  # time x = 1" in source and "%matplotlib" not in source
    assert "import os" not in source
    assert any("cell 2: a cell magic" in note for note in notes)
    assert any("cell 3: not loaded: it is not valid Python" in note for note in notes)
    assert any("cell 4" in note for note in notes)
    compile(source, "<test>", "exec")  # what is loaded is valid Python


def test_notes_say_briefly_what_was_not_loaded():
    _, notes = verification.definitions(
        notebook("x = f(3)\nprint(x)", "@bad\ndef g():\n    pass", "class A:\n    print(1)")
    )
    assert any("cell 1: `@bad`" in n or "cell 1: `def g():`" in n for n in notes)
    assert any("cell 2: `class A:`" in n and "runs a statement" in n for n in notes)
    assert any(n.startswith("2 statement(s)") and "cell 0: `x = f(3)`" in n for n in notes)
    found = verification._extract(notebook("x = f(3)"))
    assert "x" in found.skipped and "x = f(3)" in found.skipped["x"]


def test_every_check_of_the_series_knows_its_library_answers():
    """Each Code Task's check names the library functions that answer it; each exists."""
    import importlib

    for name in NOTEBOOKS:
        for check in verification.expected_checks(SOLUTIONS_DIR / f"{name}.ipynb"):
            if "quiz" in check.name or check.source.startswith("# Run me to test your answer"):
                continue
            if check.name == "decode_midpoint":  # the library has no such function
                continue
            assert check.name in verification.ANSWERED_BY, check.name
    for specs in verification.ANSWERED_BY.values():
        for spec in specs:
            module, function = spec.split(":")
            assert callable(getattr(importlib.import_module(module), function)), spec


def test_a_pasted_copy_has_the_library_functions_fingerprint():
    import inspect

    from vae_prac import data

    namespace = vars(data).copy()
    exec(inspect.getsource(data.binarize).replace('"""', "'''"), namespace)
    copy = namespace["binarize"]
    assert copy is not data.binarize
    fingerprint = verification._fingerprint
    assert fingerprint(copy.__code__) == fingerprint(data.binarize.__code__)
    exec("def binarize(images):\n    return images > 127", namespace)
    assert fingerprint(namespace["binarize"].__code__) != fingerprint(data.binarize.__code__)


# --------------------------------------------------------------------------
# verify(): the grader's reading of the program's answers (a stand-in sandbox).


def fake_sandbox(monkeypatch, lines=(), timed_out=False, returncode=0, stderr=b""):
    """Replace sandbox.run by one that answers ``lines`` (a function of the nonce)."""
    from vae_prac.course import sandbox

    seen = {}

    def run(argv, workdir, *, timeout, memory_limit_gib, sandbox=True, env=None, stdin=None,
            **kwargs):  # fmt: skip
        nonce = stdin.decode().strip()
        seen.update(argv=argv, job=json.loads((Path(workdir) / "job.json").read_text()))
        out = "".join(json.dumps(line(nonce)) + "\n" for line in lines)
        return SimpleNamespace(
            returncode=None if timed_out else returncode,
            stdout=out.encode(),
            stderr=stderr,
            timed_out=timed_out,
            seconds=1.0,
            memory_limit="none",
        )

    monkeypatch.setattr(sandbox, "run", run)
    return seen


EXPECTED = [
    verification.ExpectedCheck("a", "data", "check.a(a)"),
    verification.ExpectedCheck("b", "data", "check.b(b)"),
]


def answer(name, status=PASSED, detail="", nonce=None):
    return lambda real: {"nonce": nonce or real, "name": name, "status": status, "detail": detail}


def test_verify_keeps_only_answers_that_carry_the_nonce(monkeypatch, tmp_path):
    seen = fake_sandbox(
        monkeypatch,
        [answer("a", nonce="forged"), answer("a", NOT_YET, "hint"), answer("a"), answer("z")],
    )
    got = verification.verify(
        notebook("a = 'x'"), EXPECTED, tmp_path, timeout=10, memory_limit_gib=None
    )
    assert got["a"] == (NOT_YET, "hint")  # the first answer with the nonce counts
    assert got["b"][0] == MISSING and "ended before this check" in got["b"][1]
    assert seen["argv"][1:] == ["-m", "vae_prac.course.verification", "job.json"]
    assert seen["job"]["checks"][0] == {"name": "a", "module": "data", "source": "check.a(a)"}


def test_verify_after_a_timeout_says_the_check_did_not_finish(monkeypatch, tmp_path):
    fake_sandbox(monkeypatch, [answer("a")], timed_out=True)
    got = verification.verify(notebook(""), EXPECTED, tmp_path, timeout=7, memory_limit_gib=None)
    assert got["a"] == (PASSED, "")
    assert got["b"] == (NOT_YET, "the check did not finish within 7 s when the grader ran it")


def test_verify_ignores_malformed_lines(monkeypatch, tmp_path):
    fake_sandbox(
        monkeypatch,
        [answer("a", status="PASSED!"), lambda n: ["not", "a", "dict"], answer("b", detail=None)],
    )
    got = verification.verify(notebook(""), EXPECTED, tmp_path, timeout=7, memory_limit_gib=None)
    assert got["a"][0] == MISSING and got["b"][0] == MISSING


# --------------------------------------------------------------------------
# main(): the program, run as the grader runs it (unsandboxed here; slow).


def run_program(tmp_path, nb, checks) -> list[dict]:
    """Run ``python -m vae_prac.course.verification`` on ``nb``'s definitions and the
    ``checks`` (ExpectedCheck, or dicts); the answers that carry the nonce, in order."""
    job = verification._job(nb, [])
    job["checks"] = [c if isinstance(c, dict) else vars(c) for c in checks]
    (tmp_path / "job.json").write_text(json.dumps(job))
    nonce = secrets.token_hex(16)
    done = subprocess.run(
        [sys.executable, "-m", "vae_prac.course.verification", "job.json"],
        cwd=tmp_path,
        input=(nonce + "\n").encode(),
        capture_output=True,
        timeout=600,
        env={**os.environ, "VAE_PRAC_SHORT_RUNS": "1"},
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    answers = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert all(a["nonce"] == nonce for a in answers)
    return answers


def verdicts(answers) -> dict[str, tuple[str, str]]:
    return {a["name"]: (a["status"], a["detail"]) for a in answers}


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_solution_passes_every_check(tmp_path, name):
    solution = SOLUTIONS_DIR / f"{name}.ipynb"
    expected = verification.expected_checks(solution)
    got = verdicts(run_program(tmp_path, nbformat.read(solution, as_version=4), expected))
    assert got == {c.name: (PASSED, "") for c in expected}


# A blank notebook passes nothing: tests/test_notebooks.py grades every blank student
# notebook, through the whole grader (its run and this program).


def solution_with(name: str, *cells: str):
    """The solution notebook ``name`` with ``cells`` added at its end."""
    nb = nbformat.read(SOLUTIONS_DIR / f"{name}.ipynb", as_version=4)
    nb.cells += [new_code_cell(textwrap.dedent(c)) for c in cells]
    return nb


FORGERIES = [
    # Each would make every check pass if it ran at the top level of the kernel.
    """
    import sys, types, json
    fake = types.ModuleType("vae_prac.course.verification")
    fake.main = lambda argv=None: print(json.dumps({"status": "passed"}))
    sys.modules["vae_prac.course.verification"] = fake
    """,
    """
    import importlib, types
    real = importlib.import_module
    importlib.import_module = lambda name, *a: types.SimpleNamespace(
        binarize_threshold=lambda fn: None) if "checks" in name else real(name, *a)
    """,
    """
    import json
    json.dumps = lambda obj, *a, **k: '{"status": "passed", "detail": ""}'
    """,
    """
    import numpy as np
    np.allclose = lambda *a, **k: True
    np.array_equal = lambda *a, **k: True
    """,
    """
    import sys
    class Finder:
        def find_spec(self, name, path=None, target=None):
            return None
    sys.meta_path.insert(0, Finder())
    """,
    """
    from vae_prac import checks
    checks.report = lambda name, status, detail="": None
    checks.RESULTS["binarize_threshold"] = True
    """,
]


@pytest.mark.slow
def test_forging_at_the_top_level_is_never_loaded(tmp_path):
    nb = solution_with(
        "01_setup_and_data",
        "def binarize_threshold(images):\n    return (images < 128).astype(np.float32)[..., None]",
        *FORGERIES,
    )
    source, _ = verification.definitions(nb)
    for attack in ["sys.modules[", "import_module =", "json.dumps =", "np.allclose =",
                   "meta_path.insert", "checks.report ="]:  # fmt: skip
        assert attack not in source
    expected = verification.expected_checks(SOLUTIONS_DIR / "01_setup_and_data.ipynb")
    got = verdicts(run_program(tmp_path, nb, expected))
    assert got["binarize_threshold"][0] == NOT_YET  # the wrong answer stays wrong
    assert got["binarization_quiz"] == (PASSED, "")  # and the right one right


def pasted(function, name: str) -> str:
    """The library function's own source, renamed: what a student who pasted it submits
    (read at test time, so the copy is exact whenever the library changes)."""
    source = textwrap.dedent(inspect.getsource(function))
    return source.replace(f"def {function.__name__}(", f"def {name}(", 1)


LIBRARY_01 = """
from vae_prac.data import _check_method, _image_array, _intensity, check_seed, THRESHOLD

def wrapper(images):
    return data.binarize(images, "threshold")

def batch_wrapper(images):
    return data.binarize_batch(tf.constant(images)).numpy()[..., None]

<<COPY>>
def noisy(images):
    import os
    print('{"nonce": "guess", "name": "binarize_threshold", "status": "passed", "detail": ""}')
    os.write(1, b"written below Python\\n")
    return images

def tampering(images):
    import numpy
    numpy.array_equal = lambda *a, **k: True
    numpy.allclose = lambda *a, **k: True
    return images
""".replace("<<COPY>>", pasted(data.binarize, "copy"))


@pytest.mark.slow
def test_the_library_in_disguise_is_named_notebook_01(tmp_path):
    nb = solution_with("01_setup_and_data", "import tensorflow as tf", LIBRARY_01)
    checks = [
        {
            "name": "binarize_threshold",
            "module": "data",
            "source": f"check.binarize_threshold({fn})",
        }  # fmt: skip
        for fn in ["binarize_threshold", "wrapper", "batch_wrapper", "copy", "noisy", "tampering"]
    ]
    checks.append({"name": "binarization_quiz", "module": "data",
                   "source": "check.binarization_quiz(answer_binarization)"})  # fmt: skip
    answers = run_program(tmp_path, nb, checks)
    statuses = [(a["status"], a["detail"]) for a in answers]
    assert statuses[0] == (PASSED, "")  # the honest solution, in the same process
    for status, detail in statuses[1:4]:
        assert status == NOT_YET and "uses vae_prac's own binarize" in detail, detail
    assert statuses[4][0] == NOT_YET  # its printing reached stderr, not the answers
    assert statuses[5][0] == NOT_YET and "numpy.array_equal" in statuses[5][1]
    assert statuses[6][0] == NOT_YET and "not verified" in statuses[6][1]


LIBRARY_04 = """
import functools
from vae_prac import model
from vae_prac.model import reparameterize as alias_reparameterize
from vae_prac.model import stateless_seed

def wrapper_reparameterize(mu, sigma, seed):
    return model.reparameterize(mu, sigma, seed=seed)

def partial_reparameterize(mu, sigma, seed):
    return functools.partial(vae_prac.reparameterize, seed=seed)(mu, sigma)

top_level_partial = functools.partial(model.reparameterize)

<<COPY>>
def my_kl(mu, sigma):
    return vae_prac.kl_analytic(vae_prac.posterior(mu, sigma), vae_prac.prior(mu.shape[-1]))
""".replace("<<COPY>>", pasted(model.reparameterize, "copy_reparameterize"))


@pytest.mark.slow
def test_the_library_in_disguise_is_named_notebook_04(tmp_path):
    nb = solution_with("04_reparameterization", "from vae_prac.config import is_positive_int",
                       LIBRARY_04)  # fmt: skip
    names = ["my_reparameterize", "alias_reparameterize", "wrapper_reparameterize",
             "partial_reparameterize", "top_level_partial", "copy_reparameterize"]  # fmt: skip
    checks = [
        {
            "name": "reparameterize",
            "module": "reparameterization",
            "source": f"check.reparameterize({fn})",
        }  # fmt: skip
        for fn in names
    ]
    checks += [
        {
            "name": "kl_closed_form",
            "module": "reparameterization",
            "source": f"check.kl_closed_form({fn})",
        }  # fmt: skip
        for fn in ["kl_closed_form", "my_kl"]
    ]
    got = [(a["status"], a["detail"]) for a in run_program(tmp_path, nb, checks)]
    assert got[0] == (PASSED, "")
    for (status, detail), name in zip(got[1:4] + got[5:6], names[1:4] + names[5:6]):
        assert status == NOT_YET and "uses vae_prac's own reparameterize" in detail, name
    assert got[4][0] == MISSING and "not loaded" in got[4][1]  # a call: never loaded
    assert got[6] == (PASSED, "")
    assert got[7][0] == NOT_YET and "uses vae_prac's own kl_analytic" in got[7][1]


@pytest.mark.slow
def test_verify_in_the_sandbox(tmp_path):
    """The whole path, through the real sandbox where it runs here."""
    from vae_prac.course import sandbox

    if sandbox.unavailable_reason() is not None:
        pytest.skip(f"no sandbox here: {sandbox.unavailable_reason()}")
    solution = SOLUTIONS_DIR / "04_reparameterization.ipynb"
    expected = verification.expected_checks(solution)
    nb = nbformat.read(solution, as_version=4)
    nb.cells.append(new_code_cell("def kl_closed_form(mu, sigma):\n    return mu"))
    got = verification.verify(
        nb,
        expected,
        tmp_path,
        timeout=300,
        memory_limit_gib=8,
        env={"VAE_PRAC_SHORT_RUNS": "1"},
    )
    assert got["kl_formula"] == (PASSED, "") and got["reparameterize"] == (PASSED, "")
    assert got["kl_closed_form"][0] == NOT_YET
