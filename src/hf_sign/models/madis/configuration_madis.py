"""Configuration of MaDiS' masked diffusion language model: a `Qwen3Config` plus the sign vocabulary and heads.

One vocabulary serves text and signs (as in the authors' code): ids `[0, text_vocab_size)` are the text tokenizer's
(its `<pad>`, `<unk>`, `<mask>` and `<eos>` included), then come the codes of each part's VQ-VAE codebook in part
order (upper body + face, left hand, right hand). A sign position holds one id per part; a text position repeats its
id across the parts.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from transformers import AutoConfig, Qwen3Config

__all__ = ["MaDiSConfig", "QWEN3_BACKBONE_ARGUMENTS", "SIGN_EMBEDDINGS"]

SIGN_EMBEDDINGS = ("mop", "average")

# The Qwen3 backbone arguments `MaDiSConfig` passes on to `Qwen3Config`, which the training config's `lm`
# section sets and `MaDiSForMaskedDiffusion.from_causal_lm` copies from a causal LM.
QWEN3_BACKBONE_ARGUMENTS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "max_position_embeddings",
    "initializer_range",
    "rms_norm_eps",
    "rope_parameters",
    "attention_bias",
    "attention_dropout",
)


class MaDiSConfig(Qwen3Config):
    r"""Configuration of [`MaDiSForMaskedDiffusion`].

    The backbone arguments are `Qwen3Config`'s (`hidden_size`, `intermediate_size`, `num_hidden_layers`,
    `num_attention_heads`, `num_key_value_heads`, `head_dim`, `rope_parameters`, `rms_norm_eps`, ...); the paper's
    Qwen3-0.6B-Base is `hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
    num_key_value_heads=8, head_dim=128` (`hf_sign/configs/madis/paper.yaml`). `vocab_size` is derived:
    `text_vocab_size + sum(part_codebook_sizes)`.

    Args:
        text_vocab_size (`int`, *optional*, defaults to 1000): size of the text tokenizer's vocabulary; text ids are
            `[0, text_vocab_size)`.
        part_codebook_sizes (`List[int]`, *optional*, defaults to `[96, 192, 192]`): codes per part (the VQ-VAE's
            `codebook_sizes`); part `p`'s code `c` has id `part_token_offset(p) + c`.
        code_dim (`int`, *optional*, defaults to 64): dimension of a VQ-VAE code vector (the MoP input and the target
            of the latent heads).
        mask_token_id (`int`, *optional*, defaults to 2): the `<mask>` id (a text tokenizer id).
        sign_embedding (`str`, *optional*, defaults to `"mop"`): how the part ids of a sign position become one input
            embedding: `"mop"` (mixture of parts: frozen codebook vectors -> `FC_p`, gated by `softmax(MLP(concat))`)
            or `"average"` (the mean of the parts' token embeddings, SOKE's layer and the pretraining input).
        gate_hidden_size (`int`, *optional*): hidden width of the MoP gate MLP; defaults to `hidden_size`.
        latent_head_hidden_size (`int`, *optional*): hidden width of the latent heads `MLP_p`; defaults to
            `intermediate_size`.
        connector_dropout (`float`, *optional*, defaults to 0.1): dropout of the gate MLP and the latent heads.
        max_text_tokens (`int`, *optional*, defaults to 64): longest text (in tokens, `<eos>` included) the pipeline
            accepts.
        max_sign_tokens (`int`, *optional*, defaults to 100): `M`, the sign canvas the sampler fills (the paper's
            100 tokens = 400 frames); training sequences are cut to `M - 1` tokens plus `<eos>`.
        bidirectional (`bool`, *optional*, defaults to `True`): full attention (the masked diffusion model); `False`
            keeps Qwen3's causal attention and KV cache (the autoregressive baseline on the same backbone).
        kwargs: every `Qwen3Config` argument. `eos_token_id` (default 3) and `pad_token_id` (default 0) are the text
            tokenizer's; `tie_word_embeddings` defaults to `True` (the output layer is the input embedding, as in
            Qwen3-0.6B and the authors' code).
    """

    model_type = "hf_sign_madis"

    def __init__(
        self,
        text_vocab_size: int = 1000,
        part_codebook_sizes: Optional[Sequence[int]] = None,
        code_dim: int = 64,
        mask_token_id: int = 2,
        sign_embedding: str = "mop",
        gate_hidden_size: Optional[int] = None,
        latent_head_hidden_size: Optional[int] = None,
        connector_dropout: float = 0.1,
        max_text_tokens: int = 64,
        max_sign_tokens: int = 100,
        bidirectional: bool = True,
        **kwargs,
    ):
        sizes = [int(s) for s in (part_codebook_sizes if part_codebook_sizes is not None else (96, 192, 192))]
        if not sizes or any(s <= 0 for s in sizes):
            raise ValueError(f"`part_codebook_sizes` must be positive ints, one per part; got {part_codebook_sizes}.")
        if sign_embedding not in SIGN_EMBEDDINGS:
            raise ValueError(f"`sign_embedding` must be one of {SIGN_EMBEDDINGS}; got {sign_embedding!r}.")
        if int(text_vocab_size) <= 0:
            raise ValueError(f"`text_vocab_size` must be a positive int; got {text_vocab_size}.")
        kwargs.setdefault("eos_token_id", 3)
        kwargs.setdefault("pad_token_id", 0)
        kwargs.setdefault("tie_word_embeddings", True)
        for name in ("mask_token_id", "eos_token_id", "pad_token_id"):
            value = mask_token_id if name == "mask_token_id" else kwargs[name]
            if not isinstance(value, int) or not 0 <= value < int(text_vocab_size):
                raise ValueError(f"`{name}` must be a text token id in [0, {text_vocab_size}); got {value!r}.")
        vocab_size = int(text_vocab_size) + sum(sizes)
        if kwargs.get("vocab_size", vocab_size) != vocab_size:
            raise ValueError(
                f"`vocab_size` is text_vocab_size + sum(part_codebook_sizes) = {vocab_size}; got "
                f"{kwargs['vocab_size']}."
            )
        kwargs["vocab_size"] = vocab_size
        if int(max_sign_tokens) < 2 or int(max_text_tokens) < 1:
            raise ValueError(
                f"`max_sign_tokens` must be >= 2 and `max_text_tokens` >= 1; got {max_sign_tokens}, {max_text_tokens}."
            )
        self.text_vocab_size = int(text_vocab_size)
        self.part_codebook_sizes = sizes
        self.code_dim = int(code_dim)
        self.mask_token_id = int(mask_token_id)
        self.sign_embedding = sign_embedding
        self.gate_hidden_size = gate_hidden_size
        self.latent_head_hidden_size = latent_head_hidden_size
        self.connector_dropout = float(connector_dropout)
        self.max_text_tokens = int(max_text_tokens)
        self.max_sign_tokens = int(max_sign_tokens)
        self.bidirectional = bool(bidirectional)
        super().__init__(**kwargs)

    @property
    def num_parts(self) -> int:
        return len(self.part_codebook_sizes)

    def part_token_offset(self, part: int) -> int:
        """The id of part `part`'s code 0."""
        if not 0 <= part < self.num_parts:
            raise ValueError(f"`part` must be in [0, {self.num_parts}); got {part}.")
        return self.text_vocab_size + sum(self.part_codebook_sizes[:part])

    def part_token_ranges(self) -> List[range]:
        """The ids of each part's codes."""
        return [
            range(self.part_token_offset(p), self.part_token_offset(p) + n)
            for p, n in enumerate(self.part_codebook_sizes)
        ]


AutoConfig.register(MaDiSConfig.model_type, MaDiSConfig, exist_ok=True)
