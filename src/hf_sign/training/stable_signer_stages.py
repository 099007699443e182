"""Stable Signer's training stages: `linker` (SLUL), `moe` (SLP-MoE over the pose bank), then `renderer`.

Each stage is its arguments (a config section), its loss (`stable_signer_losses`), its data
(`stable_signer_data`), its Trainer and a `Stage` for the runner (`hf_sign.training.stages.run_stages`);
`stable_signer_trainer` holds the config and the entry points.

* Stage `linker` (`LinkerSettings` in section `linker`, `LinkerTrainingArguments` in `linker_training`): a T5 from
  scratch (or a local pretrained T5 folder) on `text -> gloss` and `prompt -> gloss`, each input prefixed by its
  language tag, with `L = L_SLUL + lambda_SAGM L_SAGM + lambda_KL L_KL + lambda_con L_con` (eq. of section 2.2).
  Saves `linker/` and `tokenizer/`; validation gloss BLEU-4 and exact match go into the metrics.
* Stage `moe` (`PoseExpertGate` in section `gate`, `MoETrainingArguments` in `moe_training`): builds the pose bank
  from the train split (`pose_bank/`), computes the frozen linker's query per gloss, and trains the gate with
  `lambda_MoE L_MoE + lambda_ent L_ent + lambda_smooth L_smooth + lambda_vel L_vel + lambda_hand L_hand` on the
  blend `sum_k w_k P_k` (joint positions). The linker stays frozen here (the paper back-propagates into it); its
  queries are computed once. Writes the pipeline folder (without renderer when that stage has not run).
* Stage `renderer`: `hf_sign.training.stable_signer_renderer`; it rewrites the pipeline folder with the renderer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np
import torch
from diffusers import ControlNetModel, DDIMScheduler, UNet2DConditionModel
from transformers import AutoTokenizer, T5Config

from ..data.pose_bank import PoseBank
from ..evaluation.text_metrics import corpus_bleu, rouge_l
from ..models.stable_signer.expert_gate import PoseExpertGate
from ..models.stable_signer.linker import (
    SignLinkerConfig,
    SignLinkerForConditionalGeneration,
    build_linker_tokenizer,
    masked_mean,
)
from ..models.stable_signer.reference_encoder import ReferenceImageEncoder
from ..pipelines.pipeline_stable_signer import StableSignerPipeline
from ..skeletons.spec import get_skeleton
from .arguments import StageTrainingArguments
from .stable_signer_data import LinkerCollator, MoECollator, linker_examples, linker_queries, moe_instances
from .stable_signer_losses import (
    contrastive_linking,
    expert_nll,
    gate_entropy,
    gloss_cross_entropy,
    hand_fidelity_loss,
    mask_gloss_inputs,
    posterior_kl,
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
    "build_linker",
    "LinkerTrainer",
    "MoETrainer",
    "LINKER_STAGE",
    "MOE_STAGE",
    "predict_glosses",
    "save_stable_signer_pipeline",
    "STABLE_SIGNER_STAGES",
]


# ------------------------------------------------------------------------------------------------ arguments
@dataclass
class LinkerSettings:
    """The linker's T5 shape and vocabulary (config section `linker`). Defaults: T5-base, the paper's backbone.

    Args:
        d_model (`int`, *optional*, defaults to 768): hidden width.
        d_kv (`int`, *optional*, defaults to 64): width of one attention head.
        d_ff (`int`, *optional*, defaults to 3072): feed-forward width.
        num_layers (`int`, *optional*, defaults to 12): encoder layers.
        num_decoder_layers (`int`, *optional*, defaults to 12): decoder layers.
        num_heads (`int`, *optional*, defaults to 12): attention heads.
        relative_attention_num_buckets (`int`, *optional*, defaults to 32): T5's relative-position buckets.
        relative_attention_max_distance (`int`, *optional*, defaults to 128): longest distance with its own bucket.
        dropout_rate (`float`, *optional*, defaults to 0.1): dropout.
        feed_forward_proj (`str`, *optional*, defaults to `"relu"`): `"relu"` (T5) or `"gated-gelu"` (T5 v1.1).
        max_length (`int`, *optional*, defaults to 128): longest input in tokens (longer prompts are refused).
        max_gloss_length (`int`, *optional*, defaults to 32): most glosses generated per input.
        num_beams (`int`, *optional*, defaults to 1): beam size of gloss decoding (1: greedy), saved in the linker's
            `generation_config.json` (so `linker.generate` and the pipeline use it by default).
        pretrained_name_or_path (`str`, *optional*): a local T5 folder to start from (its own tokenizer; glosses
            are then spelled out as text); default: a T5 from scratch with a word-level tokenizer over the corpus.
    """

    d_model: int = 768
    d_kv: int = 64
    d_ff: int = 3072
    num_layers: int = 12
    num_decoder_layers: int = 12
    num_heads: int = 12
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    feed_forward_proj: str = "relu"
    max_length: int = 128
    max_gloss_length: int = 32
    num_beams: int = 1
    pretrained_name_or_path: Optional[str] = None

    def t5_kwargs(self) -> Dict[str, Any]:
        keys = (
            "d_model",
            "d_kv",
            "d_ff",
            "num_layers",
            "num_decoder_layers",
            "num_heads",
            "relative_attention_num_buckets",
            "relative_attention_max_distance",
            "dropout_rate",
            "feed_forward_proj",
        )
        return {k: getattr(self, k) for k in keys}


@dataclass
class LinkerTrainingArguments(StageTrainingArguments):
    """Stage `linker` (section `linker_training`): optimisation and the weights of section 2.2's objective.

    Args:
        inputs (`List[str]`, *optional*, defaults to `["text", "prompt"]`): corpus fields the linker learns from;
            each gives one example per sentence.
        sagm_weight (`float`, *optional*, defaults to 1.0): `lambda_SAGM` (0 turns SAGM off).
        mask_rate (`float`, *optional*, defaults to 0.3): `rho`, probability that a gloss token of the decoder input
            is masked.
        kl_weight (`float`, *optional*, defaults to 1.0): `lambda_KL`.
        contrastive_weight (`float`, *optional*, defaults to 0.1): `lambda_con`.
        temperature (`float`, *optional*, defaults to 0.07): `tau` of the contrastive term.
    """

    num_train_epochs: float = 30.0
    per_device_train_batch_size: int = 64
    learning_rate: float = 5e-4
    inputs: List[str] = field(default_factory=lambda: ["text", "prompt"])
    sagm_weight: float = 1.0
    mask_rate: float = 0.3
    kl_weight: float = 1.0
    contrastive_weight: float = 0.1
    temperature: float = 0.07

    def __post_init__(self):
        if not self.inputs or any(f not in ("text", "prompt") for f in self.inputs):
            raise ValueError(f"`linker_training.inputs` must list 'text' and/or 'prompt'; got {self.inputs}.")
        for name in ("sagm_weight", "kl_weight", "contrastive_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"`linker_training.{name}` must be >= 0; got {getattr(self, name)}.")
        if not 0.0 <= self.mask_rate <= 1.0:
            raise ValueError(f"`linker_training.mask_rate` must be in [0, 1]; got {self.mask_rate}.")
        if self.temperature <= 0:
            raise ValueError(f"`linker_training.temperature` must be > 0; got {self.temperature}.")


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


# ------------------------------------------------------------------------------------------------ linker
def build_linker(settings: LinkerSettings, rows: List[Mapping[str, Any]], languages: List[str]):
    """`(linker, tokenizer)`: from scratch with a tokenizer over `rows`' texts, prompts and glosses, or from
    `settings.pretrained_name_or_path` (its tokenizer gains the language tags and `<mask>`)."""
    glosses = [r["gloss"] for r in rows if r.get("gloss")]
    vocabulary = sorted({g for seq in glosses for g in seq})
    if settings.pretrained_name_or_path:
        tokenizer = AutoTokenizer.from_pretrained(settings.pretrained_name_or_path)
        tokenizer.add_special_tokens(
            {"mask_token": "<mask>", "additional_special_tokens": [f"<{t}>" for t in languages]}
        )
        tokenizer.model_max_length = settings.max_length
        base = T5Config.from_pretrained(settings.pretrained_name_or_path).to_dict()
        for key in ("model_type", "architectures", "transformers_version"):
            base.pop(key, None)
        config = SignLinkerConfig(
            language_tags=languages,
            gloss_vocabulary=vocabulary,
            mask_token_id=tokenizer.mask_token_id,
            max_gloss_length=settings.max_gloss_length,
            **base,
        )
        linker = SignLinkerForConditionalGeneration.from_pretrained(settings.pretrained_name_or_path, config=config)
        linker.resize_token_embeddings(len(tokenizer))
        linker.generation_config.num_beams = settings.num_beams
        return linker, tokenizer
    texts = [r[f] for r in rows for f in ("text", "prompt") if isinstance(r.get(f), str)]
    tokenizer, gloss_ids = build_linker_tokenizer(texts, glosses, languages, max_length=settings.max_length)
    config = SignLinkerConfig(
        language_tags=languages,
        gloss_vocabulary=vocabulary,
        gloss_token_ids=[gloss_ids[g] for g in vocabulary],
        mask_token_id=tokenizer.mask_token_id,
        max_gloss_length=settings.max_gloss_length,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        **settings.t5_kwargs(),
    )
    linker = SignLinkerForConditionalGeneration(config)
    # decoding emits glosses and eos only (saved in generation_config.json, so `linker.generate` keeps it)
    allowed = set(config.gloss_token_ids) | {tokenizer.eos_token_id}
    linker.generation_config.suppress_tokens = [i for i in range(len(tokenizer)) if i not in allowed]
    linker.generation_config.num_beams = settings.num_beams
    return linker, tokenizer


class LinkerTrainer(HfSignTrainer):
    """CE on the unmasked pass, plus SAGM's masked pass, the KL between the two and contrastive linking."""

    def __init__(self, *args, loss_args: LinkerTrainingArguments, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_args = loss_args

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        a = self.loss_args
        labels, dmask = inputs["labels"], inputs["decoder_attention_mask"]
        # 1. the unmasked teacher-forced pass: L_SLUL
        out = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            labels=labels,
            decoder_attention_mask=dmask,
            output_hidden_states=a.contrastive_weight > 0,
        )
        ce = gloss_cross_entropy(out.logits, labels)
        terms = {"ce": ce}
        loss = ce
        # 2. SAGM: the same targets from a decoder input with gloss tokens masked (encoder states reused)
        if a.sagm_weight > 0 or a.kl_weight > 0:
            decoder_inputs = model._shift_right(labels)  # -100 becomes padding
            masked_inputs = mask_gloss_inputs(decoder_inputs, dmask, model.config.mask_token_id, a.mask_rate)
            masked = model(
                encoder_outputs=(out.encoder_last_hidden_state,),
                attention_mask=inputs["attention_mask"],
                decoder_input_ids=masked_inputs,
                decoder_attention_mask=dmask,
            )
            if a.sagm_weight > 0:
                terms["sagm"] = gloss_cross_entropy(masked.logits, labels)
                loss = loss + a.sagm_weight * terms["sagm"]
            # 3. KL consistency between the masked and unmasked posteriors
            if a.kl_weight > 0:
                terms["kl"] = posterior_kl(masked.logits, out.logits, labels)
                loss = loss + a.kl_weight * terms["kl"]
        # 4. contrastive linking of the pooled prompt and gloss embeddings, in-batch negatives
        if a.contrastive_weight > 0:
            h_x = masked_mean(out.encoder_last_hidden_state, inputs["attention_mask"])
            h_g = masked_mean(out.decoder_hidden_states[-1], dmask)
            terms["con"] = contrastive_linking(h_x, h_g, a.temperature, inputs["same_gloss"])
            loss = loss + a.contrastive_weight * terms["con"]
        self.log_loss_terms(terms)
        return (loss, out) if return_outputs else loss


