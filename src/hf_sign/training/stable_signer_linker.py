"""Stable Signer's `linker` stage (SLUL, paper section 2.2): arguments, Trainer and `Stage` for the runner.

A T5 from scratch (or a local pretrained T5 folder) learns `text -> gloss` and `prompt -> gloss`, each input prefixed
by its language tag, with `L = L_SLUL + lambda_SAGM L_SAGM + lambda_KL L_KL + lambda_con L_con`
(`hf_sign.training.stable_signer_losses`). The stage saves `linker/` and `tokenizer/` and puts the validation gloss
BLEU-4, ROUGE-L and exact match into the metrics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import torch
from transformers import AutoTokenizer, T5Config

from ..evaluation.text_metrics import corpus_bleu, rouge_l
from ..models.stable_signer.linker import (
    SignLinkerConfig,
    SignLinkerForConditionalGeneration,
    build_linker_tokenizer,
    masked_mean,
)
from .arguments import StageTrainingArguments
from .stable_signer_data import LinkerCollator, linker_examples
from .stable_signer_losses import contrastive_linking, gloss_cross_entropy, mask_gloss_inputs, posterior_kl
from .stages import Stage, StageContext
from .trainer_utils import HfSignTrainer

logger = logging.getLogger(__name__)

__all__ = [
    "LinkerSettings",
    "LinkerTrainingArguments",
    "build_linker",
    "LinkerTrainer",
    "predict_glosses",
    "gloss_scores",
    "LINKER_STAGE",
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
    num_beams: Optional[int] = None,
    batch_size: int = 64,
) -> List[List[str]]:
    """Generated gloss sequences of `texts` (each with its language); `num_beams` defaults to the linker's
    `generation_config`, as in the pipeline."""
    linker.eval()
    out: List[List[str]] = []
    for s in range(0, len(texts), batch_size):
        batch = [
            linker.format_input(t, lang) for t, lang in zip(texts[s : s + batch_size], languages[s : s + batch_size])
        ]
        enc = tokenizer(batch, padding=True, return_tensors="pt")
        beams = {} if num_beams is None else {"num_beams": num_beams}
        ids = linker.generate(**enc, max_new_tokens=linker.config.max_gloss_length + 1, **beams)
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
    if ctx.base_pipeline is not None:  # fine-tuning: continue from its trained linker
        linker, tokenizer = ctx.base_pipeline.linker, ctx.base_pipeline.tokenizer
    else:
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
