"""Stable Signer's training stages: `linker` (SLUL), `moe` (SLP-MoE over the pose bank), then `renderer`.

Each stage is its arguments (a config section), its loss (`stable_signer_losses`), its data
(`stable_signer_data`), its Trainer and a `Stage` for the runner (`hf_sign.training.stages.run_stages`);
`stable_signer_trainer` holds the config and the entry points.

* Stage `linker` (`LinkerSettings` in section `linker`, `LinkerTrainingArguments` in `linker_training`):
  `hf_sign.training.stable_signer_linker`.
* Stage `moe` (`PoseExpertGate` in section `gate`, `MoETrainingArguments` in `moe_training`): builds the pose bank
  from the train split (`pose_bank/`), computes the frozen linker's query per gloss, and trains the gate with
  `lambda_MoE L_MoE + lambda_ent L_ent + lambda_smooth L_smooth + lambda_vel L_vel + lambda_hand L_hand` on the
  blend `sum_k w_k P_k` (joint positions). The linker stays frozen here (the paper back-propagates into it); its
  queries are computed once. Writes the pipeline folder (without renderer when that stage has not run).
* Stage `renderer`: `hf_sign.training.stable_signer_renderer`; it rewrites the pipeline folder with the renderer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import torch
from diffusers import ControlNetModel, DDIMScheduler, UNet2DConditionModel
from transformers import AutoTokenizer

from ..data.pose_bank import PoseBank
from ..models.stable_signer.expert_gate import PoseExpertGate
from ..models.stable_signer.linker import SignLinkerForConditionalGeneration
from ..models.stable_signer.reference_encoder import ReferenceImageEncoder
from ..pipelines.pipeline_stable_signer import StableSignerPipeline
from ..skeletons.spec import get_skeleton
from .arguments import StageTrainingArguments
from .distributed import is_main_process
from .stable_signer_data import MoECollator, linker_queries, moe_instances
from .stable_signer_linker import LINKER_STAGE, LinkerSettings, LinkerTrainingArguments
from .stable_signer_losses import (
    expert_nll,
    gate_entropy,
    hand_fidelity_loss,
    smoothness_loss,
    velocity_loss,
)
from .stable_signer_renderer import build_renderer_trainer, finish_renderer_stage
from .stages import Stage, StageContext
from .trainer_utils import HfSignTrainer

logger = logging.getLogger(__name__)

__all__ = [
    "LinkerSettings",
    "LinkerTrainingArguments",
    "MoETrainingArguments",
    "MoETrainer",
    "LINKER_STAGE",
    "MOE_STAGE",
    "RENDERER_STAGE",
    "save_stable_signer_pipeline",
    "STABLE_SIGNER_STAGES",
]


# ------------------------------------------------------------------------------------------------ arguments
@dataclass
class MoETrainingArguments(StageTrainingArguments):
    """Stage `moe` (section `moe_training`): optimisation and the weights of section 2.3's objective.

    Args:
        moe_weight (`float`, *optional*, defaults to 1.0): `lambda_MoE` of `-log w_y`.
        entropy_weight (`float`, *optional*, defaults to 0.01): `lambda_ent`.
        smooth_weight (`float`, *optional*, defaults to 1.0): `lambda_smooth` (second differences, per m^2).
        velocity_weight (`float`, *optional*, defaults to 0.1): `lambda_vel`.
        hand_weight (`float`, *optional*, defaults to 1.0): `lambda_hand`.
        position_scale (`float`, *optional*, defaults to 10.0): joint positions are in metres; the stabilisation
            terms measure them in `1 / position_scale` metres (decimetres), where they are of order 1 like `L_MoE`.
    """

    num_train_epochs: float = 30.0
    per_device_train_batch_size: int = 64
    learning_rate: float = 3e-3
    moe_weight: float = 1.0
    entropy_weight: float = 0.01
    smooth_weight: float = 1.0
    velocity_weight: float = 0.1
    hand_weight: float = 1.0
    position_scale: float = 10.0


def video_settings(config: Mapping[str, Any]) -> Dict[str, Any]:
    """The renderer settings `SignVideoPipeline` needs at inference (its `default_strength`)."""
    return {"default_strength": float(config["renderer"]["inference_strength"])}


def save_stable_signer_pipeline(
    output_dir: Union[str, Path], video_settings: Optional[Dict[str, Any]] = None, **modules: Any
) -> Path:
    """Assemble `StableSignerPipeline` from the stage outputs in `output_dir` (or the given `modules`) and save it
    there, so `output_dir` is a pipeline folder; the renderer joins it once `unet/` is there, with `video_settings`
    (`SignVideoPipeline` settings, e.g. `default_strength`)."""
    out = Path(output_dir)
    loaders = {
        "linker": lambda: SignLinkerForConditionalGeneration.from_pretrained(out / "linker"),
        "tokenizer": lambda: AutoTokenizer.from_pretrained(out / "tokenizer"),
        "gate": lambda: PoseExpertGate.from_pretrained(out / "gate"),
        "pose_bank": lambda: PoseBank.from_pretrained(out / "pose_bank"),
    }
    if (out / "unet").is_dir():
        loaders.update(
            unet=lambda: UNet2DConditionModel.from_pretrained(out / "unet"),
            controlnet=lambda: ControlNetModel.from_pretrained(out / "controlnet"),
            reference_encoder=lambda: ReferenceImageEncoder.from_pretrained(out / "reference_encoder"),
            renderer_scheduler=lambda: DDIMScheduler.from_pretrained(out / "renderer_scheduler"),
        )
    parts = {name: modules[name] if name in modules else load() for name, load in loaders.items()}
    bank = parts["pose_bank"]
    pipe = StableSignerPipeline(
        fps=bank.config.fps, skeleton=bank.config.representation, video_settings=video_settings, **parts
    )
    pipe.save_pretrained(out)
    return out


# ------------------------------------------------------------------------------------------------ MoE
class MoETrainer(HfSignTrainer):
    """The gate's objective: expert choice, gate entropy and the stabilisation terms on the blended poses."""

    def __init__(self, *args, loss_args: MoETrainingArguments, hand_joints: List[int], **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_args = loss_args
        self.hand_joints = hand_joints

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        a = self.loss_args
        # 1. gate weights over the experts (candidates cut from this very sentence excluded)
        out = model(inputs["query"], expert_mask=inputs["expert_mask"])
        w = out.weights
        # 2. the blend P = sum_k w_k P_k (joint positions, context frames identical across candidates)
        blend = torch.einsum("bk,bktjc->btjc", w, inputs["candidates"]) * a.position_scale
        target = inputs["target"] * a.position_scale
        mask = inputs["frame_mask"]
        terms = {
            "moe": expert_nll(w, inputs["expert"]),
            "ent": gate_entropy(w),
            "smooth": smoothness_loss(blend, mask),
            "vel": velocity_loss(blend, mask),
            "hand": hand_fidelity_loss(blend[:, :, self.hand_joints], target[:, :, self.hand_joints], mask),
        }
        loss = (
            a.moe_weight * terms["moe"]
            + a.entropy_weight * terms["ent"]
            + a.smooth_weight * terms["smooth"]
            + a.velocity_weight * terms["vel"]
            + a.hand_weight * terms["hand"]
        )
        self.log_loss_terms(terms)
        return (loss, out) if return_outputs else loss


def _load_linker(ctx: StageContext):
    folder = ctx.output_dir
    if not (folder / "linker" / "config.json").is_file():
        raise ValueError(f"Stage 'moe' needs the trained linker in {folder / 'linker'}; run stage 'linker' first.")
    linker = SignLinkerForConditionalGeneration.from_pretrained(folder / "linker")
    tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
    return linker.eval().requires_grad_(False), tokenizer


def _instances(ctx: StageContext, split: str, linker, tokenizer, bank: PoseBank):
    rows = [r for r in ctx.data[split] if r.get("gloss_spans") and r.get("gloss")]
    if not rows:
        return None
    languages = [r.get("language") or linker.config.language_tags[0] for r in rows]
    queries = linker_queries(
        linker, tokenizer, [r["text"] for r in rows], [r["gloss"] for r in rows], languages, show_progress=True
    )
    return moe_instances(rows, queries, bank, get_skeleton(ctx.data["representation"]), show_progress=True)


def build_moe_trainer(ctx: StageContext) -> MoETrainer:
    args = MoETrainingArguments(**ctx.config["moe_training"])
    linker, tokenizer = _load_linker(ctx)
    bank = PoseBank.from_rows(
        ctx.data["train"],
        num_experts=ctx.config["gate"]["num_experts"],
        fps=ctx.data["fps"],
        representation=ctx.data["representation"],
    )
    if is_main_process():  # every process builds the same bank; one writes it
        bank.save_pretrained(ctx.output_dir / "pose_bank")
    gate = PoseExpertGate(**{**ctx.config["gate"], "query_dim": 2 * linker.config.d_model})
    spec = get_skeleton(ctx.data["representation"])
    hands = [j for part in ("left_hand", "right_hand") for j in spec.position_parts.get(part, ())]
    trainer = MoETrainer(
        model=gate,
        args=ctx.training_arguments("moe", args),
        train_dataset=_instances(ctx, "train", linker, tokenizer, bank),
        data_collator=MoECollator(),
        loss_args=args,
        hand_joints=hands or list(range(spec.num_position_joints)),
        group_by_length=args.group_by_length,
    )
    trainer.moe_parts = (linker, tokenizer, bank)
    return trainer


@torch.no_grad()
def _gate_accuracy(gate: PoseExpertGate, instances) -> float:
    """% of instances whose top-gated expert is the one nearest the ground truth."""
    gate.eval()
    batch = MoECollator()([instances[i] for i in range(len(instances))])
    top = gate(batch["query"], expert_mask=batch["expert_mask"]).weights.argmax(-1)
    return 100.0 * float((top == batch["expert"]).float().mean())


def finish_moe_stage(ctx: StageContext, trainer: MoETrainer) -> Dict[str, Any]:
    gate = trainer.model
    gate.save_pretrained(ctx.output_dir / "gate")
    linker, tokenizer, bank = trainer.moe_parts
    metrics: Dict[str, Any] = {
        "moe_bank_glosses": len(bank.glosses),
        "moe_train_instances": len(trainer.train_dataset),
    }
    val = _instances(ctx, "validation", linker, tokenizer, bank)
    if val is not None:
        metrics["moe_val_gate_accuracy"] = _gate_accuracy(gate, val)
        metrics["moe_val_instances"] = len(val)
    save_stable_signer_pipeline(
        ctx.output_dir, video_settings(ctx.config), linker=linker, tokenizer=tokenizer, gate=gate, pose_bank=bank
    )
    return metrics


MOE_STAGE = Stage("moe", build_moe_trainer, finish_moe_stage)


def finish_renderer_and_pipeline(ctx: StageContext, trainer) -> Dict[str, Any]:
    """The renderer stage's own finish, then the pipeline folder rewritten with the renderer in it."""
    metrics = finish_renderer_stage(ctx, trainer)
    if (ctx.output_dir / "gate").is_dir():
        save_stable_signer_pipeline(ctx.output_dir, video_settings(ctx.config))
    return metrics


RENDERER_STAGE = Stage("renderer", build_renderer_trainer, finish_renderer_and_pipeline)
STABLE_SIGNER_STAGES = (LINKER_STAGE, MOE_STAGE, RENDERER_STAGE)
