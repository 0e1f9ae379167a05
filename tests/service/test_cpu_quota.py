"""A worker tells the gateway how much CPU its process may use (edge_worker/profile/cpu.py),
read from its cgroups as the kernel lays them out; here the files sit in a temporary tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_worker.profile import cpu
from edge_worker.profile.cpu import cgroup_quota, process_cores


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_cgroup_v2_quota_and_the_tightest_ancestor_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    write(proc / "cgroup", "0::/home.slice/worker\n")
    write(proc / "mountinfo", "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    write(root / "cpu.max", "max 100000\n")
    write(root / "home.slice" / "cpu.max", "150000 100000\n")
    write(root / "home.slice" / "worker" / "cpu.max", "max 100000\n")
    monkeypatch.setattr(cpu, "CGROUP_ROOT", root)

    assert cgroup_quota(proc) == pytest.approx(1.5)

    write(root / "home.slice" / "worker" / "cpu.max", "50000 100000\n")
    assert cgroup_quota(proc) == pytest.approx(0.5)


def test_a_cgroup_v1_cpu_quota_under_its_mount(tmp_path: Path) -> None:
    proc, mount = tmp_path / "proc", tmp_path / "cpu"
    write(proc / "cgroup", "4:memory:/x\n2:cpu,cpuacct:/gx7-d2\n0::/\n")
    write(
        proc / "mountinfo",
        f"40 30 0:35 / {mount} rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n",
    )
    write(mount / "cpu.cfs_quota_us", "-1\n")
    write(mount / "cpu.cfs_period_us", "100000\n")
    write(mount / "gx7-d2" / "cpu.cfs_quota_us", "1500\n")
    write(mount / "gx7-d2" / "cpu.cfs_period_us", "10000\n")

    assert cgroup_quota(proc) == pytest.approx(0.15)


def test_no_quota_leaves_the_cpus_the_process_may_run_on(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    write(proc / "cgroup", "1:cpu:/\n")
    write(proc / "mountinfo", "")
    assert cgroup_quota(proc) is None
    assert cgroup_quota(tmp_path / "nowhere") is None
    assert 0 < process_cores() <= len(os.sched_getaffinity(0))