@torch.no_grad()
def predict_glosses(
    linker: SignLinkerForConditionalGeneration,
    tokenizer,
    texts: List[str],
    languages: List[str],
    num_beams: int = 1,
    batch_size: int = 64,
) -> List[List[str]]:
    """Generated gloss sequences of `texts` (each with its language)."""
    linker.eval()
    out: List[List[str]] = []
    for s in range(0, len(texts), batch_size):
        batch = [
            linker.format_input(t, lang) for t, lang in zip(texts[s : s + batch_size], languages[s : s + batch_size])
        ]
        enc = tokenizer(batch, padding=True, return_tensors="pt")
        ids = linker.generate(**enc, max_new_tokens=linker.config.max_gloss_length + 1, num_beams=num_beams)
        out += linker.decode_glosses(tokenizer, ids)
    return out


def _languages(ctx: StageContext) -> List[str]:
    found = sorted({r.get("language") or "und" for r in ctx.data["train"]})
    return found


def build_linker_trainer(ctx: StageContext) -> LinkerTrainer:
    settings = LinkerSettings(**ctx.config["linker"])
    args = LinkerTrainingArguments(**ctx.config["linker_training"])
    rows = ctx.data["train"]
    languages = _languages(ctx)
    linker, tokenizer = build_linker(settings, rows, languages)
    dataset = linker_examples(rows, args.inputs, languages[0])
    trainer = LinkerTrainer(
        model=linker,
        args=ctx.training_arguments("linker", args),
        train_dataset=dataset,
        data_collator=LinkerCollator(tokenizer, linker),
        loss_args=args,
        group_by_length=args.group_by_length,
    )
    trainer.linker_tokenizer = tokenizer
    return trainer


