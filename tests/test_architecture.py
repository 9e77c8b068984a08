"""The walls between packages: no import cycles between rcatune's packages (every import counts, the ones inside
functions too), and steps that only call the library."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_of(module: str) -> str:
    """rcatune.deploy.router -> rcatune.deploy; rcatune.runner -> rcatune.runner (a top-level module is a node)."""
    return ".".join(module.split(".")[:2])


def import_graph(package_dir: Path) -> dict[str, dict[str, list[str]]]:
    """{package: {package it imports: ['file:line', ...]}} over every .py file under `package_dir`."""
    name, edges = package_dir.name, {}
    known = {p.stem if p.is_file() else p.name for p in package_dir.iterdir() if p.suffix == ".py" or p.is_dir()}
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir.parent).with_suffix("")
        source = package_of(".".join(relative.parts).removesuffix(".__init__"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                parts = target.split(".")
                if parts[0] != name or len(parts) < 2 or parts[1] not in known:
                    continue
                if (target_package := package_of(target)) != source:
                    where = f"{path.relative_to(package_dir.parent)}:{node.lineno}"
                    edges.setdefault(source, {}).setdefault(target_package, []).append(where)
    return edges


def cycles(edges: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Strongly connected components of more than one package (Tarjan), each sorted."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(edges) | {t for targets in edges.values() for t in targets}):
        if node not in index:
            visit(node)
    return found


def explain(edges, component: list[str]) -> str:
    return "\n".join(f"  {a} -> {b}: {', '.join(edges[a][b][:3])}" for a in component for b in component
                     if b in edges.get(a, {}))


def test_no_import_cycle_between_packages():
    edges = import_graph(ROOT / "rcatune")
    found = cycles(edges)
    assert not found, "import cycles between packages:\n" + "\n".join(explain(edges, c) for c in found)
    assert "rcatune.models" in edges.get("rcatune.inference", {}), "the graph sees the imports inside functions"


def test_the_check_finds_a_planted_cycle(tmp_path):
    copy = tmp_path / "rcatune"
    shutil.copytree(ROOT / "rcatune", copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert not cycles(import_graph(copy))
    config = copy / "config" / "serving.py"
    config.write_text(config.read_text() + "\n\ndef _planted():\n    from rcatune.serving.app import create_app\n")
    found = cycles(import_graph(copy))
    assert found and {"rcatune.config", "rcatune.serving"} <= set(found[0]), found
    assert "rcatune/config/serving.py" in explain(import_graph(copy), found[0])


def test_steps_only_call_the_library():
    for name in ("register.py", "deployment.py"):
        lines = (ROOT / "steps" / name).read_text().splitlines()
        assert len(lines) < 40, f"steps/{name} has {len(lines)} lines: its logic belongs in rcatune/"
