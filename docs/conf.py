"""Sphinx configuration of the minigrow documentation site.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    python -m sphinx -b html -c docs . docs/_build/html

The *source* directory is the repository root and this file's folder (docs/) is the configuration directory, so
the pages are the files themselves, at their own paths: README.md, the write-ups docs/*.md, the method notes and
the tutorials tutorials/0N_*.py (Jupyter "percent" scripts, read through jupytext and executed by myst-nb). Their
relative links and image paths (``docs/sensli.md``, ``../docs/figures/…``) therefore work unchanged on the site,
on GitHub and in Jupyter. Open docs/_build/html/index.html.

* API reference: autosummary ``:recursive:`` over the ``minigrow`` package (docs/api/index.rst), numpydoc.
  The pages are generated into docs/api/generated/ (git-ignored) from whatever modules the package has.
* Math: MathJax 3 served from the build itself (``_static/mathjax``, shipped by the PyPI package
  ``sphinx-mathjax-offline``), never from a CDN. Unicode symbols inside math (∂, Σ, ⊙, ᵀ, x̂ …) are mapped to
  TeX commands at build time (``_texify``) — the docstrings stay as they are.
* Tutorials are executed while building, in quick mode (``MINIGROW_QUICK=1``, seconds each, writes nothing)
  unless MINIGROW_QUICK is set otherwise in the environment (``MINIGROW_QUICK=0`` runs the full tutorials,
  which take many minutes). Their figures appear inline.
"""
from __future__ import annotations

import os
import re
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))          # the package of this checkout, even when it is not installed

# Tutorials run in quick mode unless asked otherwise; the notebook kernels inherit this environment.
os.environ.setdefault("MINIGROW_QUICK", "1")
# ... and import the package of this checkout (first on their path), installed or not.
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

# autosummary :recursive: imports every submodule; `python -m minigrow` runs the CLI at import time, so the
# documentation imports a stand-in module instead (it is not documented: it has no API).
sys.modules.setdefault("minigrow.__main__", types.ModuleType("minigrow.__main__"))

import minigrow  # noqa: E402

project = "minigrow"
author = "the minigrow developers"
copyright = "minigrow developers, MIT licence"
release = version = minigrow.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",                          # includes myst_parser (Markdown pages) and reads/executes notebooks
    "sphinx-mathjax-offline",           # copies MathJax 3 into _static/mathjax of the build
]

# ---- which files are pages -------------------------------------------------------------------------------------
root_doc = "docs/index"
include_patterns = [
    "README.md",
    "data/README.md",
    "docs/index.md",
    "docs/*.md",                        # index, tutorials, writeups and the write-ups themselves
    "docs/methods/*.md",
    "docs/derivations/*.md",
    "docs/api/**",
    "tutorials/[0-9][0-9]_*.py",
]
exclude_patterns = ["docs/_build", "**/.ipynb_checkpoints", ".venv", "build"]
templates_path = [str(HERE / "_templates")]
suppress_warnings = ["myst.header"]     # the write-ups open with a level-2 heading

# ---- API reference ---------------------------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"              # numpydoc sections carry the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False     # the class template lists members itself (no duplicate tables)
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set = set()

# ---- Markdown and notebooks ------------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = os.environ.get("MINIGROW_DOCS_EXECUTE", "cache")   # "off" builds without running them
nb_execution_timeout = 3600
nb_execution_raise_on_error = True      # a tutorial that fails fails the build
nb_execution_show_tb = True
nb_merge_streams = True
nb_kernel_rgx_aliases = {".*": "python3"}

# ---- math: local MathJax 3 -------------------------------------------------------------------------------------
mathjax_path = "mathjax/tex-chtml.js"   # relative: served from this build's _static/, no network
mathjax3_config = {"tex": {"macros": {"fl": r"\mathrm{fl}"}}}

# ---- HTML ------------------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"minigrow {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
html_static_path = ["_static"]
html_css_files = ["minigrow.css"]
html_show_sourcelink = True


# ---- unicode inside math → TeX ---------------------------------------------------------------------------------
# The docstrings write formulas the way they read in a terminal (∂L/∂x̂ = Σ g ⊙ γ, δᵀA, σ²). MathJax sets a bare
# unicode character as a plain glyph: ∂ and Σ come out in the wrong font and size, a combining hat (x̂) and the
# modifier letters (ᵀ, ², ₀) are not accents or scripts at all. Each is rewritten into its TeX command, in the
# math nodes only, when a page is read.
_SUP = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻ᵀⁿ", ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "-", r"\top ", "n"]))
_SUB = dict(zip("₀₁₂₃₄₅₆₇₈₉ᵢⱼₖ", "0123456789ijk"))
_ACCENT = {"\u0302": r"\hat", "\u0303": r"\tilde", "\u0304": r"\bar", "\u0307": r"\dot"}
_SYMBOL = {
    "∂": r"\partial ", "Σ": r"\sum ", "∑": r"\sum ", "∏": r"\prod ", "⊙": r"\odot ", "∇": r"\nabla ",
    "←": r"\leftarrow ", "→": r"\to ", "⇒": r"\Rightarrow ", "↦": r"\mapsto ", "−": "-", "·": r"\cdot ",
    "×": r"\times ", "…": r"\ldots ", "⋯": r"\cdots ", "∞": r"\infty ", "≤": r"\le ", "≥": r"\ge ",
    "≠": r"\ne ", "≈": r"\approx ", "∈": r"\in ", "‖": r"\| ", "⊤": r"\top ", "√": r"\surd ", "∘": r"\circ ",
    "ℓ": r"\ell ",
}
_SUP_RE = re.compile("[" + "".join(_SUP) + "]+")
_SUB_RE = re.compile("[" + "".join(_SUB) + "]+")
_ACCENT_RE = re.compile(r"(\\[A-Za-z]+ ?|[^\s\\{}])([" + "".join(_ACCENT) + "])")
_SYMBOL_RE = re.compile("|".join(map(re.escape, _SYMBOL)))