def gloss_scores(predicted: List[List[str]], reference: List[List[str]]) -> Dict[str, float]:
    """Gloss BLEU-4 (corpus, whitespace tokens, 0-100), ROUGE-L and exact match (%) against reference glosses."""
    hyp, ref = [" ".join(p) for p in predicted], [" ".join(r) for r in reference]
    return {
        "bleu4": corpus_bleu(hyp, ref, tokenize="none"),
        "rouge_l": rouge_l(hyp, ref, tokenize="none"),
        "exact_match": 100.0 * float(np.mean([p == r for p, r in zip(predicted, reference)])),
    }


def finish_linker_stage(ctx: StageContext, trainer: LinkerTrainer) -> Dict[str, Any]:
    linker, tokenizer = trainer.model, trainer.linker_tokenizer
    linker.save_pretrained(ctx.output_dir / "linker")
    tokenizer.save_pretrained(ctx.output_dir / "tokenizer")
    metrics: Dict[str, Any] = {"linker_parameters": sum(p.numel() for p in linker.parameters())}
    rows = [r for r in ctx.data["validation"] if r.get("gloss")]
    settings = LinkerSettings(**ctx.config["linker"])
    for field_name in LinkerTrainingArguments(**ctx.config["linker_training"]).inputs:
        if not rows or not all(isinstance(r.get(field_name), str) for r in rows):
            continue
        languages = [r.get("language") or _languages(ctx)[0] for r in rows]
        pred = predict_glosses(linker, tokenizer, [r[field_name] for r in rows], languages, settings.num_beams)
        for k, v in gloss_scores(pred, [r["gloss"] for r in rows]).items():
            metrics[f"linker_val_{field_name}_{k}"] = v
    return metrics


