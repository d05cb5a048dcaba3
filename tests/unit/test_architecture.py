"""The import graph of docpipe's own packages: no cycles, and imports point inward.

The graph is built from the source with `ast`, so it sees every import, wherever it is written: at module top,
inside functions and methods, under `if TYPE_CHECKING:`, inside `try:`. A deferred import still ties two modules
together; hiding it in a function only hides the tie from the reader.

How an import becomes edges (from the importing module):

- `import a.b.c` is an edge to `a.b.c`; `from a.b import c` is an edge to `a.b.c` when `a/b/c.py` (or the package
  `a/b/c/`) exists, else to `a.b` (`c` is a name defined in it). Relative imports are resolved against the
  importing module's package first.
- A name that is not one of ours (`celery`, `torch`) is an edge to its top-level distribution name; those only
  matter for the direction rules.
- Package `__init__` modules: importing `a.b.c` also runs `a/__init__` and `a/b/__init__`, but those implicit
  parent imports are NOT edges. Otherwise every package whose `__init__` re-exports its submodules would be in a
  cycle with each of them, and the check would say nothing. What an `__init__` itself imports are ordinary edges
  from the package, so a submodule that imports its own package by name (`from pipeline.store import repo_fn`
  where the package re-exports `repo_fn` from that same submodule) is a cycle and is reported: import the
  submodule that defines the name instead.

Rules checked:

1. No cycle between modules: every strongly connected component of the module graph has one member.
2. No cycle between the domain's packages: with each module of `pipeline.<pkg>` collapsed into `pipeline.<pkg>`
   (top-level modules such as `pipeline.config` stay themselves), the graph is still acyclic, so a feature
   package (train, infer, store, index, ...) can be read and tested without the one that uses it.
3. Directions (the three rings: domain, workers, shells):
   - `pipeline` and `migrations` never import `workers`, `cli`, `api`, nor Celery, Typer, FastAPI, Starlette,
     Uvicorn or Rich;
   - `pipeline` never imports `migrations`: the migrations (and their runner, `migrations.runner`) build the
     domain's tables, so they import its models, never the reverse;
   - `workers` never imports `cli` or `api`;
   - `cli` and `api` import from `workers` only `workers.client`, the one door into Celery (what the client
     itself imports, such as `workers.routing`, is its business).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "workers", "cli", "api", "migrations")
SHELL_LIBRARIES = ("celery", "kombu", "typer", "fastapi", "starlette", "uvicorn", "rich")


@dataclass
class Graph:
    """Modules of the scanned packages and, per module, the imports it makes (to ours and to libraries)."""

    modules: set[str] = field(default_factory=set)
    edges: dict[str, set[str]] = field(default_factory=dict)
    # (importer, imported) -> the first line that makes the import, for readable failures
    where: dict[tuple[str, str], int] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    root: Path = Path(".")

    def internal_edges(self) -> dict[str, set[str]]:
        return {m: {t for t in self.edges.get(m, ()) if t in self.modules} for m in self.modules}

    def cite(self, source: str, target: str) -> str:
        path = self.paths[source].relative_to(self.root).as_posix()
        return f"{path}:{self.where[(source, target)]} ({source} -> {target})"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, str | None, int]]:
    """(module imported, name taken from it or None, line) for every import statement anywhere in the tree."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                yield target, alias.name, node.lineno


def build_graph(root: Path, packages: Iterable[str]) -> Graph:
    graph = Graph(root=root)
    files = [path for package in packages for path in sorted((root / package).rglob("*.py"))]
    for path in files:
        name = module_name(path, root)
        graph.modules.add(name)
        graph.paths[name] = path
    for path in files:
        source = module_name(path, root)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = graph.edges.setdefault(source, set())
        for imported, name, line in _imported_names(tree, source, path.name == "__init__.py"):
            if name is not None and f"{imported}.{name}" in graph.modules:
                target = f"{imported}.{name}"
            elif imported in graph.modules:
                target = imported
            elif imported.split(".")[0] in packages:
                # an attribute path inside one of ours (`import pipeline.x.y` where y is a name): the longest module
                parts = imported.split(".")
                while parts and ".".join(parts) not in graph.modules:
                    parts.pop()
                target = ".".join(parts) or imported
            else:
                target = imported.split(".")[0]
            if target == source:
                continue
            targets.add(target)
            graph.where.setdefault((source, target), line)
    return graph


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph is a few hundred nodes, but recursion depth is not ours to spend)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    return sorted(c for c in strongly_connected(edges) if len(c) > 1)


