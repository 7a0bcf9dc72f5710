"""The verdict: every check run again, in a fresh process that never ran the notebook.

A submission's own kernel cannot be trusted with its grade: a line at the top level of
a cell can replace ``sys.modules[...]``, ``importlib.import_module``, ``json.dumps`` or
``np.allclose``, or add an import hook that serves its own check modules, and from then
on every check in that kernel says "passed". So the grader never asks that kernel. It
asks this module, run as its own program in a new sandboxed process
(``python -m vae_prac.course.verification job.json``), in four steps:

1. **The check machinery first.** ``vae_prac.checks`` and every check module the
   notebook's checks need are imported before anything of the student's exists.
2. **Stand-ins for the library's answers.** Each library function that answers a task
   (``ANSWERED_BY``: ``vae_prac.model.reparameterize`` answers the ``reparameterize``
   check, ...) is replaced, in every ``vae_prac`` module that holds it, by a stand-in
   that calls the original and records the call when it happens *inside a call of the
   student's answer*. So an answer that is the library in disguise, a ``def`` wrapper,
   a ``functools.partial`` made inside a function or an import alias, is named as such:
   "not yet: uses vae_prac's own NAME, which this task asks you to write". An answer
   whose bytecode is the library function's (a pasted copy) is named the same way.
3. **Only the student's definitions.** The grader's process extracts them with ``ast``,
   executing nothing (``definitions``): imports, ``def`` (with a few known decorators),
   plain ``class`` bodies, and assignments of *pure* expressions, ``answer_kl = "c"``
   or ``S = 0.5``, never a call. ``checks.reference_if_needed(...)`` is the one call
   understood: it becomes its fallback, the library's function, as in a session where
   that check has not passed. Statements at the top level of a cell that call, loop or
   assign into other objects are not loaded, so none of the attacks above ever runs.
4. **The solution's check cells**, each against the student's objects, its outcome
   captured (``checks._capturing``) and written as one JSON line carrying the nonce that
   the grader sent on stdin, so an answer is tied to this run.

``verify`` is the grader's side: it writes the job, runs the program through
``vae_prac.course.sandbox.run`` and reads the answers; a check with no answer is
``("missing", why)``, one cut off by the time limit is "not yet".

What this does not defend against: the student's functions do run, when a check calls
them, in the same process as the comparison. A function written to tamper with that
process *when called* (patching NumPy from inside its body, reading the nonce from
memory) is outside what the stand-ins see; ``_environment`` notices a check's call that
replaced a function of NumPy, JSON, ``importlib``, ``builtins`` or ``vae_prac`` and
withholds the verdict, but a determined attack inside a function body is possible. It
needs deliberate code in the answer itself, which an instructor can read; top-level
forging in any cell, the easy kind, has no effect. See notebooks/README.md.
"""

from __future__ import annotations

import ast
import contextlib
import dis
import functools
import importlib
import json
import os
import re
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PASSED, NOT_YET, NOT_DONE = "passed", "not yet", "not done yet"  # as vae_prac.checks
MISSING = "missing"
STATUSES = (PASSED, NOT_YET, NOT_DONE, MISSING)
CHECK_CELL = re.compile(r"\s*# Run me to test your (code|answer)")
CHECK_MODULE = re.compile(r"^from vae_prac\.checks import (\w+) as check\b", re.M)
JOB_FILE = "job.json"

#: Check name -> the library functions ("module:function") that answer it. While the
#: student's answer to that check runs, a call of any of them means the answer is the
#: library's. Checks of a multiple-choice answer have none.
ANSWERED_BY: dict[str, list[str]] = {
    "binarize_threshold": ["vae_prac.data:binarize", "vae_prac.data:binarize_batch"],
    "toy_elbo": ["vae_prac.checks.elbo:toy_elbo_reference"],
    "inference_network": ["vae_prac.model:inference_network"],
    "generative_network": ["vae_prac.model:generative_network"],
    "kl_closed_form": ["vae_prac.bounds:kl_analytic"],
    "reparameterize": ["vae_prac.model:reparameterize"],
    "batch_elbo": ["vae_prac.bounds:batch_elbo", "vae_prac.bounds:elbo"],
    "train_step": ["vae_prac.training:gradient_step"],
    "iw_bound": ["vae_prac.bounds:iw_bound", "vae_prac.evaluate:log_px"],
    "normalized_weights": ["vae_prac.bounds:normalized_weights"],
    "toy_beta_bound": ["vae_prac.checks.kl_weight:toy_beta_bound_reference"],
    "beta_elbo": ["vae_prac.bounds:beta_elbo"],
    "conv_networks": ["vae_prac.model:conv_networks"],
    "mog_prior": ["vae_prac.model:mixture_prior"],
}


