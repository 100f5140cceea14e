"""The package graph reads bottom-up: data -> models -> train -> compress -> export -> runner -> bench,
runtime/ (torch-free) depends on none of them, and no package imports a later one, lazily or not."""

from __future__ import annotations

import ast
from pathlib import Path

import atpn_edge

ROOT = Path(atpn_edge.__file__).parent
PIPELINE = ("data", "models", "train", "compress", "export", "runner", "bench")
# runtime/ and track/ run exported artifacts without torch; track reaches checkpoints only through
# the top-level atpn_edge.predictors, which imports train/ when a .pt is opened.
SIDE = {"runtime": set(), "track": {"runtime", "data"}}


def _package_imports() -> dict[str, dict[str, list[str]]]:
    """package -> {imported package or top-level module -> ["file:line", ...]} (every import statement)."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if len(parts) < 2:
            continue  # top-level modules (cli, demo, ...) sit above the packages
        source = parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("atpn_edge."):
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("atpn_edge.")]
            else:
                continue
            for name in names:
                target = name.split(".")[1]
                if target != source:
                    graph.setdefault(source, {}).setdefault(target, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return graph


def test_packages_import_only_earlier_pipeline_stages():
    graph = _package_imports()
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and any(p.glob("*.py"))}
    assert set(PIPELINE) | set(SIDE) <= packages
    wrong = []
    for source, targets in graph.items():
        for target, where in targets.items():
            if target not in packages:
                continue  # a top-level module (errors, io, metrics, evaluate, predictors)
            if source in SIDE:
                ok = target in SIDE[source]
            elif source in PIPELINE:
                ok = target == "runtime" or (target in PIPELINE and PIPELINE.index(target) < PIPELINE.index(source))
            else:
                ok = True
            if not ok:
                wrong.append(f"{source} -> {target} ({', '.join(where[:3])})")
    assert not wrong, "imports against the pipeline order:\n" + "\n".join(wrong)


def test_runtime_imports_no_torch_side_module():
    top_level_torch_side = {"predictors", "evaluate", "demo", "cli"}
    graph = _package_imports().get("runtime", {})
    assert not set(graph) & top_level_torch_side, graph
    for path in (ROOT / "runtime").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any((n or "").split(".")[0] == "torch" for n in names), f"{path}:{node.lineno} imports torch"
