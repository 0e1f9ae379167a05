"""The benchmark is a plugin of the product: `galaxy bench` comes from the `galaxy.commands`
entry point, and the product's packages never import the benchmark."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def galaxy_help(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_bench_distribution_declares_the_bench_command() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="galaxy.commands")}

    assert found.get("bench") == "galaxy_bench.cli:bench"


def test_galaxy_lists_the_bench_command_from_its_plugin() -> None:
    done = galaxy_help()

    assert done.returncode == 0, done.stderr
    assert " bench " in done.stdout and " verify " in done.stdout


def test_a_plugin_that_fails_to_load_is_skipped_and_galaxy_still_runs(tmp_path: Path) -> None:
    info = tmp_path / "broken_plugin-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[galaxy.commands]\nbroken = no_such_module_x:cmd\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    done = galaxy_help(env)

    assert done.returncode == 0, done.stderr
    assert "'broken'" in done.stderr and "failed to load" in done.stderr
    assert " bench " in done.stdout and " broken " not in done.stdout


def test_the_product_packages_import_nothing_from_the_bench() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in imports_of(p) if m.startswith("galaxy_bench"))
        for package in ("assistant", "edge_worker")
        for p in (ROOT / package).rglob("*.py")
    }

    assert {k: v for k, v in offenders.items() if v} == {}
