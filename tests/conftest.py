"""Test-wide settings: offline model hub, deterministic torch, and the disk kept in bounds."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil
from collections.abc import Iterator

import pytest
import torch

torch.set_num_threads(1)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """When a module's tests are done (its fixtures, and their workers, stopped), delete every
    worker's shard cache under the run's temporary folder. Each worker keeps up to 4 GB of shards,
    and a run starts dozens of them: kept, they filled CI's disk (17 GB in one run here) and
    the workers failed to save ("No space left on device"). Logs and other files stay for
    reading; passing tests' own folders go anyway (`tmp_path_retention_policy`)."""
    try:
        yield
    finally:
        if nextitem is None or getattr(nextitem, "module", None) is not getattr(item, "module", 0):
            root = item.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
            for shards in root.glob("**/shards"):
                shutil.rmtree(shards, ignore_errors=True)
