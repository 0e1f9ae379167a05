"""`galaxy bench --quick` as a smoke test: it completes and writes the documented JSON.
(Timings are a benchmark's business, not a test's: nothing here compares speeds.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RUN_KEYS = {
    "model",
    "seq_len",
    "phase",
    "devices",
    "strategy",
    "overlap",
    "latency_ms_median",
    "latency_ms_all",
    "comm_ms",
    "hidden_comm_ms",
    "peak_mem_mb",
}


@pytest.mark.slow
@pytest.mark.long
def test_quick_bench_completes_with_valid_json(tmp_path: Path) -> None:
    out_file = tmp_path / "quick.json"

    done = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "bench", "--quick", "--out", str(out_file)],
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out_file.read_text())
    assert {"machine", "emulation", "runs", "transport"} <= result.keys()
    assert result["runs"], "no strategy ran"
    for run in result["runs"]:
        assert run.keys() >= RUN_KEYS
        assert len(run["latency_ms_all"]) >= 1
        assert {"name", "speed", "bandwidth_mbps"} <= run["devices"][0].keys()
    labels = {r["label"] for r in result["runs"]}
    assert {"local", "tp", "hmp", "hmp+overlap", "planned, learned"} <= labels
    (learned,) = (r for r in result["runs"] if r["label"] == "planned, learned")
    assert set(learned["learned_slowdown"]) == set(learned["ranks"])
    assert set(learned["learned_overlap"]) == set(learned["ranks"])
    (taught,) = (r for r in result["runs"] if r["label"] == "hmp+overlap, learned")
    assert taught["learned_from"] == "hmp+overlap" and taught["plan"]["overlap"]
    assert set(taught["learned_overlap"]) == set(taught["ranks"])
    assert {r["transport"] for r in result["transport"]} == {"ring", "gloo"}
