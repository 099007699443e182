"""Sign-MExD sampling latency: the expert-choice MoE model against the dense model with the same active parameters
per token, in one run.

Both pipelines are built from the named configs (`small-moe` and `small-dense` by default) with random weights
(latency does not depend on training): the same gloss tokenizer and gloss encoder, DDIM with `--steps` steps, one
gloss sequence of `--frames` frames (SynthSign's mean length by default). The two are timed alternately, `--repeats`
times each after a warm-up, so drifts of a shared machine hit both alike; the table gives the median of each, the
median of the per-pair ratios and the parameter counts. The paper reports +20 to 28% for its MoE models on A100s.

    python benchmarks/bench_moe_overhead.py [--moe small-moe] [--dense small-dense] [--frames 104] [--steps 50]
        [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from diffusers import DDIMScheduler

from hf_sign.data.normalization import PoseNormalizer
from hf_sign.pipelines.pipeline_sign_mexd import SignMExDPipeline
from hf_sign.training.sign_mexd_stages import build_gloss_components, build_transformer
from hf_sign.training.sign_mexd_trainer import full_config, sign_mexd_param_counts

GLOSSES = "YESTERDAY ME STORE GO WHY ME MILK NEED"
POSE_DIM = 133  # smplx133


def build_pipeline(config: str, seed: int = 0) -> SignMExDPipeline:
    """A randomly initialised pipeline of `config` (seeded), on a vocabulary of the benchmark's glosses."""
    torch.manual_seed(seed)
    cfg = full_config(config)
    tokenizer, encoder = build_gloss_components(cfg, [{"gloss": GLOSSES.split()}])
    frames = np.random.default_rng(seed).normal(0, 0.3, (64, POSE_DIM))
    normalizer = PoseNormalizer.fit([frames], representation="smplx133")
    scheduler = DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1,
        prediction_type="sample",
    )
    pipe = SignMExDPipeline(
        transformer=build_transformer(cfg, POSE_DIM).eval(), text_encoder=encoder.eval(), tokenizer=tokenizer,
        scheduler=scheduler, normalizer=normalizer,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moe", default="small-moe", help="config of the MoE model")
    parser.add_argument("--dense", default="small-dense", help="config of the dense model")
    parser.add_argument("--frames", type=int, default=104)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pipes = {"moe": build_pipeline(args.moe), "dense": build_pipeline(args.dense)}

    def sample(name: str) -> float:
        start = time.perf_counter()
        pipes[name](gloss=GLOSSES, num_frames=args.frames, num_inference_steps=args.steps,
                    generator=torch.Generator().manual_seed(0))
        return time.perf_counter() - start

    times = {"moe": [], "dense": []}
    sample("moe"), sample("dense")  # warm-up (allocator, kernels)
    for r in range(args.repeats):
        for name in ("moe", "dense") if r % 2 == 0 else ("dense", "moe"):  # alternate who goes first
            times[name].append(sample(name))
    median = {k: statistics.median(v) for k, v in times.items()}
    ratios = [m / d for m, d in zip(times["moe"], times["dense"])]
    counts = {k: sign_mexd_param_counts(c) for k, c in (("moe", args.moe), ("dense", args.dense))}

    print(f"Sign-MExD sampling latency, {args.frames} frames, DDIM {args.steps} steps, one sequence, "
          f"{args.threads} thread(s), {args.repeats} alternating repeats (median)")
    print()
    print("| model | config | transformer params | active per token | median time (s) | times (s) | ratio |")
    print("|---|---|---:|---:|---:|---|---:|")
    for name, config in (("dense", args.dense), ("moe", args.moe)):
        c = counts[name]
        ratio = 1.0 if name == "dense" else median["moe"] / median["dense"]
        spread = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"| {name} | {config} | {c['transformer_total']:,} | {c['transformer_active_per_token']:,} "
              f"| {median[name]:.3f} | {spread} | {ratio:.3f} |")
    print()
    print(f"MoE / dense: {median['moe'] / median['dense']:.3f} (ratio of medians), "
          f"{statistics.median(ratios):.3f} (median of per-pair ratios), overhead "
          f"{100 * (median['moe'] / median['dense'] - 1):+.1f}%")


if __name__ == "__main__":
    main()