LINKER_STAGE = Stage("linker", build_linker_trainer, finish_linker_stage)


def save_stable_signer_pipeline(output_dir: Union[str, Path], **modules: Any) -> Path:
    """Assemble `StableSignerPipeline` from the stage outputs in `output_dir` (or the given `modules`) and save it
    there, so `output_dir` is a pipeline folder; the renderer joins it once `unet/` is there."""
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
    pipe = StableSignerPipeline(fps=bank.config.fps, skeleton=bank.config.representation, **parts)
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
    save_stable_signer_pipeline(ctx.output_dir, linker=linker, tokenizer=tokenizer, gate=gate, pose_bank=bank)
    return metrics


MOE_STAGE = Stage("moe", build_moe_trainer, finish_moe_stage)


def finish_renderer_and_pipeline(ctx: StageContext, trainer) -> Dict[str, Any]:
    """The renderer stage's own finish, then the pipeline folder rewritten with the renderer in it."""
    metrics = finish_renderer_stage(ctx, trainer)
    if (ctx.output_dir / "gate").is_dir():
        save_stable_signer_pipeline(ctx.output_dir)
    return metrics


RENDERER_STAGE = Stage("renderer", build_renderer_trainer, finish_renderer_and_pipeline)
STABLE_SIGNER_STAGES = (LINKER_STAGE, MOE_STAGE, RENDERER_STAGE)
