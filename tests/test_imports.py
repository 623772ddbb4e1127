"""The package has no import cycle, lazy (function-level) imports counted."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "landslide_wsss"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = PKG.parent / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _graph():
    graph = {}
    for path in PKG.rglob("*.py"):
        name = _module(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.startswith("landslide_wsss"):
                    deps.add(target)
                    # `from . import x` may name a submodule or a subpackage
                    deps.update(s for s in (f"{target}.{a.name}" for a in node.names) if _is_module(s))
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("landslide_wsss"))
        graph[name] = {d for d in deps if d != name and d != "landslide_wsss"}
    return graph


def test_no_import_cycle():
    graph = _graph()
    # the walk sees the package's edges: `from .raster import`, and `from . import api` inside a function
    assert "landslide_wsss.raster" in graph["landslide_wsss.pipeline"]
    assert "landslide_wsss.api" in graph["landslide_wsss.cli"]
    state, stack, cycles = {}, [], []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in graph.get(n, ()):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d in graph and not state.get(d):
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if not state.get(n):
            visit(n)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