# --------------------------------------------------------------------------
# What a notebook must pass (read from its solution).


@dataclass
class ExpectedCheck:
    """A check a notebook must pass, and the solution's cell that runs it."""

    name: str
    module: str  # the vae_prac.checks module the notebook imports `as check`, e.g. "data"
    source: str  # the solution's check cell, run again by the grader


def _check_line_names(cell) -> list[str]:
    from vae_prac.checks import LINE

    names = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            text = output.get("text", "")
            text = "".join(text) if isinstance(text, list) else str(text)
            names += [m["name"] for m in map(LINE.match, text.splitlines()) if m]
    return names


def expected_checks(solution) -> list[ExpectedCheck]:
    """The checks a solution notebook runs, in order, each with the cell that runs it.

    A check cell starts ``# Run me to test your code`` (or ``answer``) and its stored
    output is one check line; the ``vae_prac.checks`` module is the one the notebook
    imports ``as check``.
    """
    import nbformat

    nb = nbformat.read(solution, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    module = CHECK_MODULE.search(code)
    found = []
    for cell in nb.cells:
        if cell.cell_type == "code" and CHECK_CELL.match(cell.source):
            names = _check_line_names(cell)
            if len(names) != 1 or module is None:
                raise ValueError(
                    f"{solution}: the check cell {cell.source!r} must import its "
                    "checks `as check` and store exactly one check line."
                )
            found.append(ExpectedCheck(names[0], module[1], cell.source))
    return found


# --------------------------------------------------------------------------
# The student's definitions, read with ast (the grader's side: nothing is executed).

#: Decorators a loaded ``def`` may carry (as the notebook resolves them, through its
#: imports); called with pure arguments where they take some (``tf.function(...)``).
ALLOWED_DECORATORS = {
    "tensorflow.function",
    "tensorflow.autograph.experimental.do_not_convert",
    "functools.wraps",
    "functools.cache",
    "functools.lru_cache",
    "functools.cached_property",
    "dataclasses.dataclass",
    "builtins.staticmethod",
    "builtins.classmethod",
    "builtins.property",
}
#: Methods Python calls while a class is being *created* (so at load time): not loaded.
#: Calls an assignment may hold: constructors of plain values and distributions, called
#: with plain values only (constants, containers, arithmetic, the notebook's own plain
#: values): none of them can run the student's code or replace anything.
ALLOWED_CALLS = {
    *(f"math.{name}" for name in ("sqrt", "log", "exp", "isclose", "log1p", "lgamma")),
    *(
        f"numpy.{name}"
        for name in (
            "array", "asarray", "zeros", "ones", "full", "linspace", "arange", "eye",
            "float32", "float64", "int32", "int64", "sqrt", "log", "exp",
        )
    ),
    *(
        f"tensorflow.{name}"
        for name in ("constant", "zeros", "ones", "fill", "eye", "linspace", "range", "cast")
    ),
    *(f"builtins.{name}" for name in ("float", "int", "tuple", "list", "dict", "range", "len",
                                      "abs", "min", "max", "round", "sum")),
}  # fmt: skip
#: Constants an allowed call may be handed (besides the notebook's own plain values).
ALLOWED_CONSTANTS = {
    "math.pi", "math.e", "math.inf", "numpy.pi", "numpy.e", "numpy.inf", "numpy.float32",
    "numpy.float64", "numpy.int32", "numpy.int64", "numpy.uint8", "tensorflow.float32",
    "tensorflow.float64", "tensorflow.int32", "tensorflow.int64",
}  # fmt: skip
#: Distribution constructors (any name here that starts with a capital letter).
_DISTRIBUTIONS = "tensorflow_probability.distributions."
_CREATION_HOOKS = {"__init_subclass__", "__class_getitem__", "__set_name__", "__mro_entries__"}
_MAGIC = re.compile(r"^(\s*)[%!]")


@dataclass
class _Extracted:
    blocks: list[tuple[int, str]]  # (cell index, the cell's text with only loaded lines)
    notes: list[str]
    skipped: dict[str, str]  # a name bound by a statement not loaded -> why


def _without_magics(source: str) -> str | None:
    """The cell's text with IPython's ``%magic`` and ``!shell`` lines as ``pass`` (same
    lines, same indentation), or None for a cell magic (``%%...``: not Python)."""
    if source.lstrip().startswith("%%"):
        return None
    return "\n".join(
        _MAGIC.sub(lambda m: f"{m[1]}pass  # ", line) if _MAGIC.match(line) else line
        for line in source.splitlines()
    )


class _Names:
    """What each top-level name means so far, as far as the grader can tell: a dotted
    import path (``tfd`` -> "tensorflow_probability.distributions"), "def", "class",
    "data" (a pure value) or "other"."""

    def __init__(self):
        self.kinds: dict[str, str] = {}

    def dotted(self, node) -> str | None:
        """The dotted path an expression names (``tf.function`` -> "tensorflow.function")."""
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Name):
            kind = self.kinds.get(node.id)
            if kind is None:  # never bound by the notebook: Python's own
                return f"builtins.{node.id}"
            return kind[len("module:") :] if kind.startswith("module:") else None
        return None

    def bind(self, name: str, kind: str) -> None:
        self.kinds[name] = kind


