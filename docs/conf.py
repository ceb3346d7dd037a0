"""Sphinx configuration of the sklearn-leuko documentation.

Build (what CI runs, see CONTRIBUTING.md)::

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

The build needs no network: intersphinx reads the inventories cached in
``docs/_intersphinx/`` (written by ``make_inventories.py`` there), and the
example gallery trains its tiny models on the CPU.
"""

import os
import pathlib
import warnings

import sklearn_leuko

DOCS = pathlib.Path(__file__).parent

project = "sklearn-leuko"
author = "the sklearn-leuko developers"
copyright = "the sklearn-leuko developers; BSD-3-Clause"
release = sklearn_leuko.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "sphinx_copybutton",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "_intersphinx",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.json",
    "sg_execution_times.rst",
    "**/README.md",
]
# The pages in docs/ that other parts of the project write link to source files
# of the repository (``../sklearn_leuko/...``); those are not documents.
suppress_warnings = ["myst.xref_missing"]

# -- API reference -----------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
# the subpackage pages list exactly their __all__
autosummary_ignore_module_all = False
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
# numpydoc lists the methods itself (from the autosummary tables in the class
# template), so autodoc does not list members a second time.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()
add_module_names = False
# Public modules that are another name for a private one (``nn.functional`` is
# ``nn._functional``): their page links to the functions' pages in the package
# instead of documenting them twice.
autosummary_context = {
    "alias_modules": {"sklearn_leuko.nn.functional": "sklearn_leuko.nn"}
}

# -- cross-links, offline ----------------------------------------------------
# No network at build time: each inventory is a local file, written from the
# installed package by _intersphinx/make_inventories.py (no PyPI package ships
# the projects' own objects.inv).
intersphinx_mapping = {
    "sklearn": ("https://scikit-learn.org/stable/", "_intersphinx/sklearn.inv"),
    "torch": ("https://docs.pytorch.org/docs/stable/", "_intersphinx/torch.inv"),
    "skorch": ("https://skorch.readthedocs.io/en/stable/", "_intersphinx/skorch.inv"),
    "numpy": ("https://numpy.org/doc/stable/", "_intersphinx/numpy.inv"),
}
intersphinx_timeout = 1

# -- Markdown ----------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- example gallery ---------------------------------------------------------
os.environ.setdefault("MPLBACKEND", "Agg")
# The examples train tiny networks; keep their own warnings about tiny inputs out
# of the pages (each example says what it simplifies).
warnings.filterwarnings("ignore", message="The Basic Network's last feature map is 1x1")
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # execute every example, not only plot_*.py
    "filename_pattern": r"\.py$",
    "ignore_pattern": r"(__init__|_helpers)\.py$",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "reference_url": {"sklearn_leuko": None},
    "doc_module": ("sklearn_leuko",),
    "backreferences_dir": "api/generated/backreferences",
    "show_memory": False,
    "min_reported_time": 5,
    "matplotlib_animations": False,
    "abort_on_example_error": False,
}

# -- HTML ----------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-leuko {release}"
html_static_path = ["_static"]
html_logo = "_static/cell-od-gradcam.png"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False
html_last_updated_fmt = None

# -- pages that other issues add: listed when they exist ----------------------
# The user guide's toctree has a placeholder that becomes one entry per page below
# that is present, so that a missing page neither breaks nor silently empties it.
OPTIONAL_GUIDE_PAGES = [
    "your-own-images",
    "own-microscope",
    "real-cells",
    "reliability",
    "performance",
    "scaling-out",
    "paper-fidelity",
]


def _fill_guide_toctree(app, docname, source):
    if docname != "user-guide":
        return
    present = [p for p in OPTIONAL_GUIDE_PAGES if (DOCS / f"{p}.md").exists()]
    source[0] = source[0].replace("OPTIONAL_GUIDE_PAGES", "\n".join(present))


def _check_api_pages(app, exception):
    # every public name needs a page; a missing one is a warning (-W: an error)
    if exception is not None or app.builder.name not in ("html", "dummy"):
        return
    import sys

    from sphinx.util import logging

    sys.path.insert(0, str(DOCS))
    from api_coverage import missing_pages

    for name in missing_pages(DOCS / "api" / "generated"):
        logging.getLogger(__name__).warning(
            "public name %s has no page in the API reference (docs/api.rst)", name
        )


def _reread_guide(app, env, added, changed, removed):
    # its toctree depends on which optional pages exist: read it on every build
    return ["user-guide"]


def setup(app):
    app.connect("source-read", _fill_guide_toctree)
    app.connect("env-get-outdated", _reread_guide)
    app.connect("build-finished", _check_api_pages)
