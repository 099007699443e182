"""MaDiS sampling throughput: the masked diffusion LM (25 unmasking steps for 100 tokens) against the autoregressive
baseline on the same backbone with a KV cache, in one run; then the steps trade-off (the paper's Fig. 6).

Both pipelines are built from one config's LM shape (`small` by default) with random weights: throughput does not
depend on training once the length is fixed, so every call generates exactly `--tokens` part-wise tokens
(`num_frames = 4 x tokens`, `<eos>` not sampled) with `output_type="tokens"` (the VQ decoder is the same for both and
left out). MaDiS runs twice on the same LM: with the paper's exact sampler and with the approximate KV cache (the
scheduler's `kv_cache`: `--kv-cache delayed` or `stage`, a full pass every `--kv-cache-refresh` steps, 0: no more).
The three decoders are timed in turn, `--repeats` rounds after a warm-up, and ratios are medians of per-round ratios,
so drifts of a shared machine hit all alike. Tokens per second count sign positions (three part tokens each). The
paper reports 1.4x (MDLM vs SOKE's AR decoding, on GPUs).

With `--pipeline DIR --dataset DIR` (a trained MaDiS folder and its corpus) the trade-off table also scores SiBLEU-4
of each step count on the first `--samples` validation sentences (tokens against the VQ-VAE's tokens of the
reference poses; the sentence's own length, `<eos>` sampled), with and without the KV cache, at the same tokens per
step on that LM's canvas (`max_sign_tokens`, 48 at `small`: 48/24/12/5 steps for the 100/50/25/10 rows).

    python benchmarks/bench_madis_throughput.py [--config small] [--tokens 100] [--steps 25] [--repeats 5]
        [--threads 1] [--kv-cache delayed|stage] [--kv-cache-refresh 0] [--pipeline DIR --dataset DIR --samples 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from hf_sign.data.io import load_corpus
from hf_sign.data.normalization import PoseNormalizer
from hf_sign.evaluation.text_metrics import sibleu
from hf_sign.models.madis import MaDiSConfig, MaDiSForMaskedDiffusion, PartVQVAE
from hf_sign.pipelines.pipeline_madis import MaDiSPipeline
from hf_sign.schedulers import MaskedDiffusionScheduler
from hf_sign.training.madis_stages import TextTokenizerArguments, build_text_tokenizer
from hf_sign.training.madis_trainer import full_config

PROMPT = "the weather tomorrow will be rainy"
TEXTS = [PROMPT, "my sister went to the store yesterday", "do you like coffee in the morning"]


def build_pipeline(config: str, bidirectional: bool, tokens: int, seed: int = 0) -> MaDiSPipeline:
    """A randomly initialised pipeline of `config`'s shapes (seeded); greedy unmasking."""
    torch.manual_seed(seed)
    cfg = full_config(config)
    tokenizer = build_text_tokenizer(TEXTS * 4, TextTokenizerArguments(vocab_size=cfg["text_tokenizer"]["vocab_size"]))
    vqvae = PartVQVAE(**cfg["part_vqvae"]).eval()
    # room for the timed canvas: the position table and the sign canvas are shapes, not something trained here (the
    # pipeline refuses `num_frames` beyond `max_sign_tokens`)
    positions = max(cfg["lm"]["max_position_embeddings"], cfg["lm"]["max_text_tokens"] + tokens)
    canvas = max(cfg["lm"]["max_sign_tokens"], tokens)
    lm_args = {
        **cfg["lm"], "bidirectional": bidirectional, "max_position_embeddings": positions, "max_sign_tokens": canvas
    }
    lm_config = MaDiSConfig(
        text_vocab_size=len(tokenizer),
        part_codebook_sizes=list(vqvae.config.codebook_sizes),
        code_dim=vqvae.config.code_dim,
        **lm_args,
    )
    lm = MaDiSForMaskedDiffusion(lm_config).eval()
    lm.set_codebooks([vqvae.codebook(p) for p in range(3)])
    normalizer = PoseNormalizer.fit([np.random.default_rng(seed).normal(0, 0.3, (64, 133))], representation="smplx133")
    scheduler = MaskedDiffusionScheduler(
        mask_token_id=lm_config.mask_token_id, eos_token_id=lm_config.eos_token_id, temperature=0.0
    )
    pipe = MaDiSPipeline(lm, vqvae, tokenizer, scheduler, normalizer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def with_kv_cache(pipe: MaDiSPipeline, mode: str, refresh: int) -> MaDiSPipeline:
    """The same components, sampled with the approximate KV cache."""
    cached = MaDiSPipeline(**pipe.components)  # the components carry the settings (fps, skeleton)
    cached.scheduler = MaskedDiffusionScheduler.from_config(
        pipe.scheduler.config, kv_cache=mode, kv_cache_refresh=refresh
    )
    cached.set_progress_bar_config(disable=True)
    return cached


def seconds(pipe: MaDiSPipeline, tokens: int, steps: int) -> float:
    t0 = time.perf_counter()
    out = pipe(PROMPT, num_frames=4 * tokens, num_inference_steps=steps, output_type="tokens")
    elapsed = time.perf_counter() - t0
    assert out.poses[0].shape[0] == tokens
    return elapsed


def validation_sibleu(pipe: MaDiSPipeline, dataset: str, samples: int, steps: int) -> float:
    rows = load_corpus(dataset)["validation"].select(range(samples))
    refs = pipe.tokenize_poses([np.asarray(r["poses"], dtype=np.float32) for r in rows])
    out = pipe([r["text"] for r in rows], num_inference_steps=steps, output_type="tokens")
    return sibleu(out.sign_tokens, refs)["sibleu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="small", help="MaDiS config whose LM shape is timed")
    parser.add_argument("--tokens", type=int, default=100, help="sign positions generated per call (paper: 100)")
    parser.add_argument("--steps", type=int, default=25, help="MaDiS unmasking steps (paper: 25)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kv-cache", default="delayed", choices=("delayed", "stage"), help="the cached sampler")
    parser.add_argument("--kv-cache-refresh", type=int, default=0, help="full pass every N steps with the cache")
    parser.add_argument("--pipeline", default=None, help="a trained MaDiS folder for the SiBLEU column")
    parser.add_argument("--dataset", default=None, help="its corpus folder (validation split)")
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    mdlm, ar = build_pipeline(args.config, True, args.tokens), build_pipeline(args.config, False, args.tokens)
    cached = with_kv_cache(mdlm, args.kv_cache, args.kv_cache_refresh)
    pipes = {"mdlm": mdlm, "cached": cached, "ar": ar}
    for pipe in pipes.values():
        seconds(pipe, args.tokens, args.steps)  # warm-up
    times = {name: [] for name in pipes}
    for _ in range(args.repeats):
        for name, pipe in pipes.items():
            times[name].append(seconds(pipe, args.tokens, args.steps))

    def ratio(fast: str, slow: str) -> float:  # median of per-round ratios: both timed in the same round
        return statistics.median(s / f for f, s in zip(times[fast], times[slow]))

    params = sum(p.numel() for p in mdlm.lm.parameters())
    print(
        f"# MaDiS throughput, config `{args.config}` LM ({params / 1e6:.2f} M parameters), {args.tokens} tokens, "
        f"{args.threads} thread(s), median of {args.repeats}"
    )
    print()
    print("| decoder | forward passes | seconds per sequence | tokens / s |")
    print("|---|---|---|---|")
    refresh = f", full pass every {args.kv_cache_refresh}" if args.kv_cache_refresh else ""
    rows = (
        ("mdlm", f"MaDiS, {args.steps} steps", args.steps),
        ("cached", f"MaDiS, {args.steps} steps, KV cache ({args.kv_cache}{refresh})", args.steps),
        ("ar", "AR + KV cache", args.tokens),
    )
    for name, label, passes in rows:
        med = statistics.median(times[name])
        print(f"| {label} | {passes} | {med:.3f} | {args.tokens / med:.1f} |")
    print()
    print(f"MaDiS / AR throughput: {ratio('mdlm', 'ar'):.2f}x (median of per-round ratios; paper 1.4x)")
    print(f"MaDiS with KV cache / AR throughput: {ratio('cached', 'ar'):.2f}x")
    print(f"MaDiS with KV cache / exact MaDiS: {ratio('cached', 'mdlm'):.2f}x")

    trained = None
    if args.pipeline:
        trained = MaDiSPipeline.from_pretrained(args.pipeline)
        trained.set_progress_bar_config(disable=True)
        trained_cached = with_kv_cache(trained, args.kv_cache, args.kv_cache_refresh)
    print()
    header = "| steps | seconds per sequence | tokens / s | seconds, KV cache | tokens / s, KV cache | speed-up |"
    if trained:
        header += " SiBLEU-4 (validation) | SiBLEU-4, KV cache |"
    print(header)
    print("|---|---|---|---|---|---|" + ("---|---|" if trained else ""))
    for steps in (100, 50, 25, 10):
        if steps > args.tokens:
            continue
        rounds = [
            (seconds(mdlm, args.tokens, steps), seconds(cached, args.tokens, steps))
            for _ in range(max(1, args.repeats // 2))
        ]
        exact, fast = (statistics.median(r[i] for r in rounds) for i in (0, 1))
        speedup = statistics.median(e / f for e, f in rounds)
        row = (
            f"| {steps} | {exact:.3f} | {args.tokens / exact:.1f} | {fast:.3f} | {args.tokens / fast:.1f} | "
            f"{speedup:.2f}x |"
        )
        if trained:  # the same tokens per step on the trained LM's canvas
            canvas = trained.lm.config.max_sign_tokens
            n = max(1, round(steps * canvas / args.tokens))
            scores = [validation_sibleu(p, args.dataset, args.samples, n) for p in (trained, trained_cached)]
            row += " " + " | ".join(f"{v:.2f} ({n} steps / {canvas})" for v in scores) + " |"
        print(row)


if __name__ == "__main__":
    main()