class _Reader:
    """Decides, statement by statement, what the verifier may load."""

    def __init__(self):
        self.names = _Names()

    # Expressions -------------------------------------------------------------

    def pure(self, node, data: bool = False) -> str | None:
        """None when ``node`` is a pure expression (evaluating it calls nothing of the
        student's); else why not. ``data``: a plain value only (no lambdas, no names of
        functions, classes, modules or builtins), as an allowed call may be handed."""
        if node is None or isinstance(node, ast.Constant):
            return None
        if isinstance(node, ast.Name):
            kind = self.names.kinds.get(node.id)
            if data and kind != "data" and self.names.dotted(node) not in ALLOWED_CONSTANTS:
                return f"`{node.id}`, not a plain value"
            return None
        if data and isinstance(node, ast.Attribute):
            dotted = self.names.dotted(node)
            if dotted in ALLOWED_CONSTANTS:
                return None
            if dotted is not None:  # an attribute of a module
                return f"`{ast.unparse(node)}`, not a plain value"
        if isinstance(node, ast.Lambda):
            if data:
                return "a lambda"
            args = node.args
            return self._first(args.defaults + [d for d in args.kw_defaults if d])
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return "a comprehension"
        allowed = (
            ast.Attribute, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.UnaryOp, ast.BinOp,
            ast.BoolOp, ast.Compare, ast.Subscript, ast.Slice, ast.IfExp, ast.Starred,
            ast.JoinedStr, ast.FormattedValue, ast.expr_context, ast.operator, ast.unaryop,
            ast.boolop, ast.cmpop,
        )  # fmt: skip
        if not isinstance(node, allowed):
            return f"`{type(node).__name__}`"
        return self._first(list(ast.iter_child_nodes(node)), data)

    def _call(self, node) -> str | None:
        """None for a call of an allowed constructor with plain values; else why not."""
        dotted = self.names.dotted(node.func)
        tail = dotted[len(_DISTRIBUTIONS) :] if dotted and dotted.startswith(_DISTRIBUTIONS) else ""
        if dotted not in ALLOWED_CALLS and not (tail.isidentifier() and tail[:1].isupper()):
            return "a call"
        why = self._first(node.args + [k.value for k in node.keywords], data=True)
        return f"a call handed {why}" if why else None

    def _first(self, nodes, data: bool = False) -> str | None:
        for child in nodes:
            why = self.pure(child, data)
            if why:
                return why
        return None

    def _reference_if_needed(self, value) -> ast.expr | None:
        """The fallback of ``checks.reference_if_needed("name", mine, reference)``."""
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and value.func.attr == "reference_if_needed"
            and self.names.dotted(value.func.value) == "vae_prac.checks"
            and len(value.args) == 3
            and not value.keywords
            and isinstance(value.args[0], ast.Constant)
            and self.pure(value.args[1]) is None
            and self.pure(value.args[2]) is None
        ):
            return value.args[2]
        return None

    # Statements ---------------------------------------------------------------

    def _decorator(self, node, properties=()) -> str | None:
        target = node.func if isinstance(node, ast.Call) else node
        if isinstance(node, ast.Call):
            why = self._first(node.args + [k.value for k in node.keywords])
            if why:
                return f"its decorator's arguments hold {why}"
        if (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id in properties
            and target.attr in ("setter", "getter", "deleter")
            and not isinstance(node, ast.Call)
        ):
            return None
        dotted = self.names.dotted(target)
        if dotted in ALLOWED_DECORATORS:
            return None
        return f"its decorator `{ast.unparse(target)}` is not one the grader loads"

    def function(self, node, properties=()) -> str | None:
        if node.name in _CREATION_HOOKS:
            return f"`{node.name}` runs while a class is created"
        for decorator in node.decorator_list:
            why = self._decorator(decorator, properties)
            if why:
                return why
        args = node.args
        every = args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]
        annotations = [a.annotation for a in every if a is not None] + [node.returns]
        why = self._first(args.defaults + [d for d in args.kw_defaults if d])
        if why:
            return f"a default value holds {why}"
        why = self._first([a for a in annotations if a is not None])
        return f"an annotation holds {why}" if why else None

    def klass(self, node) -> str | None:
        if node.keywords:
            return "it has class keywords (a metaclass)"
        for decorator in node.decorator_list:
            why = self._decorator(decorator)
            if why:
                return why
        why = self._first(node.bases)
        if why:
            return f"a base class holds {why}"
        properties: set[str] = set()
        for index, item in enumerate(node.body):
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                why = self.function(item, properties)
                if why:
                    return f"its method `{item.name}`: {why}"
                if any(self.names.dotted(d) == "builtins.property" for d in item.decorator_list):
                    properties.add(item.name)
            elif isinstance(item, ast.ClassDef):
                why = self.klass(item)
                if why:
                    return f"its class `{item.name}`: {why}"
            elif isinstance(item, ast.Pass) or (
                index == 0
                and isinstance(item, ast.Expr)
                and isinstance(item.value, ast.Constant)
                and isinstance(item.value.value, str)
            ):
                continue
            elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                if not all(isinstance(t, ast.Name) for t in targets):
                    return "its body assigns to something other than a name"
                why = self._first(
                    [item.value] + ([item.annotation] if isinstance(item, ast.AnnAssign) else [])
                )
                if why:
                    return f"its body assigns {why}"
            else:
                return f"its body runs a statement (`{type(item).__name__}`)"
        return None

    def statement(self, node) -> tuple[ast.stmt | None, str | None]:
        """(the statement to load, or None; why it is not loaded)."""
        names = self.names
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names.bind(alias.asname, "module:" + alias.name)
                else:
                    head = alias.name.split(".")[0]
                    names.bind(head, "module:" + head)
            return node, None
        if isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                return None, ""  # the verifier compiles without it: harmless to leave out
            if node.level:
                return None, "a relative import"
            for alias in node.names:
                if alias.name == "*":
                    continue
                names.bind(alias.asname or alias.name, f"module:{node.module}.{alias.name}")
            return node, None
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            why = self.function(node)
            if why is None:
                names.bind(node.name, "def")
            return (node, None) if why is None else (None, why)
        if isinstance(node, ast.ClassDef):
            why = self.klass(node)
            if why is None:
                names.bind(node.name, "class")
            return (node, None) if why is None else (None, why)
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            plain = all(
                isinstance(n, (ast.Name, ast.Tuple, ast.List, ast.Starred, ast.expr_context))
                for t in targets
                for n in ast.walk(t)
            )
            if not plain:
                return None, "it assigns into another object, not to a name"
            value = node.value
            fallback = self._reference_if_needed(value)
            if fallback is not None:
                node = ast.Assign(targets=targets, value=fallback, lineno=node.lineno)
                value = fallback
            extra = [node.annotation] if isinstance(node, ast.AnnAssign) else []
            why = self._first([value] + extra) if value is not None or extra else None
            if why:
                return None, f"its value holds {why}"
            kind = self._kind(value, len(bound) == 1)
            for name in bound:
                names.bind(name, kind)
            return node, None
        return None, "it is not a definition"

    def _kind(self, value, single: bool) -> str:
        if value is None:
            return "data"
        if single and isinstance(value, (ast.Name, ast.Attribute)):
            dotted = self.names.dotted(value)
            if dotted and not dotted.startswith("builtins."):
                return "module:" + dotted
            if isinstance(value, ast.Name):
                return self.names.kinds.get(value.id, "data")
        return "data" if self.pure(value, data=True) is None else "other"