def _texify(tex: str) -> str:
    """Rewrite the unicode symbols of one formula as TeX: ``∂L/∂x̂ = δᵀ`` → ``\\partial L/\\partial \\hat{x} = δ^{\\top}``."""
    tex = _ACCENT_RE.sub(lambda m: f"{_ACCENT[m.group(2)]}{{{m.group(1).strip()}}}", tex)
    tex = _SUP_RE.sub(lambda m: "^{" + "".join(_SUP[c] for c in m.group(0)) + "}", tex)
    tex = _SUB_RE.sub(lambda m: "_{" + "".join(_SUB[c] for c in m.group(0)) + "}", tex)
    return _SYMBOL_RE.sub(lambda m: _SYMBOL[m.group(0)], tex)


def _texify_math_nodes(app, doctree):
    from docutils import nodes
    for node in list(doctree.findall(lambda n: isinstance(n, (nodes.math, nodes.math_block)))):
        old = node.astext()
        new = _texify(old)
        if new != old:
            node.children = []
            node += nodes.Text(new)
        if isinstance(node, nodes.math_block) and "latex" in node.attributes:
            node["latex"] = _texify(node["latex"])


# ---- docstrings: two reST pitfalls of the house style, handled when the docs are built -------------------------
# 1. |B^l|, |b|, |x − c| in prose are reST *substitution references* (docutils reports "Undefined substitution"
#    and prints them in red): bars in prose are escaped (and a ``_`` before one: ``b_|B|`` is no link), never in math, literals, roles or tables.
# 2. numpydoc drops sections it does not know (BatchNorm's "State", Trainer's "Method state"), formulas included:
#    they are moved, under a rubric with their own title, into the Notes section.
_BARS = re.compile(r"(?<!\\)\|")
_TICKS = re.compile(r"(``.+?``|`[^`]*`)")


def _escape_bars(lines):
    out, block_indent = [], None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if block_indent is not None:
            if not line.strip() or indent > block_indent:
                out.append(line)
                continue
            block_indent = None
        stripped = line.strip()
        if stripped.startswith(".. ") or stripped.endswith("::"):
            block_indent = indent           # a directive or literal block follows: leave its body alone
            out.append(line)
            continue
        if stripped.startswith(("| ", "+-", "+=")):
            out.append(line)                # a line block or a grid table
            continue
        parts = _TICKS.split(line)
        parts[::2] = [_BARS.sub(r"\\|", part.replace("_|", "\\_|")) for part in parts[::2]]
        out.append("".join(parts))
    return out


def _move_unknown_sections(lines):
    from numpydoc.docscrape import NumpyDocString
    known = set(NumpyDocString.sections)
    heads = [i for i in range(len(lines) - 1)
             if lines[i].strip() and not lines[i].startswith(" ")
             and re.fullmatch(r"-{3,}", lines[i + 1].strip() or "x") and len(lines[i + 1].strip()) >= len(lines[i].strip()) - 1]
    if not heads:
        return lines
    cuts = heads + [len(lines)]
    head, sections = lines[:heads[0]], [(lines[a].strip(), lines[a + 2:b]) for a, b in zip(cuts, cuts[1:])]
    titled = lambda t: " ".join(w.capitalize() for w in t.split(" "))
    moved = [(t, body) for t, body in sections if titled(t) not in known]
    if not moved:
        return lines
    kept = [(t, body) for t, body in sections if titled(t) in known]
    extra = []
    for t, body in moved:
        extra += [f".. rubric:: {t}", ""] + body + [""]
    for k, (t, body) in enumerate(kept):
        if titled(t) == "Notes":
            kept[k] = (t, body + [""] + extra)
            break
    else:
        kept.append(("Notes", extra))
    out = list(head)
    for t, body in kept:
        out += [t, "-" * len(t)] + body
    return out


def _prepare_docstring(app, what, name, obj, options, lines):
    lines[:] = _escape_bars(_move_unknown_sections(list(lines)))


def _redirect_root(app, exc):
    """The site's front page is docs/index.html (the sources keep their paths); index.html points there."""
    if exc is None and app.builder.format == "html":
        Path(app.outdir, "index.html").write_text(
            '<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0; url=docs/index.html">'
            '<title>minigrow</title></head><body><a href="docs/index.html">minigrow documentation</a></body></html>\n',
            encoding="utf-8")


def setup(app):
    app.connect("autodoc-process-docstring", _prepare_docstring, priority=400)    # before numpydoc (500)
    app.connect("doctree-read", _texify_math_nodes)
    app.connect("build-finished", _redirect_root)
