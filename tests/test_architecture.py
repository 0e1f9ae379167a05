"""Import rules that keep the engine free of the web stack (STYLE.md)."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = ("fastapi", "websockets", "zeroconf", "pydantic", "uvicorn", "starlette")


def imported_modules(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_sources_do_not_import_the_web_stack() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_modules(p) & set(FORBIDDEN))
        for p in (ROOT / "edge_worker" / "engine").rglob("*.py")
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


def test_engine_does_not_import_the_gateway() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "edge_worker").rglob("*.py")
        if "assistant" in imported_modules(p)
    ]
    assert offenders == []