def _bound_names(node) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"]
    targets = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
        targets = [node.target]
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        targets = [i.optional_vars for i in node.items if i.optional_vars is not None]
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _shorten(text: str, limit: int = 60) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _extract(nb) -> _Extracted:
    reader = _Reader()
    blocks, notes, skipped = [], [], {}
    others = []
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code" or not isinstance(cell.get("source"), str):
            continue
        text = _without_magics(cell.source)
        if text is None:
            notes.append(f"cell {index}: a cell magic (`%%`), not loaded")
            continue
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError) as err:
            notes.append(
                f"cell {index}: not loaded: it is not valid Python ({type(err).__name__}: "
                f"{getattr(err, 'msg', err)}, line {getattr(err, 'lineno', '?')})"
            )
            continue
        lines = text.splitlines()
        keep = [""] * len(lines)
        loaded = False
        for node in tree.body:
            kept, why = reader.statement(node)
            if kept is None:
                if not why:
                    continue
                bound = _bound_names(node)
                where = f"cell {index}: `{_shorten(ast.get_source_segment(text, node) or '')}`"
                for name in bound:
                    skipped[name] = (
                        f"{where} is not loaded ({why}; the grader loads only definitions)"
                    )
                    reader.names.bind(name, "other")
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    notes.append(f"{where} not loaded: {why}")
                else:
                    others.append(where)
                continue
            for name in _bound_names(node):
                skipped.pop(name, None)
            loaded = True
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            if kept is node:
                for i in range(first - 1, node.end_lineno):
                    keep[i] = lines[i]
            else:  # rewritten (reference_if_needed): one line where the statement began
                keep[first - 1] = ast.unparse(kept)
        if loaded:
            blocks.append((index, "\n".join(keep)))
    if others:
        notes.append(
            f"{len(others)} statement(s) at the top level of cells not run (they call, loop "
            f"or print; the grader loads only definitions), the first: {others[0]}"
        )
    return _Extracted(blocks, notes, skipped)


