"""The architecture's walls, checked (STYLE.md; DESIGN.md section 1b):

- the engine imports no web stack, and nothing from the gateway;
- the gateway (`assistant/`) reaches the edge worker only through its door: the shared values
  (`edge_worker.spec`), the wire (`edge_worker.service.protocol`) and the errors anywhere; the
  engine, the models and the worker's internals only from `assistant/cluster/`; two named
  exceptions (the mDNS records both sides read, the credential files pairing writes);
- the product packages import nothing from the benchmark package;
- no import circles, and no module over 400 lines.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = ("fastapi", "websockets", "zeroconf", "pydantic", "uvicorn", "starlette")
PRODUCT = ("assistant", "edge_worker")
PACKAGES = {"assistant": ROOT, "edge_worker": ROOT, "galaxy_bench": ROOT / "bench"}
MAX_LINES = 400

# What any gateway module may import from the edge worker.
DOOR = ("edge_worker.errors", "edge_worker.spec", "edge_worker.service.protocol")
# Edge-worker modules that only these gateway packages may import.
NAMED = {
    "edge_worker.service.dnssd": ("assistant.discovery",),  # the mDNS records both sides read
    "edge_worker.service.credentials": ("assistant.trust",),  # the files pairing writes
    "edge_worker.service.run": ("assistant.cli",),  # `galaxy worker` starts the worker role
    "edge_worker.service.worker": ("assistant.cli",),
}
COMPUTE_SIDE = "assistant.cluster"  # the engine, models, wire tensors: only from here


def module_name(path: pathlib.Path) -> str:
    for package, base in PACKAGES.items():
        if path.is_relative_to(base / package):
            parts = path.relative_to(base).with_suffix("").parts
            return ".".join(p for p in parts if p != "__init__")
    raise ValueError(path)


def sources(*packages: str) -> list[pathlib.Path]:
    return sorted(p for pkg in packages for p in (PACKAGES[pkg] / pkg).rglob("*.py"))


def is_module(name: str) -> bool:
    top = name.split(".")[0]
    if top not in PACKAGES:
        return False
    base = PACKAGES[top].joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def imports(path: pathlib.Path, *, top_level_only: bool = False) -> set[str]:
    """Modules `path` imports, absolute names (`from a.b import c`: a.b.c if that is a module
    of ours, else a.b).
    `top_level_only`: only what runs at import time (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    nodes: list[ast.AST] = []
    if top_level_only:
        stack: list[ast.AST] = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            nodes.append(node)
            stack.extend(ast.iter_child_nodes(node))
    else:
        nodes = list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                names.add(sub if is_module(sub) else node.module)
    return names


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_engine_sources_do_not_import_the_web_stack() -> None:
    offenders = {
        module_name(p): sorted({n.split(".")[0] for n in imports(p)} & set(FORBIDDEN))
        for p in (ROOT / "edge_worker" / "engine").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_shared_values_import_neither_torch_nor_the_web_stack() -> None:
    offenders = {
        module_name(p): sorted({n.split(".")[0] for n in imports(p)} & {"torch", *FORBIDDEN})
        for p in (ROOT / "edge_worker" / "spec").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_the_engine_loads_none_of_the_web_stack() -> None:
    code = (
        "import sys, pkgutil, importlib, edge_worker.engine as e\n"
        "for m in pkgutil.iter_modules(e.__path__):\n"
        "    importlib.import_module('edge_worker.engine.' + m.name)\n"
        f"print(sorted(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_edge_worker_does_not_import_the_gateway() -> None:
    offenders = [
        module_name(p)
        for p in sources("edge_worker")
        if any(under(n, "assistant") for n in imports(p))
    ]
    assert offenders == []


def allowed_from_gateway(importer: str, imported: str) -> bool:
    if any(under(imported, door) for door in DOOR):
        return True
    for module, importers in NAMED.items():
        if under(imported, module):
            return any(under(importer, i) for i in importers) or under(importer, COMPUTE_SIDE)
    return under(importer, COMPUTE_SIDE)


def test_the_gateway_reaches_the_edge_worker_only_through_its_door() -> None:
    offenders = sorted(
        f"{module_name(p)} imports {name}"
        for p in sources("assistant")
        for name in imports(p)
        if under(name, "edge_worker") and name != "edge_worker"
        if not allowed_from_gateway(module_name(p), name)
    )
    assert offenders == []


def test_the_product_imports_nothing_from_the_benchmark() -> None:
    offenders = [
        module_name(p)
        for p in sources(*PRODUCT)
        if any(under(n, "galaxy_bench") for n in imports(p))
    ]
    assert offenders == []


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports at import time."""
    paths = {module_name(p): p for p in sources(*PACKAGES)}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        graph[name] = {n for n in imports(path, top_level_only=True) if n in paths and n != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_a_cycle_is_found_when_there_is_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_through_others() -> None:
    # A package's __init__ importing its own modules counts too: `a` -> `a.b` -> `a` is a circle.
    assert cycles(import_graph()) == []


def test_no_module_is_over_400_lines() -> None:
    long = {
        module_name(p): n
        for p in sources(*PACKAGES)
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
