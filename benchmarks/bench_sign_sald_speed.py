"""Sign-SALD sampling speed: latent denoiser vs the same denoiser on the uncompressed skeleton, in one run.

The latent denoiser works on N' = N / prod(temporal_downsample) frames (N / 4 for the `small` VAE) x J' = 7 atomic
joints; the reference is the same `SkeletonLatentDenoiser` architecture run on the full skeleton, N frames x J = 42
smplx133 feature joints (per-joint channels zero-padded to the widest joint, 10 for the expression block). Both
sample 10 s of signing (240 frames at 24 fps) with DDIM 50 steps and classifier-free guidance (two denoiser passes
per step), on random weights (speed does not depend on training). The latent path also pays for the VAE decoder.

    python benchmarks/bench_sign_sald_speed.py [--config small] [--seconds 10] [--steps 50] [--repeats 3]

Prints a table: time per sample for each path and the ratio (uncompressed / latent).
"""

from __future__ import annotations

import argparse
import time

import torch
from diffusers import DDIMScheduler

from hf_sign.models.sign_sald import SkeletonLatentDenoiser
from hf_sign.skeletons import get_skeleton
from hf_sign.training.sign_sald_stages import build_vae
from hf_sign.training.sign_sald_trainer import full_config


def _sample(denoiser, shape, text, text_mask, steps, generator, decode=None):
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False)
    scheduler.set_timesteps(steps)
    z = torch.randn(shape, generator=generator)
    null = torch.zeros_like(text)
    cond = torch.cat([null, text])
    cond_mask = torch.cat([text_mask, text_mask])
    for t in scheduler.timesteps:
        out = denoiser(torch.cat([z, z]), t.expand(2 * shape[0]), cond, encoder_attention_mask=cond_mask).sample
        uncond, conditioned = out.chunk(2)
        z = scheduler.step(uncond + 2.5 * (conditioned - uncond), t, z).prev_sample
    return decode(z) if decode is not None else z


def _time(fn, repeats):
    fn()  # warm-up (allocator, kernels)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="small")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = full_config(args.config)
    vae = build_vae(cfg).eval()  # a config without a skeleton gets SkeletonVAE's default one
    spec = get_skeleton(vae.config.skeleton)
    num_frames = int(round(args.seconds * spec.fps))
    factor = vae.temporal_downsample_factor
    num_frames = -(-num_frames // factor) * factor
    den_kwargs = {k: v for k, v in cfg["denoiser"].items()}
    text_dim = cfg["text_encoder"]["hidden_size"]
    latent = SkeletonLatentDenoiser(
        num_joints=vae.latent_num_joints, latent_channels=vae.latent_channels, text_dim=text_dim, **den_kwargs
    ).eval()
    full = SkeletonLatentDenoiser(
        num_joints=spec.num_joints, latent_channels=max(spec.joint_dims), text_dim=text_dim, **den_kwargs
    ).eval()
    text = torch.randn(1, 12, text_dim)
    mask = torch.ones(1, 12, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    latent_shape = (1, num_frames // factor, vae.latent_num_joints, vae.latent_channels)
    full_shape = (1, num_frames, spec.num_joints, max(spec.joint_dims))

    with torch.no_grad():
        t_latent = _time(
            lambda: _sample(latent, latent_shape, text, mask, args.steps, g, decode=lambda z: vae.decode(z).sample),
            args.repeats,
        )
        t_full = _time(lambda: _sample(full, full_shape, text, mask, args.steps, g), args.repeats)

    print(f"Sign-SALD sampling, {args.seconds:g} s of signing ({num_frames} frames at {spec.fps:g} fps), "
          f"DDIM {args.steps} steps with CFG, config '{args.config}', {args.threads} thread(s), "
          f"best of {args.repeats}")
    print()
    print("| path | tokens per step | time per sample (s) | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| latent (N'={latent_shape[1]}, J'={latent_shape[2]}) + VAE decode | {latent_shape[1] * latent_shape[2]} "
          f"| {t_latent:.2f} | 1.00 |")
    print(f"| uncompressed skeleton (N={num_frames}, J={spec.num_joints}) | {num_frames * spec.num_joints} "
          f"| {t_full:.2f} | {t_full / t_latent:.1f} |")


if __name__ == "__main__":
    main()
