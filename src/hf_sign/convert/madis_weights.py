"""Key-by-key mapping of the released MaDiS state dicts onto `PartVQVAE` and `MaDiSForMaskedDiffusion`.

Their Lightning module (`mGPT.models.madis.MaDiS`) holds the three part VQ-VAEs as `vae` (upper body + jaw +
expression), `hand_vae` and `rhand_vae` (the tokenizer checkpoint may call the first `motion_vae`), the language model
as `lm.language_model` (`MaskedDiffusionLanguageModel`: the Qwen3 decoder `main_lm`, the frozen codebooks
`{body,lhand,rhand}_codebook`, the MoP projections `*_emb_mapper` and gate `gate_net`) and the latent heads
`mlp_{body,lhand,rhand}`. Mapping (part order body, left hand, right hand = `p` 0, 1, 2):

| theirs                                        | ours                                                  |
|-----------------------------------------------|-------------------------------------------------------|
| `{vae,hand_vae,rhand_vae}.encoder.model.*`    | `PartVQVAE` `encoders.{p}.model.*`                    |
| `{vae,hand_vae,rhand_vae}.decoder.model.*`    | `PartVQVAE` `decoders.{p}.model.*`                    |
| `{vae,hand_vae,rhand_vae}.quantizer.codebook` | `PartVQVAE` `quantizers.{p}.codebook`                 |
| `lm.language_model.main_lm.*`                 | `model.*` (`embed_tokens` rows re-indexed, see below) |
| `lm.language_model.{part}_codebook`           | `codebook_{p}`                                        |
| `lm.language_model.{part}_emb_mapper.weight`  | `mop.projections.{p}.weight`                          |
| `lm.language_model.gate_net.linear{1,2}.*`    | `mop.gate.linear{1,2}.*`                              |
| `mlp_{part}.linear{1,2}.*`                    | `latent_heads.{p}.linear{1,2}.*`                      |

Deliberately dropped (`DROPPED`): `_losses.*` and `metrics.*` (logging state), `main_lm.rotary_emb.inv_freq` (derived
from the config), an all-zero `final_logits_bias`, SiCLIP's `text_proj`, `pose_proj`, `logit_scale` (the evaluator,
not the generator). Any other key raises, as does a missing one or a shape that does not fit.

Vocabulary. Their embedding rows are: the text tokens (embedding ids `[0, N)` of `map_ids.pkl`), `<mask>` (`N`),
then for each part its `n_p` codes followed by 3 ids that the release never trains as targets (MotionGPT's
start / end / pad of a motion). Ours is the text ids `[0, N]` (`<mask>` included: `text_vocab_size = N + 1`), then
each part's `n_p` codes contiguously: the 3 extra rows per part are dropped, everything else keeps its row.

Where the layouts differ (and the converted model can therefore differ from theirs):

* the 3 extra ids per part: their part heads may predict them (they are in each head's allowed set); ours cannot.
  Since they are never targets their probability is low; where one would win the argmax, their decoding clamps it
  to the last code while ours takes the best real code, and the confidences (softmax over the head) differ by the
  probability mass those ids carried;
* their heads also allow `pad` when it differs from `eos` (Qwen3-Base uses `<|endoftext|>` for both);
* their `final_logits_bias` is a constant zero tensor kept outside the state dict; a non-zero one is refused;
* dropout: same placement and rate in the MoP gate and the latent heads (`dropout1`/`dropout2` vs one module), so
  nothing differs; the VQ-VAEs have none.
* the release's pretraining checkpoint has no MoP weights (their fine-tuning initialises them): it converts with
  `sign_embedding="average"` (the pretraining input), fresh MoP layers and the VQ codebooks as `codebook_{p}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Sequence

import torch
from transformers import Qwen3Config

from ..models.madis import MaDiSConfig, MaDiSForMaskedDiffusion, PartVQVAE

__all__ = [
    "DROPPED",
    "KeyReport",
    "TheirVocabulary",
    "build_lm",
    "build_part_vqvae",
    "check_same_tensors",
    "split_state_dict",
]

VQ_PREFIXES = (("vae.", "motion_vae."), ("hand_vae.",), ("rhand_vae.",))  # per part, checked rhand/hand first
LM_PREFIX = "lm.language_model."
THEIR_PARTS = ("body", "lhand", "rhand")
NUM_EXTRA_IDS = 3  # per part, after its codes: never trained targets of the release
DROPPED = {
    "_losses.": "running sums of the training losses (logging state)",
    "metrics.": "evaluation metric states",
    "text_proj.": "SiCLIP evaluator (text head), not part of generation",
    "pose_proj.": "SiCLIP evaluator (pose head), not part of generation",
    "logit_scale": "SiCLIP evaluator temperature, not part of generation",
}
MOP_KEYS = (
    tuple(f"{LM_PREFIX}{p}_codebook" for p in THEIR_PARTS)
    + tuple(f"{LM_PREFIX}{p}_emb_mapper.weight" for p in THEIR_PARTS)
    + tuple(f"{LM_PREFIX}gate_net.linear{i}.{w}" for i in (1, 2) for w in ("weight", "bias"))
)


@dataclass
class KeyReport:
    """What happened to each key of a source state dict: `mapped` (theirs -> ours) and `dropped` (key -> why)."""

    mapped: Dict[str, str] = field(default_factory=dict)
    dropped: Dict[str, str] = field(default_factory=dict)


@dataclass
class TheirVocabulary:
    """The release's embedding layout: `num_text` text rows, `<mask>`, then per part its codes and 3 extra ids."""

    num_text: int
    part_sizes: List[int]

    @property
    def mask_id(self) -> int:
        return self.num_text

    @property
    def num_rows(self) -> int:
        return self.num_text + 1 + sum(n + NUM_EXTRA_IDS for n in self.part_sizes)

    def part_start(self, part: int) -> int:
        """Their embedding id of part `part`'s code 0."""
        return self.num_text + 1 + sum(n + NUM_EXTRA_IDS for n in self.part_sizes[:part])

    def our_rows(self) -> torch.LongTensor:
        """For every id of our vocabulary (text + `<mask>`, then each part's codes), its row in theirs."""
        rows = list(range(self.num_text + 1))
        for p, n in enumerate(self.part_sizes):
            rows += range(self.part_start(p), self.part_start(p) + n)
        return torch.tensor(rows, dtype=torch.long)