def definitions(nb) -> tuple[str, list[str]]:
    """The submission's definitions, as the verifier loads them, and notes on what was not.

    Read with ``ast``; nothing is executed. Kept: imports; ``def`` whose decorators are
    in ``ALLOWED_DECORATORS`` and whose defaults and annotations are pure expressions;
    ``class`` statements whose bases are pure and whose body holds only a docstring,
    defs, pure assignments and ``pass``; assignments to names of pure expressions
    (constants, names, attributes, containers, operators, subscripts, lambdas; never a
    call or a comprehension); ``checks.reference_if_needed(name, mine, reference)``
    as its fallback ``reference``. Each cell keeps its line numbers (the lines not
    loaded are left blank), so a hint's "line N" is the cell's. Later definitions of
    a name win, as in the notebook.
    """
    found = _extract(nb)
    source = "\n".join(f"# cell {index}\n{text}" for index, text in found.blocks)
    return source, found.notes


# --------------------------------------------------------------------------
# The program run in the sandbox: stand-ins, definitions, checks.

_state = {"depth": 0, "used": set()}


def _resolve(spec: str):
    module, name = spec.split(":")
    return importlib.import_module(module), name


def _unwrapped(fn):
    fn = getattr(fn, "python_function", fn)  # a tf.function
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return fn


