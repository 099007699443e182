"""Data-parallel training on CPU: one process against two (DDP over gloo), with the same global batch.

Builds a SynthSign corpus, trains each system's `tiny` config through `hf-sign train` once in one process and once in
two (`accelerate launch --multi_gpu --num_processes 2`, per-device batch halved, one torch thread per process), and
prints per stage the mean logged loss of the first and last quarter of the steps and of the whole curve (one process /
two) with the relative gap of the whole-curve means, and the wall time of each run (interpreter start and data loading
included).

    python benchmarks/bench_multiprocess.py [--num-train 64] [--systems sign-sald sign-mexd] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hf_sign.data.synthsign import build_synthsign

# system: (stages, {training section: its tiny per-device batch})
SYSTEMS = {
    "sign-sald": (("vae", "ldm"), {"vae_training": 8, "ldm_training": 8}),
    "sign-mexd": (("diffusion",), {"training": 8}),
    "madis": (("tokenizer", "pretrain", "sft"), {"tokenizer_training": 4, "pretraining": 4, "sft": 4}),
}


def train(system: str, corpus: Path, out: Path, num_processes: int) -> float:
    """Train `system` into `out` on `num_processes` CPU processes; returns the wall time in seconds."""
    args = [
        "train",
        system,
        "--dataset",
        str(corpus),
        "--output-dir",
        str(out),
        "--config",
        "tiny",
        "--overwrite-output-dir",
    ]
    for section, batch_size in SYSTEMS[system][1].items():
        args += ["--set", f"{section}.per_device_train_batch_size={batch_size // num_processes}"]
    cmd = [sys.executable, "-m", "hf_sign.cli", *args]
    if num_processes > 1:
        launch = ["--multi_gpu", "--num_processes", str(num_processes), "--num_machines", "1", "--mixed_precision"]
        cmd = [sys.executable, "-m", "accelerate.commands.launch", *launch, "no", "--dynamo_backend", "no", "-m"]
        cmd += ["hf_sign.cli", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def curve(out: Path, stage: str):
    state = sorted((out / "checkpoints" / stage).glob("checkpoint-*/trainer_state.json"))[-1]
    return [h["loss"] for h in json.loads(state.read_text())["log_history"] if "loss" in h]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-train", type=int, default=64)
    parser.add_argument("--systems", nargs="+", default=["sign-sald", "sign-mexd"], choices=sorted(SYSTEMS))
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-multiprocess-"))
    corpus = work / "synthsign"
    if not corpus.is_dir():
        build_synthsign(corpus, seed=0, num_train=args.num_train, num_validation=8, num_test=8, show_progress=False)
    rows = [
        "| system | stage | steps (1 / 2) | first quarter's mean loss | last quarter's | whole curve's | gap |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    times = []
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    for system in args.systems:
        seconds = {n: train(system, corpus, work / f"{system}-{n}", n) for n in (1, 2)}
        times.append(f"| {system} | {seconds[1]:.1f} | {seconds[2]:.1f} |")
        for stage in SYSTEMS[system][0]:
            a, b = curve(work / f"{system}-1", stage), curve(work / f"{system}-2", stage)
            q = max(1, len(a) // 4)
            pairs = [(mean(a[:q]), mean(b[:q])), (mean(a[-q:]), mean(b[-q:])), (mean(a), mean(b))]
            cells = " | ".join(f"{x:.3f} / {y:.3f}" for x, y in pairs)
            gap = abs(mean(a) - mean(b)) / mean(a)
            rows.append(f"| {system} | {stage} | {len(a)} / {len(b)} | {cells} | {100 * gap:.1f}% |")
    print("\n".join(rows))
    print("\n| system | wall s, 1 process | wall s, 2 processes |\n|---|---:|---:|")
    print("\n".join(times))


if __name__ == "__main__":
    main()
