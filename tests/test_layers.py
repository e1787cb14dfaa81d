"""The layering of docs/architecture.md, checked on the source: no import circles, lower layers
never import higher ones, and the engine's loop names no dataset."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports() -> dict[str, set[str]]:
    """module → pointseg modules it imports (anywhere in the file, function bodies included)."""
    mods = {}
    for path in (ROOT / "pointseg").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m and not m.startswith(t + "."):
                    edges[m].add(t)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


OWN = ("pointseg.engine", "pointseg.tasks", "pointseg.models", "pointseg.runtime",
       "pointseg.checkpoint", "pointseg.commands", "pointseg.cli")  # fmt: skip


def test_no_import_circles_through_the_engine_tasks_and_models():
    # (`python3 ../shared/hooks/import_graph.py . pointseg visualize` checks the whole package.)
    cycles = [c for c in _cycles(_imports()) if any(m.startswith(OWN) for m in c)]
    assert cycles == []


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_lower_layers_do_not_import_higher_ones():
    edges = _imports()
    top = ("pointseg.engine.trainer", "pointseg.engine.config", "pointseg.engine.train",
           "pointseg.engine.evaluate", "pointseg.engine.graph", "pointseg.engine.seeds",
           "pointseg.commands", "pointseg.cli")  # fmt: skip
    for m, targets in edges.items():
        if m.startswith("pointseg.runtime"):
            assert targets <= {"pointseg.errors"} | {t for t in targets if "runtime" in t}, m
        if m.startswith(("pointseg.models", "pointseg.data", "pointseg.nn", "pointseg.graph")):
            bad = {t for t in targets if t.startswith(("pointseg.engine", "pointseg.tasks"))}
            assert not bad, (m, bad)
        if m.startswith("pointseg.tasks"):
            assert not {t for t in targets if _under(t, top)}, m
        if m.startswith("pointseg.engine") and not _under(m, top):
            assert not {t for t in targets if _under(t, ("pointseg.tasks", *top))}, m


def test_the_training_loop_names_no_dataset():
    for name in ("trainer.py", "train.py", "evaluate.py", "runlog.py"):
        text = (ROOT / "pointseg" / "engine" / name).read_text()
        for literal in ('"s3dis"', '"modelnet40"', '"segmentation"', '"classification"'):
            assert literal not in text, (name, literal)
