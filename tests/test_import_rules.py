"""Imports go one way: core → methods → experiments → cli; no cycles; the core loads no method module."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "minigrow"

CORE = ["layers", "layers.base", "layers.registry", "losses", "optim", "initializers", "train", "gradcheck", "io",
        "strategies",
        "checkpoint", "trainstate", "surgery", "data", "validate", "network", "output", "plotting", "fisher"]
METHOD_MODULES = ("minigrow.methods",)


def _module_name(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _resolve(mod, is_pkg, level, name):
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    if level > 1:
        base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def import_graph():
    """``{module: {imported minigrow module, …}}`` from every import statement (module level and inside
    functions); ``from a import b`` counts as an import of ``a.b`` when that is a module, else of ``a``."""
    mods = _modules()
    graph = {}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        out = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                src = _resolve(mod, is_pkg, node.level, node.module) if node.level else node.module
                for a in node.names:
                    targets.append(f"{src}.{a.name}" if f"{src}.{a.name}" in mods else src)
            for t in targets:
                if not t or not t.startswith("minigrow"):
                    continue
                while t not in mods and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in mods and t != mod:
                    out.add(t)
                    parent = t.rsplit(".", 1)[0]            # importing a.b.c runs the package a.b first
                    while "." in parent:
                        if parent in mods and parent != mod and not mod.startswith(parent + "."):
                            out.add(parent)
                        parent = parent.rsplit(".", 1)[0]
        graph[mod] = out
    return graph


def _tier(mod):
    if mod.startswith("minigrow.cli") or mod == "minigrow.__main__":
        return 3
    if mod.startswith(("minigrow.experiments", "minigrow.coursework")):    # coursework grades the methods too
        return 2
    if mod.startswith(METHOD_MODULES):
        return 1
    return 0


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_imports_go_one_way():
    """No edge from the core to methods/experiments/cli, from methods to experiments/cli, from experiments to
    cli. (The package ``minigrow`` itself is core: it must not import a method either.)"""
    bad = [f"{m} → {n}" for m, ns in import_graph().items() for n in ns if _tier(n) > _tier(m)]
    assert not bad, "imports against the direction core → methods → experiments → cli:\n" + "\n".join(sorted(bad))


def test_the_checker_sees_real_edges():
    """Guard against a checker that finds nothing: known edges (incl. function-level imports) are present."""
    g = import_graph()
    assert "minigrow.methods.sensli.formulas" in g["minigrow.methods.sensli.candidates"]
    assert "minigrow.experiments.bundles" in g["minigrow.cli.bundles"]
    assert "minigrow.checkpoint" in g["minigrow.cli.common"]                 # inside a function
    assert "minigrow.checkpoint" in g["minigrow.methods.sensli.loop"]
    assert "minigrow.layers" in g["minigrow.surgery"]                        # the package behind layers.base


@pytest.mark.parametrize("module", ["minigrow"] + [f"minigrow.{m}" for m in CORE])
def test_a_core_module_loads_no_method_module(module):
    code = (f"import sys, json; import {module}; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({METHOD_MODULES!r}) "
            f"or m.startswith(('minigrow.experiments', 'minigrow.cli')))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout) == []


def test_load_imports_a_method_module_only_when_the_file_names_its_layer(tmp_path):
    """minigrow.load rebuilds a block network (DenseBlock lives in minigrow.methods.bundles) in a fresh process
    that imported only the core — through the registry's name table."""
    from minigrow.io import save
    from minigrow.methods.bundles import block_net
    net = block_net([2], [5], 4, 3, rng=0)
    save(tmp_path / "blocks.npz", net)
    save(tmp_path / "plain.npz", block_net([0], [5], 4, 3, rng=0))
    code = ("import sys, json, minigrow; a = [m for m in sys.modules if m.startswith('minigrow.methods')]; "
            f"minigrow.load(r'{tmp_path / 'plain.npz'}'); b = [m for m in sys.modules "
            "if m.startswith('minigrow.methods')]; "
            f"m = minigrow.load(r'{tmp_path / 'blocks.npz'}')['model']; "
            "print(json.dumps([a, b, type(m.layers[0]).__name__, 'minigrow.methods.bundles.autotune' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout) == [[], [], "DenseBlock", True]


def test_every_external_layer_type_is_where_the_table_says():
    import importlib

    from minigrow.layers.base import LAYER_TYPES
    from minigrow.layers.registry import EXTERNAL_LAYER_TYPES, layer_type
    for name, module in EXTERNAL_LAYER_TYPES.items():
        importlib.import_module(module)
        assert LAYER_TYPES[name].__module__ == module
        assert layer_type(name) is LAYER_TYPES[name]
    assert layer_type("NoSuchLayer") is None
