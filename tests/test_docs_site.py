"""The documentation site: build it (quick mode) and look at pages in a real, headless browser.

What a reader gets is checked from the rendered DOM after the page's scripts ran (Chromium ``--dump-dom`` on a
copy of the page with a small probe script appended): every formula was typeset by the local MathJax (each
``.math`` element holds MathJax output, no MathJax error, no raw ``$$`` / ``\\[`` left in the text), every image
has loaded (``naturalWidth > 0``), tutorial 04's figure drawn by the executed code is inline, and no page loads a
script from the network.

Needs the ``[docs]`` extra (``pip install -e ".[docs]"``) and Debian's ``chromium``
(``apt-get install chromium``); skips with the reason otherwise. .ci/run installs both. The build runs on a copy
of the sources under tmp_path (autosummary writes its generated pages next to the sources).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS_MODULES = {"sphinx": "sphinx", "numpydoc": "numpydoc", "myst_nb": "myst-nb", "jupytext": "jupytext",
                "ipykernel": "ipykernel", "pydata_sphinx_theme": "pydata-sphinx-theme",
                "sphinx-mathjax-offline": "sphinx-mathjax-offline", "matplotlib": "matplotlib",
                "hypothesis": "hypothesis"}

PROBE = """
<script>
window.addEventListener("load", function () {
  function report() {
    var main = document.querySelector("main") || document.body;
    var maths = Array.from(main.querySelectorAll(".math"));
    var text = main.cloneNode(true);
    text.querySelectorAll("pre, code, mjx-container, script, style").forEach(function (e) { e.remove(); });
    var out = {
      mathjax_loaded: !!(window.MathJax && window.MathJax.version),
      math_elements: maths.length,
      typeset: maths.filter(function (m) { return m.querySelector("mjx-container") !== null; }).length,
      mathjax_errors: main.querySelectorAll("mjx-merror, [data-mjx-error]").length,
      raw_tex: (text.textContent.match(/\\$\\$|\\\\\\[|\\\\\\(/g) || []).length,
      images: Array.from(main.querySelectorAll("img")).map(function (i) {
        return {src: i.getAttribute("src"), width: i.naturalWidth, complete: i.complete,
                in_output: i.closest(".cell_output") !== null};
      })
    };
    var pre = document.createElement("pre");
    pre.id = "docs-site-probe";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(report, report);
  } else {
    setTimeout(report, 500);
  }
});
</script>
"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    missing = sorted(pkg for mod, pkg in DOCS_MODULES.items() if importlib.util.find_spec(mod) is None)
    if missing:
        pytest.skip(f"the docs extra is not installed (missing {', '.join(missing)}): pip install -e \".[docs]\"")
    if _chromium() is None:
        pytest.skip("no headless browser: install Debian's chromium (apt-get install chromium)")
    tmp = tmp_path_factory.mktemp("docs")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("_build", "generated", "__pycache__", "jupyter_execute", ".jupyter_cache",
                                    "*.pyc", "*.npz")
    src.mkdir()
    shutil.copy2(ROOT / "README.md", src / "README.md")
    for name in ("docs", "tutorials", "data"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    (src / "minigrow").symlink_to(ROOT / "minigrow", target_is_directory=True)   # read only, with its data
    out = tmp / "html"
    env = dict(os.environ, MINIGROW_QUICK="1", PYTHONPATH=str(src))
    env.pop("MPLBACKEND", None)          # the kernels draw inline
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(src / "docs"), str(src),
                           str(out), "-d", str(tmp / "doctrees")],
                          cwd=src, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"sphinx failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return out, proc.stderr


def _probe(site_dir: Path, page: str, tmp_path: Path) -> dict:
    """Open a copy of ``page`` (same folder, so relative links hold) in headless Chromium; return the probe's dict."""
    html = site_dir / page
    assert html.is_file(), f"{page} was not built"
    probe_page = html.with_name("_probe_" + html.name)
    probe_page.write_text(html.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}", "--allow-file-access-from-files",
           "--virtual-time-budget=30000", "--dump-dom", probe_page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    m = re.search(r'<pre id="docs-site-probe"[^>]*>(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the probe did not report on {page} (chromium exit {proc.returncode}):\n{proc.stderr[-2000:]}"
    return json.loads(m.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
                      .replace("&quot;", '"'))


def _check_math_and_images(r: dict, page: str, min_math: int, min_images: int):
    assert r["mathjax_loaded"], f"{page}: MathJax did not load from _static/mathjax"
    assert r["math_elements"] >= min_math, f"{page}: only {r['math_elements']} formulas on the page"
    assert r["typeset"] == r["math_elements"], f"{page}: {r['math_elements'] - r['typeset']} formulas not typeset"
    assert r["mathjax_errors"] == 0, f"{page}: {r['mathjax_errors']} MathJax errors"
    assert r["raw_tex"] == 0, f"{page}: raw TeX delimiters left in the text"
    assert len(r["images"]) >= min_images, f"{page}: {len(r['images'])} images, expected ≥ {min_images}"
    broken = [i["src"] for i in r["images"] if not (i["complete"] and i["width"] > 0)]
    assert not broken, f"{page}: images that did not load: {broken}"


def test_tutorial_page_math_typeset_and_figures_load(site, tmp_path):
    out, _ = site
    r = _probe(out, "tutorials/01_sensli.html", tmp_path)
    _check_math_and_images(r, "tutorial 01", min_math=10, min_images=3)   # the full runs' figures, docs/figures


def test_executed_tutorial_shows_its_figure_inline(site, tmp_path):
    out, _ = site
    r = _probe(out, "tutorials/04_convolution_by_hand.html", tmp_path)
    _check_math_and_images(r, "tutorial 04", min_math=5, min_images=1)
    assert any(i["in_output"] for i in r["images"]), "tutorial 04: no figure in the executed cells' output"


def test_docstring_math_typeset_in_api_reference(site, tmp_path):
    out, _ = site
    pages = sorted((out / "docs" / "api" / "generated").glob("minigrow.*.html"))
    assert len(pages) > 20, "the API reference has too few pages"
    page = next(p for p in pages if p.name.endswith("BatchNorm1d.html"))    # ∂, Σ, x̂ in .. math:: blocks
    r = _probe(out, str(page.relative_to(out)), tmp_path)
    _check_math_and_images(r, "BatchNorm1d", min_math=4, min_images=0)


def test_pages_exist_and_load_no_script_from_the_network(site):
    out, _ = site
    for page in ["index.html", "docs/index.html", "README.html", "docs/sensli.html", "docs/bundles.html",
                 "docs/pruning.html", "docs/core.html", "docs/reliability.html", "docs/api/index.html",
                 *[f"tutorials/{p.stem}.html" for p in sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))]]:
        assert (out / page).is_file(), f"{page} missing from the site"
    remote = set()
    for html in out.rglob("*.html"):
        remote |= set(re.findall(r'<script[^>]*\ssrc="((?:https?:)?//[^"]*)"', html.read_text(encoding="utf-8")))
    assert not remote, f"scripts loaded from the network: {sorted(remote)}"
    assert (out / "_static" / "mathjax" / "tex-chtml.js").is_file()
