"""The course wing: the tooling that makes, grades and verifies the notebook series.

The model code (``vae_prac.model``, ``vae_prac.bounds``, ``vae_prac.training``, ...) is
what the notebooks teach; this package is what runs the course around it, kept apart
from the code it judges:

* ``vae_prac.course.student`` generates each student notebook from its solution
  (``python -m vae_prac.course.student``) and refreshes the solutions' stored outputs;
* ``vae_prac.course.grading`` grades submitted notebooks (``vae-prac grade``): each runs
  in a sandbox of its own (``sandbox``: bubblewrap), executed by ``run_notebook``; then
  ``verification`` judges every check in a second, fresh sandboxed process that loads
  only the student's definitions; ``report`` writes the instructor's HTML page.

The checks themselves stay in ``vae_prac.checks``, the import path every notebook uses.
The library never imports this package; it may import the library and the checks.
"""

from pathlib import Path

#: The repository's root: the notebooks live beside the package, not inside it.
ROOT = Path(__file__).resolve().parents[2]
#: The solution notebooks: the source of the student notebooks and of the grader's checks.
SOLUTIONS_DIR = ROOT / "notebooks" / "solutions"
#: The student notebooks, generated from the solutions by ``vae_prac.course.student``.
STUDENT_DIR = ROOT / "notebooks" / "student"