def split_state_dict(state: Dict[str, torch.Tensor], report: KeyReport):
    """Their state dict -> (per part the VQ-VAE keys without prefix (or None), LM keys, latent-head keys).

    Keys of `DROPPED` go to `report.dropped`; anything that is none of these raises.
    """
    parts: List[Dict[str, torch.Tensor]] = [{}, {}, {}]
    lm: Dict[str, torch.Tensor] = {}
    heads: Dict[str, torch.Tensor] = {}
    unexpected = []
    for key, value in state.items():
        dropped = next((why for prefix, why in DROPPED.items() if key.startswith(prefix)), None)
        part = next((p for p in (2, 1, 0) if key.startswith(VQ_PREFIXES[p])), None)
        if dropped is not None:
            report.dropped[key] = dropped
        elif part is not None:
            prefix = next(x for x in VQ_PREFIXES[part] if key.startswith(x))
            parts[part][key[len(prefix) :]] = value
        elif key.startswith(LM_PREFIX):
            lm[key] = value
        elif re.match(r"mlp_(body|lhand|rhand)\.", key):
            heads[key] = value
        else:
            unexpected.append(key)
    if unexpected and not lm and any(k.startswith(("text_proj.", "pose_proj.")) for k in state):
        raise ValueError(
            "This is the SiCLIP evaluator checkpoint (text_proj / pose_proj over a causal Qwen3), not a MaDiS "
            "generator; the converter does not convert it."
        )
    if unexpected:
        raise ValueError(
            f"Unexpected key(s) in the checkpoint: {', '.join(sorted(unexpected)[:10])}"
            f"{' ...' if len(unexpected) > 10 else ''}; the converter maps MaDiS' vae / hand_vae / rhand_vae, "
            f"lm.language_model, mlp_* and drops {', '.join(DROPPED)}."
        )
    return [p or None for p in parts], lm, heads


def _load(module: torch.nn.Module, mapped: Dict[str, torch.Tensor], sources: Dict[str, str], skip=()) -> None:
    """Copy `mapped` (our key -> tensor) into `module` after checking that the keys and shapes are exactly ours."""
    ours = {k: v for k, v in module.state_dict().items() if not any(k.startswith(s) for s in skip)}
    missing = sorted(set(ours) - set(mapped))
    extra = sorted(set(mapped) - set(ours))
    if missing or extra:
        raise ValueError(
            f"The checkpoint does not fit {type(module).__name__}: missing {missing[:10]}, unexpected "
            f"{[sources.get(k, k) for k in extra][:10]} (from {len(mapped)} mapped tensors)."
        )
    for key, value in mapped.items():
        if tuple(value.shape) != tuple(ours[key].shape):
            raise ValueError(
                f"`{sources.get(key, key)}` has shape {tuple(value.shape)}; {type(module).__name__} `{key}` needs "
                f"{tuple(ours[key].shape)}."
            )
    module.load_state_dict(mapped, strict=False)


