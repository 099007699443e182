"""`convert_madis_checkpoint`: the authors' released MaDiS weights -> a `MaDiSPipeline` folder.

The release (code: the public 2000ZRL/MaDiS repository; weights on the Hub) is laid out as

    SRC/experiments/madis/tokenizer.ckpt        part-wise VQ-VAE (SOKE's sign tokenizer)
    SRC/experiments/madis/pretrained.ckpt       tri-level pretrained LM (no MoP weights)
    SRC/experiments/madis/sft_{csl,phoenix,how2sign}.ckpt   fine-tuned LMs (each also holds the VQ-VAEs)
    SRC/deps/Qwen3-0.6B-Base-en-zh-de/          Qwen3 config.json, tokenizer files, map_ids.pkl
    <data>/CSL-Daily/mean.pt, std.pt            pose statistics (179 raw SMPL-X numbers, or the 133 kept); the
                                                release uses CSL-Daily's for every corpus

and `convert_madis_checkpoint(SRC, OUT, lm_checkpoint="sft_csl.ckpt", mean=..., std=...)` writes OUT as a pipeline
folder that `MaDiSPipeline.from_pretrained(OUT)` and `DiffusionPipeline.from_pretrained(OUT, trust_remote_code=True)`
load. Steps:

1. read the checkpoints with `torch.load(weights_only=True)`, their non-tensor metadata as inert placeholders
   (`safe_loading`); read `map_ids.pkl` with an unpickler that refuses every global;
2. split each state dict into VQ-VAE, LM and latent-head keys (or dropped ones, listed); build `PartVQVAE` and
   `MaDiSForMaskedDiffusion` and copy every tensor into them, checking names and shapes (`madis_weights`);
3. re-index the Qwen3 tokenizer to the embedding ids (`madis_tokenizer`);
4. the pose statistics as a `PoseNormalizer` and a greedy `MaskedDiffusionScheduler` (temperature 0: the release
   takes the argmax), then `MaDiSPipeline.save_pretrained(OUT)`.

Feature layout. The release keeps SMPL-X axis-angles `[36:]` of (root 3, body 63, left hand 45, right hand 45, jaw 3,
shape 10, expression 10) without the shape: upper-body joints 12-21, left hand, right hand, jaw, expression, which
is exactly `smplx133`. Their body VQ-VAE reads `cat(x[:30], x[120:133])`, their hands `x[30:75]` and `x[75:120]`,
which are `part_feature_indices("smplx133")`, so no feature is reordered. The release normalises by
`(x - mean) / (std + 1e-10)`; the normalizer stores `std + 1e-10`.

Sampling. The weights are the release's; `MaDiSPipeline` does not replay the release's `generate` step by step: it
feeds `[text, <eos>, canvas]` where the release feeds `[text, canvas]` (its Qwen3 tokenizer appends nothing), left-
rather than right-pads a batch, takes a position's confidence as the product of its three part probabilities where
the release uses the body head's alone, holds exactly M/4 and M/2 tokens at the checkpoints where the release
switches its grids after 25% / 50% of a `linspace(1, 1e-5)` schedule, and cuts at the first `<eos>` (a token the
release never trains: its padded positions are outside the loss, so its canvas is always filled).
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import torch
from transformers import Qwen3Config

from ..data.normalization import PoseNormalizer
from ..pipelines.pipeline_madis import MaDiSPipeline
from ..schedulers import MaskedDiffusionScheduler
from .madis_tokenizer import build_text_tokenizer
from .madis_weights import KeyReport, TheirVocabulary, build_lm, build_part_vqvae, check_same_tensors, split_state_dict
from .safe_loading import load_id_map, load_lightning_state_dict

__all__ = ["MaDiSConversion", "convert_madis_checkpoint", "load_release_statistics"]

logger = logging.getLogger(__name__)
PathLike = Union[str, Path]

CHECKPOINT_DIR = Path("experiments") / "madis"
LANGUAGE_MODEL_DIR = Path("deps") / "Qwen3-0.6B-Base-en-zh-de"
RAW_SMPLX_DIM = 179  # root 3 + body 63 + hands 2 x 45 + jaw 3 + shape 10 + expression 10
SMPLX133_DIM = 133


@dataclass
class MaDiSConversion:
    """What `convert_madis_checkpoint` did.

    Args:
        pipeline ([`MaDiSPipeline`]): the converted pipeline (also saved to `out_dir`).
        stage (`str`): `"sft"` (MoP embedding) or `"pretrained"` (average embedding, no MoP weights).
        mapped (`Dict[str, str]`): their key -> our component and key.
        dropped (`Dict[str, str]`): their key -> why it was not converted.
        notes (`List[str]`): where the converted model may differ from the release's (tokenizer coverage).
    """

    pipeline: MaDiSPipeline
    stage: str
    mapped: Dict[str, str] = field(default_factory=dict)
    dropped: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


def _resolve(given: Optional[PathLike], default: PathLike, base: Path, what: str, flag: str) -> Path:
    """`given` as a path (else relative to the release folder `base` or its checkpoint folder), or `default` under
    `base`; raises naming the option when nothing is there."""
    if given is None:
        candidates = [base / default]
    elif Path(given).is_absolute():
        candidates = [Path(given)]
    else:
        candidates = [Path(given), base / given, base / CHECKPOINT_DIR / given]
    found = next((c for c in candidates if c.exists()), None)
    if found is None:
        raise FileNotFoundError(f"{what} not found (looked for {', '.join(map(str, candidates))}); {flag}.")
    return found


def _default_lm_checkpoint(base: Path) -> Path:
    folder = base / CHECKPOINT_DIR
    found = sorted(folder.glob("sft_*.ckpt")) + sorted(folder.glob("pretrained.ckpt"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise ValueError(
            f"Pass `lm_checkpoint` (--lm-checkpoint) to say which language model to convert; {folder} holds {names}."
        )
    return found[0]


def load_release_statistics(path: PathLike, what: str) -> torch.Tensor:
    """A `mean.pt` / `std.pt` of the release as the 133 `smplx133` numbers (179 raw SMPL-X numbers are cut as the
    release does: drop root and lower body `[:36]` and the shape `[-20:-10]`)."""
    try:
        value = torch.as_tensor(torch.load(str(path), map_location="cpu", weights_only=True), dtype=torch.float32)
    except (pickle.UnpicklingError, RuntimeError, TypeError) as err:
        raise ValueError(f"`{what}` ({Path(path).name}) is not a tensor saved with torch.save: {err}") from None
    if value.ndim != 1 or value.shape[0] not in (RAW_SMPLX_DIM, SMPLX133_DIM):
        raise ValueError(
            f"`{what}` ({Path(path).name}) must be a vector of {RAW_SMPLX_DIM} raw SMPL-X or {SMPLX133_DIM} smplx133 "
            f"numbers; got shape {tuple(value.shape)}."
        )
    if value.shape[0] == RAW_SMPLX_DIM:
        value = value[36:]
        value = torch.cat([value[:-20], value[-10:]])
    return value


def _add_tokenizer_checkpoint(
    vq_parts: List[Optional[dict]], path: Path, lm_name: str, allow_globals: Sequence[str], report: KeyReport
) -> None:
    """Read the sign tokenizer checkpoint: it fills the VQ-VAE parts the LM checkpoint lacks, and must agree with
    the parts it has (the LM was trained on that tokenizer). Its idle `lm.*` weights are dropped."""
    tok_report = KeyReport()
    state = load_lightning_state_dict(path, allow_globals)
    for key in [k for k in state if k.startswith("lm.")]:
        tok_report.dropped[key] = "the tokenizer stage's language model (not trained in that stage)"
        del state[key]
    parts, lm_keys, head_keys = split_state_dict(state, tok_report)
    if lm_keys or head_keys:
        raise ValueError(f"{path.name} holds language-model keys; pass it as the LM checkpoint instead.")
    if any(p is None for p in parts):
        raise ValueError(f"{path.name} lacks one of vae / hand_vae / rhand_vae.")
    for p, name in enumerate(("vae", "hand_vae", "rhand_vae")):
        if vq_parts[p] is None:
            vq_parts[p] = parts[p]
        else:
            check_same_tensors(
                vq_parts[p],
                parts[p],
                f"`{name}` of {path.name} and {lm_name} (the LM's own copy is used with tokenizer_checkpoint=False, "
                "CLI --tokenizer-checkpoint none)",
            )
    report.dropped.update({f"{path.name}: {k}": why for k, why in tok_report.dropped.items()})


def convert_madis_checkpoint(
    src: PathLike,
    out_dir: PathLike,
    lm_checkpoint: Optional[PathLike] = None,
    tokenizer_checkpoint: Union[PathLike, None, bool] = None,
    language_model_dir: Optional[PathLike] = None,
    mean: Optional[PathLike] = None,
    std: Optional[PathLike] = None,
    fps: float = 25.0,
    max_text_tokens: int = 256,
    max_sign_tokens: int = 100,
    allow_globals: Sequence[str] = (),
) -> MaDiSConversion:
    """Convert the released MaDiS weights into a `MaDiSPipeline` folder at `out_dir`.

    Args:
        src (`str` or `Path`): the release folder (with `experiments/madis/` and `deps/`), or an LM `.ckpt` file.
        out_dir (`str` or `Path`): where to write the pipeline folder.
        lm_checkpoint (`str` or `Path`, *optional*): the language model (`sft_csl.ckpt`, `pretrained.ckpt`, ... or a
            path); a bare name is looked up in `src/experiments/madis/`. Needed when `src` holds several.
        tokenizer_checkpoint (`str`, `Path` or `False`, *optional*): the sign tokenizer; defaults to
            `src/experiments/madis/tokenizer.ckpt` when present, `False` reads none. The LM checkpoints hold the same
            VQ-VAEs: when both are there they must agree (the LM was trained on that tokenizer); the LM's copy is
            used, the tokenizer checkpoint's only when the LM checkpoint has none.
        language_model_dir (`str` or `Path`, *optional*): the Qwen3 folder (config.json, tokenizer, map_ids.pkl);
            defaults to `src/deps/Qwen3-0.6B-Base-en-zh-de`.
        mean (`str` or `Path`, *optional*), std (`str` or `Path`, *optional*): the pose statistics (`mean.pt`,
            `std.pt`; 179 or 133 numbers); default `src/mean.pt`, `src/std.pt`. The release normalises every corpus
            with CSL-Daily's (`../data/CSL-Daily/mean.pt` in all its configs).
        fps (`float`, *optional*, defaults to 25.0): frame rate of the poses (CSL-Daily and Phoenix-2014T: 25;
            How2Sign was resampled to 24 by the release).
        max_text_tokens (`int`, *optional*, defaults to 256): the release's tokenizer `max_length`.
        max_sign_tokens (`int`, *optional*, defaults to 100): the release's sign canvas (`max_gen_len`).
        allow_globals (`Sequence[str]`, *optional*): further pickle globals to read as inert placeholders.

    Returns:
        [`MaDiSConversion`]: the pipeline and the key-by-key report.
    """
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"`src` {str(src)!r} does not exist.")
    base = src if src.is_dir() else src.parent
    # 1. where everything is
    if src.is_file():
        lm_path = src
    elif lm_checkpoint is not None:
        lm_path = _resolve(lm_checkpoint, "", base, "LM checkpoint", "pass --lm-checkpoint")
    else:
        lm_path = _default_lm_checkpoint(base)
    tok_path = None
    if tokenizer_checkpoint is not None and tokenizer_checkpoint is not False:
        tok_path = _resolve(tokenizer_checkpoint, "", base, "tokenizer checkpoint", "pass --tokenizer-checkpoint")
    elif tokenizer_checkpoint is None and (base / CHECKPOINT_DIR / "tokenizer.ckpt").is_file():
        tok_path = base / CHECKPOINT_DIR / "tokenizer.ckpt"
    lm_dir = _resolve(
        language_model_dir, LANGUAGE_MODEL_DIR, base, "language model folder", "pass --language-model-dir"
    )
    stats = {}
    for name, given in (("mean", mean), ("std", std)):
        stats[name] = _resolve(given, f"{name}.pt", base, f"pose {name}", f"pass --{name} (the corpus' {name}.pt)")

    # 2. checkpoints (weights_only) and the id map (no globals)
    report = KeyReport()
    lm_state = load_lightning_state_dict(lm_path, allow_globals)
    vq_parts, lm_keys, head_keys = split_state_dict(lm_state, report)
    if tok_path is not None:
        _add_tokenizer_checkpoint(vq_parts, tok_path, lm_path.name, allow_globals, report)
    if any(p is None for p in vq_parts):
        raise ValueError(f"{lm_path.name} has no (complete) sign tokenizer and no tokenizer checkpoint was given.")
    if not lm_keys:
        raise ValueError(
            f"{lm_path.name} has no `lm.language_model.*` weights: not a MaDiS language model (the SiCLIP evaluator "
            "checkpoint is not converted)."
        )
    if not (lm_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{lm_dir} has no config.json (the Qwen3 backbone's shape); pass --language-model-dir."
        )
    id_map = load_id_map(lm_dir / "map_ids.pkl")

    # 3. models and tokenizer
    part_vqvae = build_part_vqvae(vq_parts, report).eval()
    text = build_text_tokenizer(lm_dir, id_map, model_max_length=max_text_tokens)
    vocab = TheirVocabulary(num_text=text.num_text, part_sizes=list(part_vqvae.config.codebook_sizes))
    backbone = Qwen3Config.from_pretrained(str(lm_dir), local_files_only=True)
    lm = build_lm(
        lm_keys,
        head_keys,
        backbone,
        vocab,
        [part_vqvae.codebook(p) for p in range(3)],
        eos_token_id=text.eos_token_id,
        pad_token_id=text.pad_token_id,
        report=report,
        max_text_tokens=max_text_tokens,
        max_sign_tokens=max_sign_tokens,
    )

    # 4. statistics, scheduler, pipeline folder
    normalizer = PoseNormalizer(feature_dim=SMPLX133_DIM, representation="smplx133")
    with torch.no_grad():
        normalizer.mean.copy_(load_release_statistics(stats["mean"], "mean"))
        normalizer.std.copy_(load_release_statistics(stats["std"], "std") + 1e-10)
        normalizer.num_frames_fitted.fill_(1)
    scheduler = MaskedDiffusionScheduler(
        mask_token_id=lm.config.mask_token_id, eos_token_id=lm.config.eos_token_id, temperature=0.0
    )
    pipe = MaDiSPipeline(
        lm=lm,
        part_vqvae=part_vqvae,
        text_tokenizer=text.tokenizer,
        scheduler=scheduler,
        normalizer=normalizer,
        fps=fps,
        skeleton="smplx133",
    )
    pipe.save_pretrained(str(out_dir))
    notes = []
    if text.unreachable or text.dropped_merges:
        notes.append(
            f"text tokenizer: {text.dropped_merges} BPE merges involve tokens outside map_ids.pkl; "
            f"{len(text.unreachable)} kept tokens are reachable only through them (e.g. {text.unreachable[:3]}), so "
            "texts using them tokenize into smaller pieces than in the release."
        )
    for note in notes:
        logger.warning(note)
    return MaDiSConversion(
        pipeline=pipe,
        stage="sft" if lm.config.sign_embedding == "mop" else "pretrained",
        mapped=dict(report.mapped),
        dropped=dict(report.dropped),
        notes=notes,
    )