def describe_cycle(graph: Graph, members: list[str], edges: dict[str, set[str]], cite=None) -> str:
    """The component's members and the imports that tie them together, one per line."""
    inside = set(members)
    lines = [f"cycle among {', '.join(members)}:"]
    for source in members:
        for target in sorted(edges[source] & inside):
            lines.append(f"    {cite(source, target) if cite else f'{source} -> {target}'}")
    return "\n".join(lines)


def domain_package(module: str) -> str:
    """`pipeline.store.repo` -> `pipeline.store`; `pipeline.config` and `pipeline` stay themselves."""
    parts = module.split(".")
    return ".".join(parts[:2])


def package_edges(graph: Graph) -> tuple[dict[str, set[str]], dict[tuple[str, str], tuple[str, str]]]:
    """The domain's module graph collapsed to its packages, with one module-level import witnessing each edge."""
    collapsed: dict[str, set[str]] = {}
    witness: dict[tuple[str, str], tuple[str, str]] = {}
    for source, targets in graph.internal_edges().items():
        if not source.startswith("pipeline."):
            continue
        outer = domain_package(source)
        collapsed.setdefault(outer, set())
        for target in targets:
            if not target.startswith("pipeline.") or domain_package(target) == outer:
                continue
            collapsed[outer].add(domain_package(target))
            witness.setdefault((outer, domain_package(target)), (source, target))
    return collapsed, witness


def _top(module: str) -> str:
    return module.split(".")[0]


def forbidden_imports(graph: Graph) -> list[str]:
    problems = []
    for source in sorted(graph.modules):
        layer = _top(source)
        for target in sorted(graph.edges.get(source, ())):
            outer = _top(target)
            if layer == "pipeline" and outer == "migrations":
                bad, rule = True, "the domain's models are imported by the migrations, never the reverse"
            elif layer in ("pipeline", "migrations"):
                bad = outer in ("workers", "cli", "api") or outer in SHELL_LIBRARIES
                rule = "the domain knows no workers, shells, Celery, HTTP or terminal"
            elif layer == "workers":
                bad = outer in ("cli", "api")
                rule = "workers never import the shells"
            elif layer in ("cli", "api"):
                bad = outer == "workers" and target != "workers.client"
                rule = "shells reach the workers through workers.client only"
            else:
                bad = False
            if bad:
                problems.append(f"{graph.cite(source, target)}: {rule}")
    return problems


def check(root: Path, packages: Iterable[str] = PACKAGES) -> list[str]:
    """Every rule's failures as readable paragraphs; empty when the tree is in order."""
    graph = build_graph(root, tuple(packages))
    internal = graph.internal_edges()
    module_cycles = cycles(internal)
    problems = [describe_cycle(graph, c, internal, graph.cite) for c in module_cycles]
    collapsed, witness = package_edges(graph)
    # a module cycle among the domain's top-level modules is also a package cycle; say it once
    already_said = [{domain_package(m) for m in c} for c in module_cycles]

    def cite_package_edge(source: str, target: str) -> str:
        return f"{source} -> {target} via {graph.cite(*witness[(source, target)])}"

    problems += [
        "package " + describe_cycle(graph, c, collapsed, cite_package_edge)
        for c in cycles(collapsed)
        if set(c) not in already_said
    ]
    problems += forbidden_imports(graph)
    return problems


# ---------------------------------------------------------------------------------------------------------------


def test_the_import_graph_has_no_cycles_and_points_inward():
    problems = check(ROOT)
    assert not problems, "import graph rules broken (see this module's docstring):\n" + "\n".join(problems)


def test_the_graph_covers_every_package_and_sees_deferred_imports():
    graph = build_graph(ROOT, PACKAGES)
    for package in PACKAGES:
        assert package in graph.modules
    # the CLI talks to Celery only through the client, and it does so somewhere
    assert any("workers.client" in graph.edges[m] for m in graph.modules if m.startswith("cli"))
    assert sum(len(targets) for targets in graph.edges.values()) > 300


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_a_planted_cycle_through_a_function_level_import_is_reported(tmp_path):
    _write(
        tmp_path,
        {
            "pipeline/__init__.py": "",
            "pipeline/a.py": "from pipeline import b\n",
            "pipeline/b.py": "def late():\n    from . import c\n",
            "pipeline/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pipeline.a\n",
        },
    )
    problems = check(tmp_path, ["pipeline"])
    assert len(problems) == 1
    assert "cycle among pipeline.a, pipeline.b, pipeline.c" in problems[0]
    assert "pipeline/b.py:2 (pipeline.b -> pipeline.c)" in problems[0]