def _count(keys: Sequence[str], pattern: str) -> int:
    return len({m.group(1) for k in keys for m in [re.match(pattern, k)] if m})


def build_part_vqvae(parts: Sequence[Dict[str, torch.Tensor]], report: KeyReport, skeleton: str = "smplx133"):
    """A `PartVQVAE` holding their three VQ-VAEs (sizes read from the tensors, `reverse_encoder_dilations=True`)."""
    for p, name in enumerate(("vae", "hand_vae", "rhand_vae")):
        for key in ("encoder.model.0.weight", "quantizer.codebook"):
            if key not in parts[p]:
                raise ValueError(f"The checkpoint has no `{name}.{key}` (part {p} of the sign tokenizer).")
    body = parts[0]
    num_down = _count(list(body), r"encoder\.model\.(\d+)\.0\.weight$")
    num_res = _count(list(body), r"encoder\.model\.2\.1\.model\.(\d+)\.conv1\.weight$")
    if num_down < 1 or num_res < 1:
        raise ValueError(
            "`vae.encoder` does not have the T2M-GPT layout (stride-2 stages `encoder.model.<i>.0` followed by "
            "residual blocks `encoder.model.<i>.1.model.<j>.conv1`)."
        )
    vq = PartVQVAE(
        skeleton=skeleton,
        codebook_sizes=tuple(int(parts[p]["quantizer.codebook"].shape[0]) for p in range(3)),
        code_dim=int(body["quantizer.codebook"].shape[1]),
        hidden_dim=int(body["encoder.model.0.weight"].shape[0]),
        num_res_blocks=num_res,
        downsample_rate=2**num_down,
        commitment_weight=0.02,
        ema_decay=0.99,
        dead_code_threshold=1.0,
        reverse_encoder_dilations=True,
    )
    mapped, sources = {}, {}
    for p, name in enumerate(("vae", "hand_vae", "rhand_vae")):
        for key, value in parts[p].items():
            ours = re.sub(r"^encoder\.", f"encoders.{p}.", key)
            ours = re.sub(r"^decoder\.", f"decoders.{p}.", ours)
            ours = re.sub(r"^quantizer\.", f"quantizers.{p}.", ours)
            mapped[ours], sources[ours] = value, f"{name}.{key}"
    _load(vq, mapped, sources, skip=tuple(f"quantizers.{p}.ema_" for p in range(3)))
    with torch.no_grad():  # EMA state as the release starts it: unit usage, sums = the codes (no dead codes)
        for q in vq.quantizers:
            q.ema_cluster_size.fill_(1.0)
            q.ema_embed_sum.copy_(q.codebook)
    report.mapped.update({sources[k]: f"part_vqvae.{k}" for k in mapped})
    return vq