def _fingerprint(code) -> tuple:
    """A code object's instructions, with constants by value, jumps by instruction and
    nested code objects by their own fingerprint: equal for a pasted copy, docstring or
    not. (Python compiles ``tf.f(x)`` to LOAD_ATTR where ``tf`` is imported in the same
    module and to LOAD_METHOD where it is not, as in a notebook's cell: the same here.)"""
    instructions = list(dis.get_instructions(code))
    index = {ins.offset: i for i, ins in enumerate(instructions)}
    jumps = set(dis.hasjrel) | set(dis.hasjabs)
    found = []
    for ins in instructions:
        value = ins.argval
        if ins.opcode in jumps:
            value = index.get(value, value)
        elif hasattr(value, "co_code"):
            value = _fingerprint(value)
        elif not isinstance(value, (str, bytes, int, float, complex, bool, type(None), tuple)):
            value = repr(value)
        found.append(("LOAD_ATTR" if ins.opname == "LOAD_METHOD" else ins.opname, value))
    return tuple(found)


def _stand_in(original, label: str):
    @functools.wraps(original)
    def stand_in(*args, **kwargs):
        if _state["depth"]:
            _state["used"].add(label)
        return original(*args, **kwargs)

    stand_in._vae_prac_stand_in = label
    return stand_in


def _install_stand_ins(specs) -> dict:
    """Replace each library function in ``specs`` by its stand-in, wherever a vae_prac
    module holds it; label -> (the original, the fingerprint of its code)."""
    installed = {}
    for spec in specs:
        module, name = _resolve(spec)
        original = getattr(module, name)
        label = f"{module.__name__}.{name}"
        stand_in = _stand_in(original, label)
        for other in list(sys.modules.values()):
            if getattr(other, "__name__", "").split(".")[0] != "vae_prac":
                continue
            for attr, value in list(vars(other).items()):
                if value is original:
                    setattr(other, attr, stand_in)
        code = getattr(_unwrapped(original), "__code__", None)
        installed[label] = (original, _fingerprint(code) if code else None)
    return installed


def _track(target):
    """``target`` wrapped so that the stand-ins know a student's answer is running."""

    @functools.wraps(target)
    def tracked(*args, **kwargs):
        with _student_call():
            return target(*args, **kwargs)

    return tracked


@contextlib.contextmanager
def _student_call():
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1


def _library_answer(value, installed: dict, labels: list[str]) -> str | None:
    """The library function ``value`` is, or is a copy of, among ``labels``; else None."""
    inner = _unwrapped(value)
    if isinstance(value, functools.partial):
        inner = _unwrapped(value.func)
    if getattr(value, "_vae_prac_stand_in", None) in labels:
        return value._vae_prac_stand_in
    if getattr(inner, "_vae_prac_stand_in", None) in labels:
        return inner._vae_prac_stand_in
    code = getattr(inner, "__code__", None)
    for label in labels:
        original, fingerprint = installed[label]
        if inner is _unwrapped(original):
            return label
        if code is not None and fingerprint is not None and _fingerprint(code) == fingerprint:
            return label
    return None


#: Modules whose functions a check relies on: one replaced during a check voids it.
_WATCHED = ("numpy", "json", "importlib", "builtins", "vae_prac", "io", "sys")


def _environment() -> dict:
    """Who is who in the watched modules (name -> id), and the import hooks."""
    seen = {}
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in _WATCHED or name.startswith("numpy.") or module is None:
            continue
        seen[("module", name)] = id(module)
        for attr, value in list(getattr(module, "__dict__", {}).items()):
            if callable(value) or isinstance(value, type(sys)):
                seen[(name, attr)] = id(value)
    seen[("sys", "meta_path")] = tuple(map(id, sys.meta_path))
    seen[("sys", "path_hooks")] = tuple(map(id, sys.path_hooks))
    return seen


def _changed(before: dict, after: dict) -> list[str]:
    return [
        ".".join(key) if key[0] != "module" else f"sys.modules[{key[1]!r}]"
        for key, value in before.items()
        if after.get(key, value) != value
    ]


