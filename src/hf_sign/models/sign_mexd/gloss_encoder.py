"""Sign-MExD's gloss encoder (Sec. II-B): a transformers `CLIPTextModel` over a word-level gloss tokenizer.

The paper conditions the denoiser on "a CLIP-based gloss encoder E(g)". Glosses are a closed vocabulary of sign
names, not English text, so the encoder is a `CLIPTextModel` whose vocabulary is the corpus' glosses, built here
from scratch (and trained with the denoiser); a pretrained CLIP's BPE vocabulary would split `NORDWEST` or
`WECHSELHAFT` into meaningless pieces.

Tokenizer (`build_gloss_tokenizer`): a `tokenizers` WordLevel model wrapped as `PreTrainedTokenizerFast`. A gloss
string is NFKC-normalised, upper-cased and split on whitespace, one token per gloss (`"weather tomorrow"` and
`"WEATHER TOMORROW"` are the same two tokens; `NEXT-YEAR` and `BAG+` stay whole). Every encoding is
`[BOS] glosses [EOS]`. Ids: `[PAD]` 0, `[UNK]` 1, `[BOS]` 2, `[EOS]` 3, then the glosses by decreasing corpus
frequency (ties alphabetically), so the same corpus always gives the same ids. **A gloss absent from the corpus maps
to `[UNK]` (id 1)**: the model has no embedding for it; `unknown_glosses` lists them so a pipeline can warn or
refuse. Saved and loaded with `save_pretrained` / `from_pretrained` (`tokenizer.json`).

Encoder (`build_gloss_encoder`): `CLIPTextConfig` sized from the tokenizer (`vocab_size = len(tokenizer)`) with
`pad_token_id`, `bos_token_id` and `eos_token_id` set to the tokenizer's. `eos_token_id` is 3, not 2: transformers
treats a CLIP config whose `eos_token_id` is 2 as a legacy one and pools the token with the highest id instead of
the first `[EOS]`.

Causal mask: `CLIPTextModel` always applies a causal mask (as CLIP does), so the state of gloss `i` sees only
`[BOS]` and glosses `<= i`; only `[EOS]` (and the pooled output) has seen the whole sequence. This suits Sign-MExD:
the denoiser cross-attends to *all* the token states (the sentence context reaches it through the later tokens and
`[EOS]`), each gloss's own state stays dominated by that gloss (what the routing map of Fig. 3 reads per gloss),
and with right padding real tokens never see a `[PAD]`, so padding never changes a real token's state.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, List, Union

from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

__all__ = [
    "GLOSS_SPECIAL_TOKENS",
    "build_gloss_tokenizer",
    "build_gloss_encoder",
    "normalize_gloss",
    "unknown_glosses",
]

GLOSS_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")


def normalize_gloss(gloss: str) -> str:
    """The form a gloss is looked up under: NFKC, upper case, surrounding whitespace removed."""
    import unicodedata

    return unicodedata.normalize("NFKC", gloss).upper().strip()


def _gloss_words(glosses: Union[str, Iterable[str]], name: str) -> List[str]:
    """Split gloss strings (or one string) into normalised glosses, refusing non-strings."""
    if isinstance(glosses, str):
        glosses = [glosses]
    words = []
    for k, g in enumerate(glosses):
        if not isinstance(g, str):
            raise ValueError(f"`{name}[{k}]` must be a string of glosses; got {type(g).__name__}.")
        words += normalize_gloss(g).split()
    return words


def build_gloss_tokenizer(glosses: Iterable[str], model_max_length: int = 64) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose vocabulary is the glosses found in `glosses` (see the module docstring).

    Args:
        glosses (`Iterable[str]`): gloss strings of the training corpus, e.g. `["WEATHER TOMORROW RAIN", ...]`
            (glosses separated by whitespace; a single gloss per string works as well).
        model_max_length (`int`, *optional*, defaults to 64): the longest encoding in tokens, `[BOS]` and `[EOS]`
            included (the gloss encoder's `max_position_embeddings` must be at least this).

    Raises:
        `ValueError`: `glosses` holds no gloss at all, an item is not a string, or `model_max_length < 3`.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    if model_max_length < 3:
        raise ValueError(f"`model_max_length` must be >= 3 ([BOS] gloss [EOS]); got {model_max_length}.")
    counts = Counter(_gloss_words(glosses, "glosses"))
    if not counts:
        raise ValueError("`glosses` holds no gloss; the gloss tokenizer is built from the corpus' gloss sequences.")
    vocab = {t: i for i, t in enumerate(GLOSS_SPECIAL_TOKENS)}
    for gloss, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        vocab.setdefault(gloss, len(vocab))

    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    # `tokenizers` has no upper-casing normaliser: one `Replace` per cased letter of the vocabulary maps any casing
    # of a known gloss onto it (a gloss holding any other letter is not in the vocabulary, and is `[UNK]` anyway)
    letters = sorted({ch for gloss in counts for c in gloss for ch in (c, c.lower()) if ch.upper() != ch})
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFKC()] + [normalizers.Replace(ch, ch.upper()) for ch in letters]
    )
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(list(GLOSS_SPECIAL_TOKENS))
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", vocab["[BOS]"]), ("[EOS]", vocab["[EOS]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="[BOS]",
        eos_token="[EOS]",
        unk_token="[UNK]",
        pad_token="[PAD]",
        model_max_length=model_max_length,
        padding_side="right",
    )


def unknown_glosses(tokenizer: PreTrainedTokenizerFast, glosses: Union[str, Iterable[str]]) -> List[str]:
    """The glosses of `glosses` (a gloss string or several) that `tokenizer` maps to `[UNK]`, in order, normalised.

    A special token written as a gloss (`"[PAD]"`) counts as unknown: it is no sign.
    """
    vocab = tokenizer.get_vocab()
    return [g for g in _gloss_words(glosses, "glosses") if g not in vocab or g in GLOSS_SPECIAL_TOKENS]


def build_gloss_encoder(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    intermediate_size: int,
    max_position_embeddings: int,
) -> CLIPTextModel:
    """A randomly initialised `CLIPTextModel` for `tokenizer`'s glosses (see the module docstring).

    Args:
        tokenizer (`PreTrainedTokenizerFast`): from `build_gloss_tokenizer`; gives `vocab_size` and the special ids.
        hidden_size (`int`): width of the token states (the denoiser's `cross_attention_dim`).
        num_hidden_layers (`int`): transformer layers.
        num_attention_heads (`int`): attention heads (must divide `hidden_size`).
        intermediate_size (`int`): hidden width of the MLPs.
        max_position_embeddings (`int`): the longest encoding; at least `tokenizer.model_max_length`.
    """
    if hidden_size % num_attention_heads:
        raise ValueError(
            f"`hidden_size` ({hidden_size}) must be divisible by `num_attention_heads` ({num_attention_heads})."
        )
    if max_position_embeddings < tokenizer.model_max_length:
        raise ValueError(
            f"`max_position_embeddings` ({max_position_embeddings}) must be >= the tokenizer's `model_max_length` "
            f"({tokenizer.model_max_length}): longer encodings would have no position embedding."
        )
    missing = [t for t in GLOSS_SPECIAL_TOKENS if tokenizer.convert_tokens_to_ids(t) is None]
    if missing or tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError(
            f"`tokenizer` must come from `build_gloss_tokenizer` (special tokens {GLOSS_SPECIAL_TOKENS})."
        )
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        max_position_embeddings=max_position_embeddings,
        projection_dim=hidden_size,
        hidden_act="gelu",
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return CLIPTextModel(config)