def test_a_package_init_reexporting_its_submodules_is_no_cycle_but_importing_it_back_is(tmp_path):
    files = {
        "pipeline/__init__.py": "",
        "pipeline/store/__init__.py": "from pipeline.store.repo import get\nfrom .db import session\n",
        "pipeline/store/db.py": "def session(): ...\n",
        "pipeline/store/repo.py": "from pipeline.store.db import session\ndef get(): ...\n",
    }
    _write(tmp_path, files)
    assert check(tmp_path, ["pipeline"]) == []
    _write(tmp_path, {"pipeline/store/repo.py": "from pipeline.store import session\ndef get(): ...\n"})
    problems = check(tmp_path, ["pipeline"])
    assert len(problems) == 1 and "cycle among pipeline.store, pipeline.store.repo" in problems[0]


def test_a_cycle_between_domain_packages_is_reported_even_without_a_module_cycle(tmp_path):
    _write(
        tmp_path,
        {
            "pipeline/__init__.py": "",
            "pipeline/train/__init__.py": "",
            "pipeline/train/job.py": "from pipeline.infer.labels import names\n",
            "pipeline/infer/__init__.py": "",
            "pipeline/infer/labels.py": "names = []\n",
            "pipeline/infer/run.py": "from pipeline.train.job import x\n",
        },
    )
    problems = check(tmp_path, ["pipeline"])
    assert len(problems) == 1
    assert problems[0].startswith("package cycle among pipeline.infer, pipeline.train")


def test_planted_forbidden_imports_are_reported(tmp_path):
    _write(
        tmp_path,
        {
            "pipeline/__init__.py": "",
            "pipeline/steps.py": "def run():\n    import celery\n    from workers.client import send\n",
            "pipeline/db.py": "from migrations.runner import upgrade\n",
            "migrations/__init__.py": "",
            "migrations/runner.py": "from pipeline import db\n",
            "workers/__init__.py": "",
            "workers/client.py": "from workers import routing\ndef send(): ...\n",
            "workers/routing.py": "QUEUE = 'q'\n",
            "workers/tasks.py": "from cli.main import app\n",
            "cli/__init__.py": "",
            "cli/main.py": "from workers.client import send\nfrom workers.routing import QUEUE\n",
        },
    )
    problems = check(tmp_path, ["pipeline", "workers", "cli", "migrations"])
    assert problems[0].startswith("cycle among migrations.runner, pipeline.db:")
    assert problems[1:] == [
        "cli/main.py:2 (cli.main -> workers.routing): shells reach the workers through workers.client only",
        "pipeline/db.py:1 (pipeline.db -> migrations.runner): "
        "the domain's models are imported by the migrations, never the reverse",
        "pipeline/steps.py:2 (pipeline.steps -> celery): the domain knows no workers, shells, Celery, HTTP or terminal",
        "pipeline/steps.py:3 (pipeline.steps -> workers.client): "
        "the domain knows no workers, shells, Celery, HTTP or terminal",
        "workers/tasks.py:1 (workers.tasks -> cli.main): workers never import the shells",
    ]


def test_relative_imports_resolve_against_the_importing_package(tmp_path):
    _write(
        tmp_path,
        {
            "pipeline/__init__.py": "",
            "pipeline/index/__init__.py": "from . import bulk\nfrom .search import hit\n",
            "pipeline/index/bulk.py": "from ..store import models\nfrom .search import *\n",
            "pipeline/index/search.py": "hit = 1\n",
            "pipeline/store/__init__.py": "",
            "pipeline/store/models.py": "",
        },
    )
    graph = build_graph(tmp_path, ["pipeline"])
    assert graph.edges["pipeline.index"] == {"pipeline.index.bulk", "pipeline.index.search"}
    assert graph.edges["pipeline.index.bulk"] == {"pipeline.store.models", "pipeline.index.search"}