def _called_names(source: str) -> list[str]:
    """The names a check cell hands to its check: ``check.x(my_x, s=S)`` -> my_x, S."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            for arg in node.args + [k.value for k in node.keywords]:
                if isinstance(arg, ast.Name) and arg.id not in names:
                    names.append(arg.id)
    return names


def _check_modules(job) -> dict[str, str]:
    """Every ``vae_prac.checks`` module the check cells use, by the name they use."""
    wanted = {}
    for check in job["checks"]:
        wanted.setdefault(check["module"], check["module"])
        for node in ast.walk(ast.parse(check["source"])):
            if isinstance(node, ast.ImportFrom) and node.module == "vae_prac.checks":
                for alias in node.names:
                    wanted[alias.asname or alias.name] = alias.name
    return wanted


def _load_definitions(blocks, namespace) -> list[str]:
    """Execute the loaded definitions, statement by statement; what failed, noted."""
    import linecache

    problems = []
    for index, text in blocks:
        filename = f"<submission cell {index}>"
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        try:
            tree = ast.parse(text, filename)
        except SyntaxError as err:
            problems.append(f"cell {index}: {err}")
            continue
        for statement in tree.body:
            code = compile(ast.Module([statement], []), filename, "exec")
            try:
                exec(code, namespace)
            except Exception as err:  # an import that fails, a name not defined, ...
                problems.append(
                    f"cell {index}, line {statement.lineno}: {type(err).__name__}: {err}"
                )
    return problems


def _verdict(check, namespace, modules, checks, installed, skipped) -> tuple[str, str]:
    """Run one check cell against the student's objects: (status, detail)."""
    name = check["name"]
    labels = [label for label in installed if label in _labels(ANSWERED_BY.get(name, []))]
    scope = dict(namespace)
    scope.update({alias: modules[module] for alias, module in _alias_map(check).items()})
    scope.update(check=modules[check["module"]], checks=checks)
    for arg in _called_names(check["source"]):
        if arg in ("check", "checks") or arg in _alias_map(check):
            continue
        if arg not in namespace:
            if arg in skipped:
                return MISSING, f"the check needs `{arg}`, but {skipped[arg]}"
            return NOT_DONE, f"`{arg}` is not defined in the notebook."
        value = namespace[arg]
        found = _library_answer(value, installed, labels) if labels else None
        if found:
            return NOT_YET, _uses(found)
        if callable(value):
            scope[arg] = _track(value)
    _state["used"] = set()
    with checks._capturing() as seen:
        try:
            exec(compile(check["source"], f"<check {name}>", "exec"), scope)
        except Exception as err:  # e.g. a name the check cell needs is not defined
            seen.append((name, NOT_YET, f"the grader could not run this check: "
                         f"{type(err).__name__}: {err}"))  # fmt: skip
    used = [label for label in labels if label in _state["used"]]
    if used:
        return NOT_YET, _uses(used[0])
    mine = [(status, detail) for reported, status, detail in seen if reported == name]
    return mine[-1] if mine else (MISSING, "the check cell reported nothing")


def _labels(specs) -> list[str]:
    return [spec.replace(":", ".") for spec in specs]


def _alias_map(check) -> dict[str, str]:
    aliases = {}
    for node in ast.walk(ast.parse(check["source"])):
        if isinstance(node, ast.ImportFrom) and node.module == "vae_prac.checks":
            for alias in node.names:
                aliases[alias.asname or alias.name] = alias.name
    return aliases


def _uses(label: str) -> str:
    short = label.rsplit(".", 1)[-1]
    return (
        f"uses vae_prac's own {short} ({label}), which this task asks you to write: "
        "write it yourself (vae_prac's version is used in later cells while this check "
        "has not passed)."
    )


