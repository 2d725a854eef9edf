"""The library's shape: every import points down (no circles, lazy imports inside functions included)."""

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "llmcore"


def _module(path: Path) -> str:
    parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the llmcore modules it imports anywhere in its source (top level or inside a function)."""
    modules = {_module(p): p for p in LIBRARY.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from .x import y
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or round a loop (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_in_llmcore():
    graph = import_graph()
    assert {"llmcore.model", "llmcore.train", "llmcore.interpret.steer"} <= set(graph)
    assert "llmcore.params" in graph["llmcore.train"]  # lazy and top-level imports are both seen
    assert circles(graph) == [], "modules that import each other: move the shared piece down a floor"


def test_the_floors_in_the_architecture_page_match_the_code():
    """docs/architecture.md's table of floors: every module listed once, each on its real floor."""
    import functools
    import re

    graph = import_graph()

    @functools.cache
    def floor(m: str) -> int:
        return 1 + max((floor(d) for d in graph[m]), default=-1)

    page = (LIBRARY.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = page.split("## Which module may import which", 1)[1].split("\n## ", 1)[0]
    listed = {}
    for n, cell in re.findall(r"^\| (\d+) \| (.+) \|$", table, flags=re.M):
        for short in re.findall(r"`([\w.]+)`", cell):
            listed["llmcore" if short == "llmcore" else f"llmcore.{short}"] = int(n)
    assert listed == {m: floor(m) for m in graph}, "redraw the table of floors in docs/architecture.md"
