"""Quality of Stable Signer's pose-to-video renderer on held-out poses: SSIM and hand-region SSIM.

For a trained renderer folder (what the renderer stage writes: `unet/`, `controlnet/`, `reference_encoder/`,
`renderer_scheduler/`; or a saved `SignVideoPipeline` folder), the first `--sequences` rows of a held-out split are
rendered, sequence `i` in style `AVATAR_STYLES[i % --styles]` with the avatar of its first frame as the reference, at
`--frames-per-sequence` evenly spaced frames. Every rendered frame is scored against the avatar the project draws from
the same pose in the same style (the target), beside a baseline that draws only the skeleton (the control image
itself, scored against the same targets):

* SSIM: Gaussian-window SSIM (11 x 11, sigma 1.5, standard constants) of the whole frame, mean over channels;
* hand SSIM: the same SSIM map averaged inside both hands' pixel boxes (`hf_sign.render.avatar.hand_boxes`).

A second baseline holds the reference image still (the first frame's avatar in the style): SSIM rewards the static
background and body, so it shows how much of a score comes from the appearance alone.

Writes a Markdown table (`--out`) and, with `--video`, an MP4 of one whole sequence: control | rendered | target.

Usage:
    python benchmarks/bench_renderer_quality.py --renderer RUN_DIR --dataset DATA_DIR [--split validation]
        [--sequences 16] [--frames-per-sequence 8] [--steps 25] [--out results.md] [--video sample.mp4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from hf_sign.data.io import load_corpus
from hf_sign.pipelines.pipeline_sign_video import SignVideoPipeline
from hf_sign.render.avatar import AVATAR_STYLES, draw_avatar_frames
from hf_sign.render.video import save_video
from hf_sign.training.stable_signer_renderer import evaluate_renderer


def load_renderer(folder: Path, skeleton: str, fps: float) -> SignVideoPipeline:
    if (folder / "model_index.json").is_file() and (folder / "pipeline_sign_video.py").is_file():
        return SignVideoPipeline.from_pretrained(str(folder))
    return SignVideoPipeline.from_renderer_folder(folder, skeleton=skeleton, fps=fps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--renderer", required=True, help="renderer folder (stage output) or SignVideoPipeline folder")
    parser.add_argument("--dataset", required=True, help="hf-sign dataset folder")
    parser.add_argument("--split", default="validation", help="held-out split (validation or test)")
    parser.add_argument("--sequences", type=int, default=16, help="sequences scored (the first N of the split)")
    parser.add_argument("--frames-per-sequence", type=int, default=8, help="evenly spaced frames per sequence")
    parser.add_argument("--styles", type=int, default=len(AVATAR_STYLES), help="the first N preset styles cycle")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps")
    parser.add_argument(
        "--strength", type=float, default=0.4, help="start from the reference noised this far (1: noise)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    parser.add_argument("--video", type=Path, default=None, help="write control | rendered | target of sequence 0")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    split = load_corpus(args.dataset)[args.split]
    rows = [split[i] for i in range(min(args.sequences, len(split)))]
    if not rows:
        raise ValueError(f"Split {args.split!r} of {args.dataset} is empty.")
    pipe = load_renderer(Path(args.renderer), str(rows[0]["representation"]), float(rows[0]["fps"]))
    pipe.set_progress_bar_config(disable=True)
    styles = [s.name for s in AVATAR_STYLES[: args.styles]]
    start = time.perf_counter()
    metrics, _ = evaluate_renderer(
        pipe,
        [np.asarray(r["poses"], dtype=np.float32) for r in rows],
        styles,
        args.frames_per_sequence,
        args.steps,
        seed=args.seed,
        show_progress=True,
        strength=args.strength,
    )
    seconds = time.perf_counter() - start
    per_frame = seconds / metrics["num_frames"]

    size = int(pipe.config.image_size)
    lines = [
        f"Renderer quality, {args.split} split of `{Path(args.dataset).name}`: {len(rows)} held-out sequences x "
        f"{args.frames_per_sequence} frames ({metrics['num_frames']} frames, {size}x{size}), styles cycling over "
        f"{styles}; DDIM {args.steps} steps at strength {args.strength} (from the reference image noised that far "
        f"down the schedule; 1 = pure noise), one shared initial noise per sequence (seed {args.seed}); "
        f"{per_frame:.2f} s per rendered frame on {args.threads} CPU thread(s).",
        "",
        "| frames scored against the target avatar | SSIM | hand SSIM |",
        "|---|---|---|",
        f"| Stable Signer renderer (ControlNet + UNet, DDIM {args.steps}) | {metrics['ssim']:.3f} | "
        f"{metrics['hand_ssim']:.3f} |",
        f"| skeleton only (the control image) | {metrics['skeleton_ssim']:.3f} | "
        f"{metrics['skeleton_hand_ssim']:.3f} |",
        f"| the reference image held still (first frame in the style; ignores the motion) | "
        f"{metrics['reference_ssim']:.3f} | {metrics['reference_hand_ssim']:.3f} |",
    ]
    table = "\n".join(lines)
    print(table)
    print(json.dumps(metrics))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n", encoding="utf-8")

    if args.video is not None:
        poses = np.asarray(rows[0]["poses"], dtype=np.float32)
        out = pipe(
            poses=poses,
            style=styles[0],
            num_inference_steps=args.steps,
            strength=args.strength,
            generator=torch.Generator().manual_seed(args.seed),
            show_progress=True,
        )
        target = draw_avatar_frames(pipe.skeleton.to_positions(poses), pipe.skeleton, styles[0], size)
        panels = np.concatenate([out.control_frames, out.frames, target], axis=2)
        print("video:", save_video(panels, args.video, pipe.fps))


if __name__ == "__main__":
    main()
