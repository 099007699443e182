"""MaDiS sampling throughput: the masked diffusion LM (25 unmasking steps for 100 tokens) against the autoregressive
baseline on the same backbone with a KV cache, in one run; then the steps trade-off (the paper's Fig. 6).

Both pipelines are built from one config's LM shape (`small` by default) with random weights: throughput does not
depend on training once the length is fixed, so every call generates exactly `--tokens` part-wise tokens
(`num_frames = 4 x tokens`, `<eos>` not sampled) with `output_type="tokens"` (the VQ decoder is the same for both and
left out). The two are timed alternately, `--repeats` times each after a warm-up, so drifts of a shared machine hit
both alike. Tokens per second count sign positions (three part tokens each). The paper reports 1.4x (MDLM vs
SOKE's AR decoding, on GPUs).

With `--pipeline DIR --dataset DIR` (a trained MaDiS folder and its corpus) the trade-off table also scores SiBLEU-4
of each step count on the first `--samples` validation sentences (tokens against the VQ-VAE's tokens of the
reference poses; the sentence's own length, `<eos>` sampled).

    python benchmarks/bench_madis_throughput.py [--config small] [--tokens 100] [--steps 25] [--repeats 5]
        [--threads 1] [--pipeline DIR --dataset DIR --samples 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

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
    # room for the timed canvas: the position table is a shape, not something trained here
    positions = max(cfg["lm"]["max_position_embeddings"], cfg["lm"]["max_text_tokens"] + tokens)
    lm_args = {**cfg["lm"], "bidirectional": bidirectional, "max_position_embeddings": positions}
    lm_config = MaDiSConfig(
        text_vocab_size=len(tokenizer), part_codebook_sizes=list(vqvae.config.codebook_sizes),
        code_dim=vqvae.config.code_dim, **lm_args,
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


def seconds(pipe: MaDiSPipeline, tokens: int, steps: int) -> float:
    t0 = time.perf_counter()
    out = pipe(PROMPT, num_frames=4 * tokens, num_inference_steps=steps, output_type="tokens")
    elapsed = time.perf_counter() - t0
    assert out.poses[0].shape[0] == tokens
    return elapsed


def validation_sibleu(pipe: MaDiSPipeline, dataset: str, samples: int, steps: int) -> float:
    from datasets import load_from_disk

    rows = load_from_disk(dataset)["validation"].select(range(samples))
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
    parser.add_argument("--pipeline", default=None, help="a trained MaDiS folder for the SiBLEU column")
    parser.add_argument("--dataset", default=None, help="its corpus folder (validation split)")
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    mdlm, ar = build_pipeline(args.config, True, args.tokens), build_pipeline(args.config, False, args.tokens)
    for pipe in (mdlm, ar):
        seconds(pipe, args.tokens, args.steps)  # warm-up
    times = {"mdlm": [], "ar": []}
    for _ in range(args.repeats):
        times["mdlm"].append(seconds(mdlm, args.tokens, args.steps))
        times["ar"].append(seconds(ar, args.tokens, args.steps))
    ratios = [a / m for m, a in zip(times["mdlm"], times["ar"])]
    params = sum(p.numel() for p in mdlm.lm.parameters())
    print(f"# MaDiS throughput, config `{args.config}` LM ({params / 1e6:.2f} M parameters), {args.tokens} tokens, "
          f"{args.threads} thread(s), median of {args.repeats}")
    print()
    print("| decoder | forward passes | seconds per sequence | tokens / s |")
    print("|---|---|---|---|")
    rows = (("mdlm", f"MaDiS, {args.steps} steps", args.steps), ("ar", "AR + KV cache", args.tokens))
    for name, label, passes in rows:
        med = statistics.median(times[name])
        print(f"| {label} | {passes} | {med:.3f} | {args.tokens / med:.1f} |")
    print()
    print(f"MaDiS / AR throughput: {statistics.median(ratios):.2f}x (median of per-pair ratios; paper 1.4x)")

    trained = None
    if args.pipeline:
        trained = MaDiSPipeline.from_pretrained(args.pipeline)
        trained.set_progress_bar_config(disable=True)
    print()
    header = "| steps | seconds per sequence | tokens / s |" + (" SiBLEU-4 (validation) |" if trained else "")
    print(header)
    print("|---|---|---|" + ("---|" if trained else ""))
    for steps in (100, 50, 25, 10):
        if steps > args.tokens:
            continue
        med = statistics.median(seconds(mdlm, args.tokens, steps) for _ in range(max(1, args.repeats // 2)))
        row = f"| {steps} | {med:.3f} | {args.tokens / med:.1f} |"
        if trained:
            row += f" {validation_sibleu(trained, args.dataset, args.samples, steps):.2f} |"
        print(row)


if __name__ == "__main__":
    main()
