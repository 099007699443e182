"""Data loading at scale: SynthSign at growing sizes, the memory one training epoch's data loading needs.

For every size (training sentences; validation and test get a tenth each) the script
1. builds SynthSign into `OUTPUT_DIR/synthsign-<size>` (`build_synthsign`, which writes its Parquet files a row group
   at a time) in a subprocess, timing it and recording that process's peak RSS;
2. in a fresh subprocess (so every peak is that size's own), with an empty `datasets` cache, runs the training data
   path of Sign-SALD's `vae` stage up to the first training step: `load_pose_splits` (the Parquet shards converted
   into memory-mapped Arrow files), the config checks, the normaliser fit over the train split, the stage's Trainer
   and its length-grouped DataLoader, the first batch and one forward/backward pass of the VAE: "time to the first
   training step". It then iterates the rest of that DataLoader's epoch without model steps.

Memory is sampled every 20 ms from `/proc/self/status`: `RssAnon` is the memory the process owns (Python objects,
arrays, batches); `RssFile` counts the pages of memory-mapped files currently resident, which the kernel can drop
at any time (reading the whole corpus once maps all of it in while memory is free). `ru_maxrss` is the kernel's peak
RSS (both kinds). `--in-memory` runs the same steps with every split read into Python lists of numpy arrays instead
(how the training data was held before the memory-mapped path), for comparison.

    python benchmarks/bench_data_scale.py [--sizes 2000,8000,32000] [--output-dir outputs/data_scale]
        [--config small] [--num-threads 1] [--in-memory]

Prints a Markdown table, and the ratio of the largest size's peak memory to the smallest's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


# ------------------------------------------------------------------------------------------------ memory sampling
class PeakMemory:
    """Samples `/proc/self/status` in a thread; `peaks` holds the largest `VmRSS`, `RssAnon` and `RssFile` (MiB)."""

    FIELDS = ("VmRSS", "RssAnon", "RssFile")

    def __init__(self, interval: float = 0.02):
        self.interval, self.peaks = interval, dict.fromkeys(self.FIELDS, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in self.peaks:
                    self.peaks[key] = max(self.peaks[key], int(value.split()[0]) / 1024)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> "PeakMemory":
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ------------------------------------------------------------------------------------------------ child: build
def child_build(out: str, size: int) -> dict:
    from hf_sign.data.synthsign import build_synthsign

    start = time.perf_counter()
    with PeakMemory() as mem:
        build_synthsign(out, seed=0, num_train=size, num_validation=size // 10, num_test=size // 10)
    return {
        "build_s": round(time.perf_counter() - start, 1),
        "build_peak_rss_mib": round(_maxrss_mib(), 1),
        "build_peak_anon_mib": round(mem.peaks["RssAnon"], 1),
    }


# ------------------------------------------------------------------------------------------------ child: load
def _in_memory_splits(dataset_dir: str, max_frames: int) -> dict:
    """Every split as Python lists of numpy arrays (the training data layout before the memory-mapped path)."""
    from hf_sign.data.io import load_corpus, split_rows

    dd = load_corpus(dataset_dir)
    out = {"skipped": 0}
    for split in ("train", "validation"):
        rows = [dict(r, num_frames=len(r["poses"])) for r in split_rows(dd[split], split)]
        out[split] = [r for r in rows if r["num_frames"] <= max_frames]
        if split == "train":
            out["skipped"] = len(rows) - len(out[split])
    out["representation"], out["fps"] = str(dd["train"][0]["representation"]), float(dd["train"][0]["fps"])
    return out


def child_load(dataset_dir: str, config: str, num_threads: int, in_memory: bool) -> dict:
    import torch
    from transformers import set_seed

    from hf_sign.training.sign_sald_stages import build_vae_trainer
    from hf_sign.training.sign_sald_trainer import _prepare, full_config
    from hf_sign.training.stages import StageContext
    from hf_sign.training.trainer_utils import load_pose_splits

    torch.set_num_threads(num_threads)
    cfg = full_config(config, {"num_threads": num_threads})
    with PeakMemory() as mem, tempfile.TemporaryDirectory() as tmp:
        # 1. the training data path of the `vae` stage, up to the first training step
        start = time.perf_counter()
        load = _in_memory_splits if in_memory else load_pose_splits
        data = load(dataset_dir, cfg["data"]["max_frames"])
        ctx = StageContext(config=cfg, data=data, output_dir=Path(tmp), use_cpu=True)
        _prepare(ctx, ["vae"])
        set_seed(cfg["seed"])
        trainer = build_vae_trainer(ctx)
        loader = trainer.get_train_dataloader()
        batches = iter(loader)
        batch = next(batches)
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        first_step = time.perf_counter() - start
        # 2. the rest of the epoch's batches, no model step
        start = time.perf_counter()
        count, frames = 1, int(batch["lengths"].sum())
        for batch in batches:
            count, frames = count + 1, frames + int(batch["lengths"].sum())
        epoch = time.perf_counter() - start
    return {
        "num_train": len(data["train"]),
        "first_step_s": round(first_step, 1),
        "epoch_load_s": round(epoch, 1),
        "batches": count,
        "frames": frames,
        "peak_rss_mib": round(_maxrss_mib(), 1),
        "peak_anon_mib": round(mem.peaks["RssAnon"], 1),
        "peak_file_mib": round(mem.peaks["RssFile"], 1),
    }


# ------------------------------------------------------------------------------------------------ driver
def _run_child(args: list, env: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,8000,32000", help="training sentences per corpus, comma-separated")
    parser.add_argument("--output-dir", default="outputs/data_scale", help="where the corpora are built")
    parser.add_argument("--config", default="small", help="Sign-SALD config (batch size, crop length, max_frames)")
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument("--in-memory", action="store_true", help="hold the splits as lists of numpy arrays")
    parser.add_argument("--rebuild", action="store_true", help="rebuild corpora that already exist")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "build":
            result = child_build(rest[0], int(rest[1]))
        else:
            result = child_load(rest[0], args.config, args.num_threads, args.in_memory)
        print(json.dumps(result))
        return 0

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for size in sizes:
        corpus = out / f"synthsign-{size}"
        env = dict(
            os.environ, TQDM_DISABLE="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1", OMP_NUM_THREADS=str(args.num_threads)
        )
        result = {"size": size}
        if args.rebuild or not (corpus / "README.md").is_file():
            result.update(_run_child(["--child", "build", str(corpus), str(size)], env))
        cache = out / f"datasets-cache-{size}"
        shutil.rmtree(cache, ignore_errors=True)  # an empty cache: the Arrow conversion counts in the first step
        env["HF_DATASETS_CACHE"] = str(cache)
        flags = ["--config", args.config, "--num-threads", str(args.num_threads)] + (["--in-memory"] * args.in_memory)
        result.update(_run_child(["--child", "load", str(corpus), *flags], env))
        shutil.rmtree(cache, ignore_errors=True)
        rows.append(result)
        print(json.dumps(result), flush=True)

    print(
        "\n| train sentences | build (s) | build peak RSS (MiB) | time to first step (s) | epoch data loading (s) | "
        "batches | peak RssAnon (MiB) | peak RssFile (MiB) | peak RSS (MiB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['size']} | {r.get('build_s', '-')} | {r.get('build_peak_rss_mib', '-')} | {r['first_step_s']} | "
            f"{r['epoch_load_s']} | {r['batches']} | {r['peak_anon_mib']} | {r['peak_file_mib']} | "
            f"{r['peak_rss_mib']} |"
        )
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        print(
            f"\n{b['size']} vs {a['size']} sentences ({b['size'] / a['size']:.0f}x the corpus): peak RssAnon "
            f"{b['peak_anon_mib'] / a['peak_anon_mib']:.2f}x, peak RSS {b['peak_rss_mib'] / a['peak_rss_mib']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