def main(argv=None) -> int:
    """``python -m vae_prac.course.verification JOB``: the nonce on stdin's first line;
    one JSON line per check on stdout: ``{"nonce", "name", "status", "detail"}``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m vae_prac.course.verification JOB.json", file=sys.stderr)
        return 2
    nonce = sys.stdin.readline().strip()
    with open(argv[0], encoding="utf-8") as f:
        job = json.load(f)
    # Only the answers go to stdout: whatever the definitions or the checks print, from
    # Python or below it (file descriptor 1), goes to stderr, so it can neither mix with
    # the answers nor push them past the grader's cap on output.
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.path[:] = [p for p in sys.path if p not in ("", ".") and Path(p) != Path.cwd()]

    def answer(name, status, detail):
        out.write(json.dumps({"nonce": nonce, "name": name, "status": status, "detail": detail}))
        out.write("\n")
        out.flush()

    # 1. The check machinery, before anything of the student's.
    import vae_prac.checks as checks

    modules = {
        module: importlib.import_module(f"vae_prac.checks.{module}")
        for module in set(_check_modules(job).values())
    }
    # 2. Stand-ins for the library functions that answer the tasks.
    specs = sorted({s for c in job["checks"] for s in ANSWERED_BY.get(c["name"], [])})
    installed = _install_stand_ins(specs)
    # 3. The student's definitions, and nothing else.
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    problems = _load_definitions(job.get("definitions", []), namespace)
    for problem in problems:
        print(f"definitions: {problem}", file=sys.stderr)
    # 4. The solution's check cells.
    tampered = None
    for check in job["checks"]:
        if tampered:
            answer(check["name"], NOT_YET, tampered)
            continue
        before = _environment()
        try:
            status, detail = _verdict(
                check, namespace, modules, checks, installed, job.get("skipped", {})
            )
        except Exception as err:  # the grader's own failure: say so, go on
            status, detail = MISSING, f"the grader failed: {type(err).__name__}: {err}"
        changed = _changed(before, _environment())
        if changed:
            tampered = (
                f"not verified: while the check `{check['name']}` ran, the notebook's code "
                f"replaced {', '.join(changed[:3])}"
            )
            status, detail = NOT_YET, tampered
        answer(check["name"], status, detail)
    return 0


# --------------------------------------------------------------------------
# The grader's side.


def _job(nb, expected: list[ExpectedCheck]) -> dict:
    found = _extract(nb)
    return {
        "definitions": found.blocks,
        "skipped": found.skipped,
        "checks": [{"name": c.name, "module": c.module, "source": c.source} for c in expected],
    }


def parse_answers(stdout: bytes, nonce: str, names: list[str]) -> dict[str, tuple[str, str]]:
    """The answers in the program's output that carry ``nonce``, for the checks ``names``."""
    found = {}
    for line in stdout.decode("utf-8", errors="replace").splitlines():
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(answer, dict)
            and answer.get("nonce") == nonce
            and answer.get("name") in names
            and answer.get("status") in STATUSES
            and isinstance(answer.get("detail"), str)
            and answer["name"] not in found
        ):
            found[answer["name"]] = (answer["status"], answer["detail"])
    return found


def verify(
    nb,
    expected: list[ExpectedCheck],
    workdir: Path,
    *,
    timeout: float,
    memory_limit_gib: float | None,
    sandbox: bool = True,
    env: dict[str, str] | None = None,
    hide: Sequence[Path] = (),
) -> dict[str, tuple[str, str]]:
    """Run every expected check against the submission's definitions; name -> (status,
    detail), in a fresh (sandboxed) process that never ran the notebook.

    ``workdir`` must be a new, empty folder: the job is written there, and it is the
    program's only writable folder. Raises ``sandbox.SandboxUnavailable`` when
    ``sandbox`` is True and the sandbox cannot run here.
    """
    from vae_prac.course import sandbox as sandbox_module

    workdir = Path(workdir)
    names = [c.name for c in expected]
    try:
        job = _job(nb, expected)
    except Exception as err:  # a notebook the grader cannot read as cells
        return dict.fromkeys(names, (MISSING, f"could not read the notebook's code: {err}"))
    (workdir / JOB_FILE).write_text(json.dumps(job), encoding="utf-8")
    nonce = secrets.token_hex(16)
    argv = [sys.executable, "-m", "vae_prac.course.verification", JOB_FILE]
    kwargs = {"hide": hide} if hide else {}
    finished = sandbox_module.run(
        argv,
        workdir,
        timeout=timeout,
        memory_limit_gib=memory_limit_gib,
        sandbox=sandbox,
        env=env,
        stdin=(nonce + "\n").encode(),
        **kwargs,
    )
    found = parse_answers(finished.stdout, nonce, names)
    if finished.timed_out:
        why = (NOT_YET, f"the check did not finish within {timeout:g} s when the grader ran it")
    else:
        tail = finished.stderr.decode("utf-8", errors="replace").strip().splitlines()
        ended = f"exit status {finished.returncode}" + (f": {tail[-1]}" if tail else "")
        why = (MISSING, f"the grader's check program ended before this check ({ended})")
    return {name: found.get(name, why) for name in names}


if __name__ == "__main__":
    sys.exit(main())