def build_lm(
    lm_state: Dict[str, torch.Tensor],
    head_state: Dict[str, torch.Tensor],
    backbone: Qwen3Config,
    vocab: TheirVocabulary,
    codebooks: Sequence[torch.Tensor],
    eos_token_id: int,
    pad_token_id: int,
    report: KeyReport,
    max_text_tokens: int = 256,
    max_sign_tokens: int = 100,
) -> MaDiSForMaskedDiffusion:
    """`MaDiSForMaskedDiffusion` holding their language model; `sign_embedding="mop"` when the checkpoint has the
    MoP weights (fine-tuned), `"average"` when it has none of them (pretrained)."""
    present = [k for k in MOP_KEYS if k in lm_state]
    if present and len(present) != len(MOP_KEYS):
        raise ValueError(
            f"The checkpoint has only part of the MoP layer: missing {sorted(set(MOP_KEYS) - set(present))}."
        )
    embed_key = f"{LM_PREFIX}main_lm.embed_tokens.weight"
    if embed_key not in lm_state:
        raise ValueError(f"The checkpoint has no `{embed_key}`: it is not a MaDiS language model checkpoint.")
    embed = lm_state[embed_key]
    if embed.shape[0] != vocab.num_rows:
        raise ValueError(
            f"`{embed_key}` has {embed.shape[0]} rows; the release's layout with {vocab.num_text} text ids "
            f"(map_ids.pkl), <mask> and {vocab.part_sizes} codes (+{NUM_EXTRA_IDS} each) needs {vocab.num_rows}."
        )
    gate = lm_state.get(f"{LM_PREFIX}gate_net.linear1.weight")
    head = head_state.get("mlp_body.linear1.weight")
    backbone_keys = (
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "head_dim", "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_parameters", "attention_bias",
        "initializer_range",
    )  # fmt: skip
    config = MaDiSConfig(
        text_vocab_size=vocab.num_text + 1,
        part_codebook_sizes=list(vocab.part_sizes),
        code_dim=int(codebooks[0].shape[1]),
        mask_token_id=vocab.mask_id,
        sign_embedding="mop" if present else "average",
        gate_hidden_size=int(gate.shape[0]) if gate is not None else None,
        latent_head_hidden_size=int(head.shape[0]) if head is not None else None,
        connector_dropout=0.1,
        max_text_tokens=max_text_tokens,
        max_sign_tokens=max_sign_tokens,
        bidirectional=True,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        tie_word_embeddings=True,
        **{k: getattr(backbone, k) for k in backbone_keys if getattr(backbone, k, None) is not None},
    )
    model = MaDiSForMaskedDiffusion(config)
    mapped, sources = {}, {}

    def put(ours: str, theirs: str, value: torch.Tensor) -> None:
        mapped[ours], sources[ours] = value, theirs

    bias_key = f"{LM_PREFIX}final_logits_bias"
    for key, value in lm_state.items():
        rest = key[len(LM_PREFIX) :]
        if rest == "main_lm.rotary_emb.inv_freq":
            report.dropped[key] = "rotary frequencies, recomputed from the config's rope parameters"
        elif key == bias_key:
            if bool(value.ne(0).any()):
                raise ValueError(f"`{key}` is not zero; MaDiSForMaskedDiffusion has no output bias to hold it.")
            report.dropped[key] = "zero output bias (the release adds 0 to every logit)"
        elif key == embed_key:
            put("model.embed_tokens.weight", key, value[vocab.our_rows()])
        elif rest.startswith("main_lm."):
            put("model." + rest[len("main_lm.") :], key, value)
        elif (m := re.fullmatch(r"(body|lhand|rhand)_codebook", rest)) is not None:
            put(f"codebook_{THEIR_PARTS.index(m.group(1))}", key, value)
        elif (m := re.fullmatch(r"(body|lhand|rhand)_emb_mapper\.weight", rest)) is not None:
            put(f"mop.projections.{THEIR_PARTS.index(m.group(1))}.weight", key, value)
        elif (m := re.fullmatch(r"gate_net\.(linear[12]\.(?:weight|bias))", rest)) is not None:
            put(f"mop.gate.{m.group(1)}", key, value)
        else:
            raise ValueError(
                f"Unexpected key `{key}` in the language model; no place for it in MaDiSForMaskedDiffusion."
            )
    for key, value in head_state.items():
        m = re.fullmatch(r"mlp_(body|lhand|rhand)\.(linear[12]\.(?:weight|bias))", key)
        if m is None:
            raise ValueError(f"Unexpected key `{key}`: the latent heads are mlp_{{body,lhand,rhand}}.linear{{1,2}}.")
        put(f"latent_heads.{THEIR_PARTS.index(m.group(1))}.{m.group(2)}", key, value)
    skip = ()
    if not present:  # pretrained: MoP untrained (kept at its initialisation), codebooks from the VQ-VAE
        skip = ("mop.",)
        for p, book in enumerate(codebooks):
            put(f"codebook_{p}", f"VQ-VAE codebook {p}", book)
    _load(model, mapped, sources, skip=skip)
    report.mapped.update({sources[k]: f"lm.{k}" for k in mapped if not sources[k].startswith("VQ-VAE")})
    return model.eval()


def check_same_tensors(reference: Dict[str, torch.Tensor], other: Dict[str, torch.Tensor], what: str) -> None:
    """Raise when two copies of the same weights (e.g. the tokenizer checkpoint and the LM checkpoint) differ."""
    if set(reference) != set(other):
        diff = sorted(set(reference) ^ set(other))
        raise ValueError(f"{what}: the two checkpoints hold different keys, e.g. {diff[:5]}.")
    for key in sorted(reference):
        a, b = reference[key], other[key]
        if a.shape != b.shape or not torch.equal(a, b.to(a.dtype)):
            raise ValueError(f"{what}: `{key}` differs between the two checkpoints.")
