"""Re-predicting a recorded run (galaxy_bench.repredict) with today's cost model: the run with
`--throttle process` (bench/throttle-process.json) is where the ring shares each device's CPU
quota, and where overlap was predicted 21% too fast before the cost model charged that CPU."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from galaxy_bench.repredict import main

RUN = Path(__file__).parents[2] / "bench" / "throttle-process.json"


def test_a_recorded_run_is_predicted_again_and_planned_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([str(RUN)]) == 0
    out = capsys.readouterr().out

    rows = {
        m[1]: (float(m[2]), float(m[3]), float(m[4]))
        for m in re.finditer(r"^  (\S.*?)\s+(\d+)\s+(\d+)\s+(\d+) \(", out, re.M)
    }
    assert {"local", "hmp", "hmp+overlap", "hmp+overlap plain"} <= set(rows)
    for label in ("hmp+overlap", "hmp+overlap plain", "hmp", "local"):
        measured, _, today = rows[label]
        assert today == pytest.approx(measured, rel=0.1), label  # within 10% of what ran
    measured, then, today = rows["hmp+overlap"]
    assert then < 0.85 * measured  # the run's own prediction, without the ring's CPU
    assert "today's planner:" in out and "cpu quotas: process" in out
