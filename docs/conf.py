"""Sphinx configuration of the course website.

Build (from the repository root, with the ``site`` extra installed)::

    python -m sphinx docs docs/_build/html

then open docs/_build/html/index.html. No notebook is executed and nothing is fetched
from the network: the pages come from the solution notebooks' stored outputs and
README (see course_pages.py), and MathJax is served from the site itself. The API page
(api.md) is generated from the library's docstrings, so the build imports vae_prac (and
TensorFlow) once.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))

import course_pages  # noqa: E402

course_pages.stage(DOCS)

project = "vae_prac"
html_title = "vae_prac: variational auto-encoders, taught"
author = "vae_prac maintainers"
copyright = "vae_prac maintainers; MNIST by LeCun, Cortes and Burges (CC BY-SA 3.0)"

extensions = [
    "myst_nb",
    # api.md: the library's reference from its docstrings (Google style: Args, Returns).
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_design",
    # MathJax 3 from a PyPI package, copied into _static/mathjax: no CDN.
    "sphinx-mathjax-offline",
]
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "course_pages.py"]

# The API page: members in the order the source defines them, documented members only.
# A dataclass's "Attributes:" (Config's) become fields of the class, not a second
# description of each member.
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_use_ivar = True

# myst-nb: show the outputs stored in the notebooks; never run them.
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3  # README's "#notebooks"-style links need heading ids

html_theme = "sphinx_book_theme"
html_theme_options = {
    "repository_url": course_pages.repo_url(),
    "use_repository_button": True,
    # The theme's download button would offer this site's rewritten copy of a solution
    # notebook; each page links the real student notebook instead.
    "use_download_button": False,
    # The site's title, at the top of the sidebar, already leads home.
    "home_page_in_toc": False,
    "show_toc_level": 2,
}
# The theme reads the colour mode from this; left empty, every first visit logs a
# console error ("invalid theme mode"). Light suits the notebooks' white figures.
html_context = {"default_mode": "light"}
html_static_path = ["_static"]
# Without an icon the browser asks every page's server for /favicon.ico: a 404.
html_favicon = "_static/favicon.svg"
html_css_files = ["course.css"]
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None
