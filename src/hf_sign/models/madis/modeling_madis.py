"""MaDiS' masked diffusion language model: a bidirectional Qwen3 over `[text tokens, <eos>, sign tokens, <eos>]`.

Section 3 of the paper. The backbone is transformers' own `Qwen3Model`, made bidirectional in two places:

1. the attention mask is built with `transformers.masking_utils.create_bidirectional_mask` (padding only, no causal
   triangle) and handed to `Qwen3Model.forward` as the per-layer-type mapping `{"full_attention": mask}`, which is
   the documented way to pass a prepared mask (the model then skips `create_causal_mask`);
2. every `Qwen3Attention` gets `is_causal = False`, because when no position is padded the prepared mask is `None`
   and the SDPA / flash kernels would otherwise fall back to their causal mode.

With `config.bidirectional = False` neither is done: the same model is the causal autoregressive baseline (SOKE
style, with Qwen3's KV cache). The bidirectional model takes an approximate cache instead, for sampling:
[`~canvas_cache.MaskedDiffusionCache`] (a full pass fills it, later passes recompute a few positions against it).

Around the backbone:

* **multi-head part decoding**: the output layer is the (tied) input embedding, as in Qwen3-0.6B; head `p` is that
  layer restricted to part `p`'s codes and `<eos>` (`logits` has shape `(B, L, num_parts, vocab_size)`, `-inf`
  outside a head's ids), so one hidden state predicts the three part tokens of a position together;
* **sign embedding**: `"average"` is the mean of the parts' token embeddings (SOKE, and the pretraining input);
  `"mop"` is the mixture-of-parts layer (eq. in section 3.3): the frozen codebook vectors `c_p` of the VQ-VAE go
  through `FC_p`, a gate `softmax(MLP(cat(c_p)))` weighs them, `E = sum_p g_p FC_p(c_p)`; positions that are not
  sign codes (text, `<mask>`, `<eos>`, padding) use the average;
* **latent heads** `MLP_p`: hidden state -> code space of part `p`, the prediction that `L_lat` compares with the
  codebook vector and that the frozen VQ decoders turn into poses for `L_phy` (`hf_sign.training.madis_losses`).

The token loss of eq. 3 is computed here when `labels` are given: cross-entropy at the masked positions, weighted
by `1 / t`, summed over parts, divided by the number of positions that carry a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoModel,
    PreTrainedModel,  # noqa: F401  (diffusers looks up the loading class by name in this module)
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3Model,
)
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.qwen3.modeling_qwen3 import Qwen3PreTrainedModel
from transformers.utils import ModelOutput, logging

from .canvas_cache import MaskedDiffusionCache
from .configuration_madis import QWEN3_BACKBONE_ARGUMENTS, MaDiSConfig

__all__ = ["MaDiSForMaskedDiffusion", "MaDiSOutput", "MixtureOfPartsEmbedding", "MaDiSConnector"]

logger = logging.get_logger(__name__)


@dataclass
class MaDiSOutput(ModelOutput):
    """Output of [`MaDiSForMaskedDiffusion.forward`].

    Args:
        loss (`torch.FloatTensor`, *optional*): the token loss `L_tok` (when `labels` are given).
        logits (`torch.FloatTensor` of shape `(B, L, num_parts, vocab_size)`): the part heads (`-inf` outside each
            head's ids; the text ids and `<mask>` are never predicted by a part head).
        text_logits (`torch.FloatTensor` of shape `(B, L, vocab_size)`): the unrestricted output layer (`<mask>`
            excluded), which predicts text tokens in pretraining.
        latents (`Tuple[torch.FloatTensor]`, *optional*): per part, `(B, L, code_dim)` from the latent heads (when
            `output_latents=True`).
        gate_weights (`torch.FloatTensor` of shape `(B, L, num_parts)`, *optional*): the MoP gate (zero where a
            position is not a sign token, `None` with the average embedding).
        last_hidden_state (`torch.FloatTensor` of shape `(B, L, hidden_size)`): the backbone's output.
        cache (`transformers.Cache`, *optional*): the KV cache (causal baseline with `use_cache=True`).
    """

    loss: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None
    text_logits: Optional[torch.FloatTensor] = None
    latents: Optional[Tuple[torch.FloatTensor, ...]] = None
    gate_weights: Optional[torch.FloatTensor] = None
    last_hidden_state: Optional[torch.FloatTensor] = None
    cache: Optional[object] = None


class MaDiSConnector(nn.Module):
    """Two-layer SiLU MLP with dropout (the MoP gate and the latent heads; layer names follow the authors' code)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, dropout: float):
        super().__init__()
        self.linear1 = nn.Linear(input_dim, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, output_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.linear2(self.dropout(F.silu(self.linear1(x)))))


class MixtureOfPartsEmbedding(nn.Module):
    """MoP: code vectors of each part -> `FC_p` to the model width, weighted by `softmax(MLP(cat(c_p)))`."""

    def __init__(self, code_dim: int, num_parts: int, hidden_size: int, gate_hidden_size: int, dropout: float):
        super().__init__()
        self.projections = nn.ModuleList([nn.Linear(code_dim, hidden_size, bias=False) for _ in range(num_parts)])
        self.gate = MaDiSConnector(code_dim * num_parts, gate_hidden_size, num_parts, dropout)

    def forward(self, codes: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """`codes`: per part `(N, code_dim)` -> embeddings `(N, hidden_size)` and gate weights `(N, num_parts)`."""
        parts = torch.stack([proj(c) for proj, c in zip(self.projections, codes)], dim=-2)
        gates = torch.softmax(self.gate(torch.cat(codes, dim=-1)), dim=-1)
        return (gates.unsqueeze(-1) * parts).sum(dim=-2), gates


class MaDiSForMaskedDiffusion(Qwen3PreTrainedModel):
    """Bidirectional Qwen3 masked diffusion LM over text and part-wise sign tokens (MaDiS), or, with
    `config.bidirectional=False`, the causal autoregressive baseline on the same backbone.

    The frozen VQ-VAE codebooks are buffers `codebook_{p}` (saved with the model; set them with `set_codebooks`).
    """

    config_class = MaDiSConfig
    base_model_prefix = "model"

    def __init__(self, config: MaDiSConfig):
        super().__init__(config)
        self.model = Qwen3Model(config)
        if config.bidirectional:
            for layer in self.model.layers:
                layer.self_attn.is_causal = False
        for p, size in enumerate(config.part_codebook_sizes):
            self.register_buffer(f"codebook_{p}", torch.zeros(size, config.code_dim))
        self.mop = MixtureOfPartsEmbedding(
            config.code_dim,
            config.num_parts,
            config.hidden_size,
            config.gate_hidden_size or config.hidden_size,
            config.connector_dropout,
        )
        self.latent_heads = nn.ModuleList(
            [
                MaDiSConnector(
                    config.hidden_size,
                    config.latent_head_hidden_size or config.intermediate_size,
                    config.code_dim,
                    config.connector_dropout,
                )
                for _ in range(config.num_parts)
            ]
        )
        self.post_init()

    # ------------------------------------------------------------------------------------------- codebooks
    def codebook(self, part: int) -> torch.Tensor:
        """The frozen code vectors `(part_codebook_sizes[part], code_dim)` of part `part`."""
        return getattr(self, f"codebook_{part}")

    @torch.no_grad()
    def set_codebooks(self, codebooks: List[torch.Tensor]) -> None:
        """Copy the VQ-VAE's codebooks (one `(size, code_dim)` tensor per part) into the model."""
        if len(codebooks) != self.config.num_parts:
            raise ValueError(
                f"`codebooks` needs {self.config.num_parts} tensors (one per part); got {len(codebooks)}."
            )
        for p, book in enumerate(codebooks):
            if tuple(book.shape) != tuple(self.codebook(p).shape):
                raise ValueError(
                    f"`codebooks[{p}]` must have shape {tuple(self.codebook(p).shape)} (part_codebook_sizes x "
                    f"code_dim); got {tuple(book.shape)}."
                )
            self.codebook(p).copy_(book)

    def part_ids_to_codes(self, ids: torch.LongTensor) -> torch.LongTensor:
        """Vocabulary ids `(..., num_parts)` -> code indices per part (`-1` where an id is not a code of its part)."""
        offsets = torch.tensor([r.start for r in self.config.part_token_ranges()], device=ids.device)
        sizes = torch.tensor(self.config.part_codebook_sizes, device=ids.device)
        codes = ids - offsets
        return torch.where((codes >= 0) & (codes < sizes), codes, torch.full_like(codes, -1))

    def head_mask(self, device=None) -> torch.Tensor:
        """`(num_parts, vocab_size)`: 0 where head `p` may predict (part `p`'s codes and `<eos>`), `-inf` elsewhere."""
        # built on the fly (it is tiny) rather than kept as a buffer: it follows the config and is never saved
        mask = torch.full((self.config.num_parts, self.config.vocab_size), -float("inf"), device=device)
        for p, ids in enumerate(self.config.part_token_ranges()):
            mask[p, ids.start : ids.stop] = 0.0
        mask[:, self.config.eos_token_id] = 0.0
        return mask

    # ------------------------------------------------------------------------------------------- embeddings
    def embed(self, input_ids: torch.LongTensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Part-wise ids `(B, L, num_parts)` -> input embeddings `(B, L, hidden_size)` and the MoP gate (or None)."""
        embeds = self.model.embed_tokens(input_ids).mean(dim=-2)
        if self.config.sign_embedding != "mop":
            return embeds, None
        codes = self.part_ids_to_codes(input_ids)
        is_sign = (codes >= 0).all(dim=-1)
        gates = embeds.new_zeros(*input_ids.shape)
        if is_sign.any():
            sign_codes = codes[is_sign]
            vectors = [self.codebook(p)[sign_codes[:, p]].to(embeds.dtype) for p in range(self.config.num_parts)]
            fused, weights = self.mop(vectors)
            embeds = embeds.masked_scatter(is_sign.unsqueeze(-1), fused.to(embeds.dtype))
            gates = gates.masked_scatter(is_sign.unsqueeze(-1), weights.to(gates.dtype))
        return embeds, gates

    # ------------------------------------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        labels: Optional[torch.LongTensor] = None,
        mask_ratio: Optional[torch.Tensor] = None,
        output_latents: bool = False,
        logits_to_keep: int = 0,
        cache=None,
        use_cache: bool = False,
        return_dict: bool = True,
    ) -> Union[MaDiSOutput, tuple]:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(B, L, num_parts)` or `(B, L)`): part-wise ids (a text position
                repeats its id; `(B, L)` is broadcast to every part).
            attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 for real positions, 0 for padding
                (pad text on the left: positions are counted from the first real one).
            position_ids (`torch.LongTensor` of shape `(B, L)`, *optional*): defaults to the running count of real
                positions.
            labels (`torch.LongTensor`, same shape as `input_ids`, *optional*): the clean ids where a prediction is
                trained, `-100` elsewhere; the loss counts the positions where `input_ids` is `<mask>`.
            mask_ratio (`torch.Tensor` of shape `(B,)`, *optional*): the noise level `t` of each row; the loss is
                weighted by `1 / t` (no weight when omitted).
            output_latents (`bool`, *optional*, defaults to `False`): also return the latent heads' outputs.
            logits_to_keep (`int`, *optional*, defaults to 0): compute the logits of the last `logits_to_keep`
                positions only (the sign canvas when sampling, the last position when decoding); 0 keeps all. The
                latents and the loss need every position.
            cache (`transformers.Cache`, *optional*) and use_cache (`bool`, *optional*, defaults to `False`): the KV
                cache of the causal baseline. A bidirectional model has no exact cache; it takes a
                [`~canvas_cache.MaskedDiffusionCache`] (approximate sampling): a fresh one is filled by a full pass,
                a filled one makes this a partial pass, where `input_ids` hold only the positions set with its
                `set_positions`, `position_ids` (required) their real positions and `attention_mask` the padding of
                the whole stored sequence.
            return_dict (`bool`, *optional*, defaults to `True`): return a [`MaDiSOutput`] or a tuple.
        """
        # 1. check the inputs; broadcast text-only ids to every part
        num_parts = self.config.num_parts
        if input_ids.ndim == 2:
            input_ids = input_ids.unsqueeze(-1).expand(-1, -1, num_parts)
        if input_ids.ndim != 3 or input_ids.shape[-1] != num_parts:
            raise ValueError(
                f"`input_ids` must have shape (B, L) or (B, L, {num_parts}); got {tuple(input_ids.shape)}."
            )
        if bool(((input_ids < 0) | (input_ids >= self.config.vocab_size)).any()):
            raise ValueError(f"`input_ids` must be ids in [0, {self.config.vocab_size}).")
        if use_cache and self.config.bidirectional:
            raise ValueError("`use_cache` needs the causal baseline (`config.bidirectional=False`).")
        if self.config.bidirectional and cache is not None and not isinstance(cache, MaskedDiffusionCache):
            raise ValueError(f"A bidirectional model takes a `MaskedDiffusionCache`; got {type(cache).__name__}.")
        batch, length = input_ids.shape[:2]
        # a partial pass (a filled MaskedDiffusionCache) attends over the whole stored sequence
        partial = self.config.bidirectional and cache is not None and cache.is_initialized
        stored = cache.get_seq_length() if partial else length
        if attention_mask is None:
            attention_mask = torch.ones(batch, stored, dtype=torch.long, device=input_ids.device)
        if partial and (position_ids is None or attention_mask.shape != (batch, stored)):
            raise ValueError(
                f"A partial pass needs `position_ids` {(batch, length)} and an `attention_mask` of the stored "
                f"sequence {(batch, stored)}; got {None if position_ids is None else tuple(position_ids.shape)} "
                f"and {tuple(attention_mask.shape)}."
            )
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

        # 2. embed: text, <mask>, <eos> by the token embedding; sign positions by MoP or the part average
        inputs_embeds, gate_weights = self.embed(input_ids)

        # 3. backbone: full attention (padding only) for the masked diffusion model, causal for the baseline
        if self.config.bidirectional:
            mask = create_bidirectional_mask(
                config=self.config, inputs_embeds=inputs_embeds, attention_mask=attention_mask, cache=cache
            )
            backbone_mask = {"full_attention": mask}
        else:
            backbone_mask = attention_mask
        out = self.model(
            inputs_embeds=inputs_embeds,
            attention_mask=backbone_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
        )
        hidden = out.last_hidden_state

        # 4. output layer tied to the input embedding; part heads restricted to their codes and <eos>
        if logits_to_keep and (labels is not None or output_latents):
            raise ValueError("`logits_to_keep` computes part of the logits; not with `labels` or `output_latents`.")
        kept = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
        text_logits = F.linear(kept, self.model.embed_tokens.weight).float()
        text_logits[..., self.config.mask_token_id] = -float("inf")
        logits = text_logits.unsqueeze(2) + self.head_mask(text_logits.device)
        latents = tuple(head(hidden) for head in self.latent_heads) if output_latents else None

        # 5. token loss (eq. 3): masked positions only, 1/t-weighted, per labelled position
        loss = None
        if labels is not None:
            loss = self.token_loss(input_ids, labels, logits, text_logits, mask_ratio)

        if not return_dict:
            return tuple(v for v in (loss, logits, text_logits, latents, gate_weights, hidden) if v is not None)
        return MaDiSOutput(
            loss=loss,
            logits=logits,
            text_logits=text_logits,
            latents=latents,
            gate_weights=gate_weights,
            last_hidden_state=hidden,
            cache=out.cache if use_cache else None,
        )

    def token_loss(
        self,
        input_ids: torch.LongTensor,
        labels: torch.LongTensor,
        logits: torch.Tensor,
        text_logits: torch.Tensor,
        mask_ratio: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """`L_tok`: masked CE (part heads at sign codes and `<eos>`, the full layer at text ids), 1/t-weighted.

        Args:
            input_ids, labels (`torch.LongTensor` of shape `(B, L, num_parts)`): the model input and the clean ids
                (`-100` where nothing is trained); labels of a text position are its text id on part 0 and `-100`
                on the other parts.
            logits (`(B, L, num_parts, V)`), text_logits (`(B, L, V)`): the model's outputs.
            mask_ratio (`torch.Tensor` of shape `(B,)`, *optional*): `t` per row.
        """
        if labels.ndim == 2:
            labels = labels.unsqueeze(-1).expand_as(input_ids)
        if labels.shape != input_ids.shape:
            raise ValueError(
                f"`labels` must have the shape of `input_ids` {tuple(input_ids.shape)}; got {tuple(labels.shape)}."
            )
        masked = (input_ids == self.config.mask_token_id).all(dim=-1, keepdim=True).expand_as(labels)
        trained = (labels != -100) & masked
        is_text = (labels < self.config.text_vocab_size) & (labels != self.config.eos_token_id)
        safe = labels.clamp(min=0)
        per_part = logits.log_softmax(-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        per_text = text_logits.log_softmax(-1).gather(-1, safe[..., 0:1]).expand_as(per_part)
        nll = -torch.where(is_text, per_text, per_part)
        nll = torch.where(trained, nll, torch.zeros_like(nll))
        if mask_ratio is not None:
            nll = nll / mask_ratio.to(nll.dtype).clamp_min(1e-3).view(-1, 1, 1)
        labelled_positions = (labels != -100).any(dim=-1).sum().clamp_min(1)
        return nll.sum() / labelled_positions

    # ------------------------------------------------------------------------------------------- from a causal LM
    @classmethod
    def from_causal_lm(
        cls,
        pretrained_model_name_or_path: Union[str, Path],
        part_codebook_sizes: Optional[List[int]] = None,
        mask_token_id: Optional[int] = None,
        **config_kwargs,
    ) -> "MaDiSForMaskedDiffusion":
        """Turn a local causal Qwen3 LM folder (e.g. Qwen3-0.6B-Base) bidirectional, as the paper does.

        The backbone weights are copied; the text vocabulary is the LM's (`text_vocab_size = vocab_size`), followed
        by one `<mask>` row when `mask_token_id` is not given, then the part codes (new rows, initialised like the
        model). The output layer is tied to the embedding, so an untied `lm_head` is dropped (with a warning). Only
        safetensors weights are read.

        Args:
            pretrained_model_name_or_path (`str` or `Path`): a local folder with a Qwen3 `config.json` and
                safetensors weights.
            part_codebook_sizes (`List[int]`, *optional*): codes per part (defaults to `[96, 192, 192]`).
            mask_token_id (`int`, *optional*): an existing text id to use as `<mask>`; by default one is appended.
            config_kwargs: further `MaDiSConfig` arguments (`code_dim`, `max_sign_tokens`, ...).
        """
        lm = Qwen3ForCausalLM.from_pretrained(
            pretrained_model_name_or_path, use_safetensors=True, local_files_only=True
        )
        src: Qwen3Config = lm.config
        lm_vocab = src.vocab_size
        text_vocab = lm_vocab if mask_token_id is not None else lm_vocab + 1
        backbone = {k: getattr(src, k) for k in QWEN3_BACKBONE_ARGUMENTS}
        eos = src.eos_token_id[0] if isinstance(src.eos_token_id, list) else src.eos_token_id
        pad = src.pad_token_id if src.pad_token_id is not None else eos
        config = MaDiSConfig(
            text_vocab_size=text_vocab,
            part_codebook_sizes=part_codebook_sizes,
            mask_token_id=mask_token_id if mask_token_id is not None else lm_vocab,
            eos_token_id=config_kwargs.pop("eos_token_id", eos),
            pad_token_id=config_kwargs.pop("pad_token_id", pad),
            **{**backbone, **config_kwargs},
        )
        model = cls(config)
        with torch.no_grad():
            missing, unexpected = model.model.load_state_dict(
                {k: v for k, v in lm.model.state_dict().items() if k != "embed_tokens.weight"}, strict=False
            )
            if [k for k in missing if k != "embed_tokens.weight"] or unexpected:
                raise ValueError(f"The causal LM's backbone does not fit: missing {missing}, unexpected {unexpected}.")
            model.model.embed_tokens.weight[:lm_vocab] = lm.model.embed_tokens.weight
        head = lm.get_output_embeddings()
        if head is not None and head.weight.data_ptr() != lm.model.embed_tokens.weight.data_ptr():
            if not torch.equal(head.weight, lm.model.embed_tokens.weight):
                logger.warning("The causal LM has an untied `lm_head`; MaDiS ties its output layer to the embedding.")
        return model


AutoModel.register(MaDiSConfig, MaDiSForMaskedDiffusion, exist_ok=True)
