"""Sign-text contrastive evaluator (CLIP-style; the SiCLIP of MaDiS, Sec. 3.4).

A pose encoder and a text encoder map a signed sentence and its spoken-language text into one
L2-normalised embedding space, trained on ground-truth pairs with the symmetric InfoNCE loss and a
learnable temperature (Radford et al., 2021). The evaluation harness uses it twice:

- SiCLIP: sign-to-text retrieval R@1/R@5 of generated poses against the test texts;
- FID: the pose embeddings (`get_pose_embeddings`) are the feature space of the Frechet distance.

Pose encoder: frame MLP -> temporal conv downsampling -> transformer -> masked mean pool -> linear
projection. Text encoder: a small transformer over a word-level (or character-level) vocabulary built
from the training texts and saved in the config; nothing is downloaded. Both inputs are raw: poses in
the dataset's units (standardised inside with the model's `pose_mean` / `pose_std`), texts as strings.

```python
>>> from transformers import AutoModel
>>> import hf_sign.evaluation.evaluators  # registers the hf_sign_* model types
>>> clip = AutoModel.from_pretrained("outputs/evaluators/contrastive")
>>> pose_emb = clip.get_pose_embeddings([poses_a, poses_b])     # (2, projection_dim), unit norm
>>> text_emb = clip.get_text_embeddings(["hello", "big house"])
>>> (pose_emb @ text_emb.T).argmax(-1)
tensor([0, 1])
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from .layers import (
    PoseInput,
    PoseSequenceEncoder,
    PoseStatisticsMixin,
    TokenSequenceEncoder,
    as_pose_batch,
    build_vocab,
    char_tokens,
    check_forward_inputs,
    eval_mode,
    init_evaluator_weights,
    masked_mean,
    word_tokens,
)

PAD = "<pad>"
UNK = "<unk>"
TOKENIZERS = ("word", "char")


class SignTextContrastiveConfig(PreTrainedConfig):
    r"""Configuration of a [`SignTextContrastiveModel`].

    Args:
        feature_dim (`int`, *optional*, defaults to 133):
            Numbers per pose frame (133 for `smplx133`).
        representation (`str`, *optional*, defaults to `""`):
            `SkeletonSpec` name of the poses the model reads (recorded only).
        text_vocab (`list[str]`, *optional*):
            Text vocabulary, id -> token; entry 0 must be `"<pad>"` and entry 1 `"<unk>"` (the default is just
            those two). Built from the training texts by [`SignTextContrastiveModel.build_vocab`].
        text_tokenizer (`str`, *optional*, defaults to `"word"`):
            `"word"`: lowercased `[\w']+` word tokens; `"char"`: lowercased characters (open vocabulary).
        hidden_size (`int`, *optional*, defaults to 192):
            Width of the pose encoder.
        num_hidden_layers (`int`, *optional*, defaults to 3):
            Transformer blocks of the pose encoder.
        num_attention_heads (`int`, *optional*, defaults to 4):
            Attention heads (both encoders); must divide both hidden sizes.
        intermediate_size (`int`, *optional*, defaults to 384):
            Feed-forward width of the pose encoder.
        temporal_downsample (`int`, *optional*, defaults to 2):
            Temporal reduction of the pose encoder (1, 2 or 4).
        text_hidden_size (`int`, *optional*, defaults to 128):
            Width of the text encoder.
        text_num_hidden_layers (`int`, *optional*, defaults to 2):
            Transformer blocks of the text encoder.
        text_intermediate_size (`int`, *optional*, defaults to 256):
            Feed-forward width of the text encoder.
        projection_dim (`int`, *optional*, defaults to 128):
            Size of the joint embedding space (also the FID feature size).
        dropout (`float`, *optional*, defaults to 0.1):
            Dropout in both encoders.
        logit_scale_init_value (`float`, *optional*, defaults to 2.6592):
            Initial value of the learnable log inverse temperature (`log(1 / 0.07)`, as CLIP).
        max_logit_scale (`float`, *optional*, defaults to 100.0):
            Upper clamp of `exp(logit_scale)`, as CLIP, to keep training stable.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Std of the truncated-normal weight initialisation.
    """

    model_type = "hf_sign_sign_text_clip"

    def __init__(
        self,
        feature_dim: int = 133,
        representation: str = "",
        text_vocab: Optional[List[str]] = None,
        text_tokenizer: str = "word",
        hidden_size: int = 192,
        num_hidden_layers: int = 3,
        num_attention_heads: int = 4,
        intermediate_size: int = 384,
        temporal_downsample: int = 2,
        text_hidden_size: int = 128,
        text_num_hidden_layers: int = 2,
        text_intermediate_size: int = 256,
        projection_dim: int = 128,
        dropout: float = 0.1,
        logit_scale_init_value: float = math.log(1 / 0.07),
        max_logit_scale: float = 100.0,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        text_vocab = list(text_vocab) if text_vocab is not None else [PAD, UNK]
        if len(text_vocab) < 2 or text_vocab[0] != PAD or text_vocab[1] != UNK:
            raise ValueError(f"`text_vocab` must start with [{PAD!r}, {UNK!r}]; got {text_vocab[:2]!r}.")
        if len(set(text_vocab)) != len(text_vocab):
            raise ValueError("`text_vocab` has duplicate entries.")
        if text_tokenizer not in TOKENIZERS:
            raise ValueError(f"`text_tokenizer` must be one of {TOKENIZERS}; got {text_tokenizer!r}.")
        if temporal_downsample not in (1, 2, 4):
            raise ValueError(f"`temporal_downsample` must be 1, 2 or 4; got {temporal_downsample!r}.")
        for name, size in (("hidden_size", hidden_size), ("text_hidden_size", text_hidden_size)):
            if size % num_attention_heads:
                raise ValueError(
                    f"`{name}` ({size}) must be divisible by `num_attention_heads` ({num_attention_heads})."
                )
        self.feature_dim = int(feature_dim)
        self.representation = representation
        self.text_vocab = text_vocab
        self.text_tokenizer = text_tokenizer
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.temporal_downsample = temporal_downsample
        self.text_hidden_size = text_hidden_size
        self.text_num_hidden_layers = text_num_hidden_layers
        self.text_intermediate_size = text_intermediate_size
        self.projection_dim = projection_dim
        self.dropout = dropout
        self.logit_scale_init_value = logit_scale_init_value
        self.max_logit_scale = max_logit_scale
        self.initializer_range = initializer_range
        super().__init__(**kwargs)


@dataclass
class SignTextContrastiveOutput(ModelOutput):
    """Output of [`SignTextContrastiveModel`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): symmetric InfoNCE loss (when texts are given).
        logits_per_pose (`torch.FloatTensor` of shape `(pose_batch, text_batch)`, *optional*): scaled cosine
            similarities pose -> text.
        logits_per_text (`torch.FloatTensor` of shape `(text_batch, pose_batch)`, *optional*): the transpose.
        pose_embeds (`torch.FloatTensor` of shape `(pose_batch, projection_dim)`): L2-normalised pose embeddings.
        text_embeds (`torch.FloatTensor` of shape `(text_batch, projection_dim)`, *optional*): L2-normalised
            text embeddings.
    """

    loss: Optional[torch.FloatTensor] = None
    logits_per_pose: Optional[torch.FloatTensor] = None
    logits_per_text: Optional[torch.FloatTensor] = None
    pose_embeds: Optional[torch.FloatTensor] = None
    text_embeds: Optional[torch.FloatTensor] = None


class SignTextContrastiveModel(PoseStatisticsMixin, PreTrainedModel):
    """CLIP-style sign-text model; see the module docstring.

    Args:
        config ([`SignTextContrastiveConfig`]): model configuration (text vocabulary included).
    """

    config_class = SignTextContrastiveConfig
    base_model_prefix = "sign_text_clip"
    main_input_name = "poses"
    _no_split_modules = ["EncoderBlock"]
    accepts_loss_kwargs = False  # the loss is a per-batch mean; Trainer scales it for gradient accumulation

    def __init__(self, config: SignTextContrastiveConfig):
        super().__init__(config)
        self._init_pose_statistics(config.feature_dim)
        self.pose_encoder = PoseSequenceEncoder(
            feature_dim=config.feature_dim,
            hidden_size=config.hidden_size,
            num_layers=config.num_hidden_layers,
            num_heads=config.num_attention_heads,
            intermediate_size=config.intermediate_size,
            dropout=config.dropout,
            temporal_downsample=config.temporal_downsample,
        )
        self.text_encoder = TokenSequenceEncoder(
            vocab_size=len(config.text_vocab),
            hidden_size=config.text_hidden_size,
            num_layers=config.text_num_hidden_layers,
            num_heads=config.num_attention_heads,
            intermediate_size=config.text_intermediate_size,
            dropout=config.dropout,
        )
        self.pose_projection = nn.Linear(config.hidden_size, config.projection_dim, bias=False)
        self.text_projection = nn.Linear(config.text_hidden_size, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))
        self._token_to_id = {tok: i for i, tok in enumerate(config.text_vocab)}
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        from transformers import initialization as init

        if module is self.pose_projection or module is self.text_projection:
            # CLIP's projection init (std = width^-0.5): with the small default std every embedding starts
            # almost the same, the InfoNCE gradients vanish and training idles on a plateau at log(batch).
            init.normal_(module.weight, std=module.in_features**-0.5)
            return
        init_evaluator_weights(module, self.config.initializer_range)
        if module is self:
            init.constant_(self.logit_scale, self.config.logit_scale_init_value)

    # ------------------------------------------------------------------------------ tokenizer
    @staticmethod
    def text_tokens(text: str, tokenizer: str = "word") -> List[str]:
        """Tokens of `text` under `tokenizer` (`"word"` or `"char"`)."""
        if tokenizer == "word":
            return word_tokens(text)
        if tokenizer == "char":
            return char_tokens(text)
        raise ValueError(f"`text_tokenizer` must be one of {TOKENIZERS}; got {tokenizer!r}.")

    @classmethod
    def build_vocab(cls, texts: Sequence[str], tokenizer: str = "word", min_frequency: int = 1) -> List[str]:
        """Vocabulary for `SignTextContrastiveConfig.text_vocab`: pad, unk, then the sorted training tokens."""
        return build_vocab(
            (cls.text_tokens(t, tokenizer) for t in texts), specials=(PAD, UNK), min_frequency=min_frequency
        )

    def tokenize(self, texts: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Strings -> `(input_ids (B, L), text_attention_mask (B, L))`; unknown tokens map to `<unk>`.

        A text with no token at all (empty, or only punctuation for the word tokenizer) becomes a single
        `<unk>` so that it still has an embedding.
        """
        if isinstance(texts, str) or len(texts) == 0:
            raise ValueError("`texts` must be a non-empty list of strings.")
        unk = self._token_to_id[UNK]
        ids = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"`texts[{i}]` must be a string; got {type(text).__name__}.")
            ids.append(
                [self._token_to_id.get(t, unk) for t in self.text_tokens(text, self.config.text_tokenizer)] or [unk]
            )
        width = max(len(x) for x in ids)
        input_ids = torch.zeros(len(ids), width, dtype=torch.long)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = torch.tensor(row)
        return input_ids, input_ids != 0

    # ------------------------------------------------------------------------------- encoders
    def encode_poses(self, poses: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Differentiable pose embeddings (B, projection_dim), L2-normalised; poses in dataset units."""
        mask = check_forward_inputs(poses, attention_mask, self.config.feature_dim)
        hidden, out_mask = self.pose_encoder(self.normalize_poses(poses), mask)
        return F.normalize(self.pose_projection(masked_mean(hidden, out_mask)), dim=-1)

    def encode_texts(
        self, input_ids: torch.Tensor, text_attention_mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Differentiable text embeddings (B, projection_dim), L2-normalised."""
        if input_ids.ndim != 2 or input_ids.shape[0] == 0:
            raise ValueError(f"`input_ids` must have shape (batch > 0, length); got {tuple(input_ids.shape)}.")
        mask = (input_ids != 0) if text_attention_mask is None else text_attention_mask.bool()
        hidden = self.text_encoder(input_ids, mask)
        return F.normalize(self.text_projection(masked_mean(hidden, mask)), dim=-1)

    def forward(
        self,
        poses: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        input_ids: Optional[torch.Tensor] = None,
        text_attention_mask: Optional[torch.Tensor] = None,
        return_loss: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        **kwargs,
    ) -> Union[SignTextContrastiveOutput, tuple]:
        r"""
        Args:
            poses (`torch.FloatTensor` of shape `(batch, num_frames, feature_dim)`):
                Pose features in the dataset's units.
            attention_mask (`torch.BoolTensor` of shape `(batch, num_frames)`, *optional*): True on real frames.
            input_ids (`torch.LongTensor` of shape `(text_batch, length)`, *optional*): token ids from
                [`tokenize`]; without them only `pose_embeds` is returned.
            text_attention_mask (`torch.BoolTensor` of shape `(text_batch, length)`, *optional*): True on tokens.
            return_loss (`bool`, *optional*): compute the symmetric InfoNCE loss (default: when texts are given
                and `text_batch == batch`). Pairs whose token ids are identical count as positives of each other,
                so repeated sentences in a batch are not pushed apart.
            return_dict (`bool`, *optional*): return a [`SignTextContrastiveOutput`] (default) or a tuple.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        pose_embeds = self.encode_poses(poses, attention_mask)
        text_embeds = logits_per_pose = logits_per_text = loss = None
        if input_ids is not None:
            text_embeds = self.encode_texts(input_ids, text_attention_mask)
            scale = self.logit_scale.exp().clamp(max=self.config.max_logit_scale)
            logits_per_pose = scale * pose_embeds @ text_embeds.t()
            logits_per_text = logits_per_pose.t()
            if return_loss is None:
                return_loss = input_ids.shape[0] == poses.shape[0]
            if return_loss:
                if input_ids.shape[0] != poses.shape[0]:
                    raise ValueError(
                        f"`input_ids` has {input_ids.shape[0]} texts; `poses` has {poses.shape[0]} sequences."
                    )
                same = (input_ids[:, None, :] == input_ids[None, :, :]).all(-1).float()
                targets = same / same.sum(1, keepdim=True)
                loss = 0.5 * (
                    F.cross_entropy(logits_per_pose.float(), targets)
                    + F.cross_entropy(logits_per_text.float(), targets)
                )
        if not return_dict:
            return tuple(
                v for v in (loss, logits_per_pose, logits_per_text, pose_embeds, text_embeds) if v is not None
            )
        return SignTextContrastiveOutput(
            loss=loss,
            logits_per_pose=logits_per_pose,
            logits_per_text=logits_per_text,
            pose_embeds=pose_embeds,
            text_embeds=text_embeds,
        )

    # ------------------------------------------------------------------------ inference helpers
    @torch.no_grad()
    def get_pose_embeddings(
        self,
        poses: PoseInput,
        attention_mask: Optional[Union[torch.Tensor, np.ndarray]] = None,
        batch_size: int = 64,
    ) -> torch.Tensor:
        """L2-normalised pose embeddings (batch, projection_dim), float32 on CPU: the SiCLIP / FID space.

        Args:
            poses (`torch.Tensor`, `np.ndarray` or list of arrays): poses in dataset units, either a padded
                (batch, frames, feature_dim) array with `attention_mask` or a list of (frames_i, feature_dim) arrays.
            attention_mask (`torch.BoolTensor` of shape `(batch, frames)`, *optional*): True on real frames.
            batch_size (`int`, *optional*, defaults to 64): sequences per forward pass.
        """
        batch, mask = as_pose_batch(poses, attention_mask, self.config.feature_dim, self.device, self.dtype)
        out = []
        with eval_mode(self):
            for start in range(0, batch.shape[0], batch_size):
                m = mask[start : start + batch_size]
                t = int(m.long().sum(1).max())
                out.append(self.encode_poses(batch[start : start + batch_size, :t], m[:, :t]).float().cpu())
        return torch.cat(out)

    @torch.no_grad()
    def get_text_embeddings(self, texts: Union[str, Sequence[str]], batch_size: int = 256) -> torch.Tensor:
        """L2-normalised text embeddings (len(texts), projection_dim), float32 on CPU."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise ValueError("`texts` is empty; pass at least one string.")
        out = []
        with eval_mode(self):
            for start in range(0, len(texts), batch_size):
                ids, mask = self.tokenize(texts[start : start + batch_size])
                out.append(self.encode_texts(ids.to(self.device), mask.to(self.device)).float().cpu())
        return torch.cat(out)

    @staticmethod
    def retrieval_metrics(
        pose_embeds: torch.Tensor, text_embeds: torch.Tensor, texts: Sequence[str], ks: Sequence[int] = (1, 5)
    ) -> Dict[str, float]:
        """Sign-to-text retrieval recall: row i of `pose_embeds` should retrieve `texts[i]` among `texts`.

        Candidates are the *distinct* strings of `texts` (embedded by row `text_embeds`), so a corpus where one
        sentence is signed several times is not penalised for ties between identical texts; ties between distinct
        texts count against (as in the benchmark harness). Returns
        `{"R@k": percent}` for each k, and `"num_candidates"`.
        """
        if pose_embeds.shape[0] != len(texts) or text_embeds.shape[0] != len(texts):
            raise ValueError(f"`pose_embeds`, `text_embeds` and `texts` must have the same length; got "
                             f"{pose_embeds.shape[0]}, {text_embeds.shape[0]}, {len(texts)}.")
        first: Dict[str, int] = {}
        for i, t in enumerate(texts):
            first.setdefault(t, i)
        cand_rows = list(first.values())
        cand_index = {t: j for j, t in enumerate(first)}
        sims = pose_embeds.float() @ text_embeds[cand_rows].float().t()  # (N, C)
        target = torch.tensor([cand_index[t] for t in texts])
        # 0 = retrieved first; ties count against (texts that all embed alike retrieve nothing, not everything)
        rank = (sims >= sims[torch.arange(len(texts)), target][:, None]).sum(1) - 1
        metrics = {f"R@{k}": float((rank < k).float().mean() * 100) for k in ks}
        metrics["num_candidates"] = len(cand_rows)
        return metrics


AutoConfig.register(SignTextContrastiveConfig.model_type, SignTextContrastiveConfig, exist_ok=True)
AutoModel.register(SignTextContrastiveConfig, SignTextContrastiveModel, exist_ok=True)
