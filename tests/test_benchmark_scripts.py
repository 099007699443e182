"""Speed benchmarks run end to end at tiny sizes: they import the library's public pieces, so a change there that
breaks a script shows here rather than when someone next measures with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_madis_throughput_runs_past_the_configs_canvas():
    # `tiny` has a 48-token sign canvas: the script must size its random LM for the tokens it times
    out = _run("bench_madis_throughput.py", "--config", "tiny", "--tokens", "60", "--steps", "10", "--repeats", "1")
    assert "MaDiS / AR throughput:" in out and "| 10 |" in out


def test_dtw_jpe_end_to_end_prints_both_ratios():
    out = _run("bench_dtw.py", "--jpe-only", "--pairs", "20", "--frames", "30", "--repeats", "1")
    assert "end to end / DP" in out and out.count("x\n") >= 2
