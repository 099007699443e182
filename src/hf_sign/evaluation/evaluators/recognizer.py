"""Back-translation recogniser: pose sequence -> gloss (or word) sequence, trained with CTC.

The evaluation contract scores generated poses by reading them back: this recogniser is trained on
ground-truth *training* poses only, and its output on generated test poses is compared with the
reference glosses (BLEU-1..4, ROUGE-L); its output on ground-truth test poses is the ceiling row.

Architecture: per-frame MLP -> stride-2 temporal convolutions (x1/x2/x4) -> sinusoidal positions ->
pre-LN transformer encoder -> linear CTC head over the vocabulary (id 0 = blank, id 1 = `<unk>`).
Inputs are poses in the *dataset's units*; the model standardises them with its own `pose_mean` /
`pose_std` buffers, so it can read any system's output.

```python
>>> from transformers import AutoModel
>>> import hf_sign.evaluation.evaluators  # registers the hf_sign_* model types
>>> recognizer = AutoModel.from_pretrained("outputs/evaluators/recognizer")
>>> recognizer.generate([poses_a, poses_b])          # list of (frames, 133) arrays, dataset units
['HELLO NAME WHAT', 'HOUSE BIG']
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

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
    as_pose_batch,
    build_vocab,
    check_forward_inputs,
    eval_mode,
    init_evaluator_weights,
    word_tokens,
)

BLANK = "<blank>"
UNK = "<unk>"
TARGETS = ("gloss", "text", "auto")


class PoseRecognizerConfig(PreTrainedConfig):
    r"""Configuration of a [`PoseRecognizerModel`].

    Args:
        feature_dim (`int`, *optional*, defaults to 133):
            Numbers per pose frame (133 for `smplx133`).
        representation (`str`, *optional*, defaults to `""`):
            `SkeletonSpec` name of the poses the model reads (recorded, not used by the forward pass).
        vocab (`list[str]`, *optional*):
            Output vocabulary, id -> token. Entry 0 must be `"<blank>"` (the CTC blank) and entry 1 `"<unk>"`;
            defaults to just those two. Built from the train split by [`PoseRecognizerModel.build_vocab`].
        target (`str`, *optional*, defaults to `"gloss"`):
            What the model transcribes: `"gloss"` (the `gloss` field) or `"text"` (lowercased word tokens of
            the `text` field, for corpora without glosses such as How2Sign). `"auto"` is resolved by the
            trainer from the train split and never stored in a trained model.
        hidden_size (`int`, *optional*, defaults to 192):
            Width of the encoder.
        num_hidden_layers (`int`, *optional*, defaults to 3):
            Transformer blocks.
        num_attention_heads (`int`, *optional*, defaults to 4):
            Attention heads per block; must divide `hidden_size`.
        intermediate_size (`int`, *optional*, defaults to 384):
            Feed-forward width.
        dropout (`float`, *optional*, defaults to 0.1):
            Dropout on embeddings, attention and feed-forward outputs.
        temporal_downsample (`int`, *optional*, defaults to 2):
            Temporal reduction before the transformer (1, 2 or 4) by stride-2 convolutions. CTC needs at
            least as many output steps as target tokens (plus one per repeated token).
        initializer_range (`float`, *optional*, defaults to 0.02):
            Std of the truncated-normal weight initialisation.
    """

    model_type = "hf_sign_pose_recognizer"

    def __init__(
        self,
        feature_dim: int = 133,
        representation: str = "",
        vocab: Optional[List[str]] = None,
        target: str = "gloss",
        hidden_size: int = 192,
        num_hidden_layers: int = 3,
        num_attention_heads: int = 4,
        intermediate_size: int = 384,
        dropout: float = 0.1,
        temporal_downsample: int = 2,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        vocab = list(vocab) if vocab is not None else [BLANK, UNK]
        if len(vocab) < 2 or vocab[0] != BLANK or vocab[1] != UNK:
            raise ValueError(f"`vocab` must start with [{BLANK!r}, {UNK!r}]; got {vocab[:2]!r}.")
        if len(set(vocab)) != len(vocab):
            raise ValueError("`vocab` has duplicate entries.")
        if target not in TARGETS:
            raise ValueError(f"`target` must be one of {TARGETS}; got {target!r}.")
        if temporal_downsample not in (1, 2, 4):
            raise ValueError(f"`temporal_downsample` must be 1, 2 or 4; got {temporal_downsample!r}.")
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"`hidden_size` ({hidden_size}) must be divisible by `num_attention_heads` ({num_attention_heads})."
            )
        self.feature_dim = int(feature_dim)
        self.representation = representation
        self.vocab = vocab
        self.target = target
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.dropout = dropout
        self.temporal_downsample = temporal_downsample
        self.initializer_range = initializer_range
        super().__init__(**kwargs)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


@dataclass
class PoseRecognizerOutput(ModelOutput):
    """Output of [`PoseRecognizerModel`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): CTC loss, returned when `labels` are given.
        logits (`torch.FloatTensor` of shape `(batch, steps, vocab_size)`): per-step token scores.
        output_mask (`torch.BoolTensor` of shape `(batch, steps)`): True on steps backed by real frames.
        last_hidden_state (`torch.FloatTensor` of shape `(batch, steps, hidden_size)`): encoder output.
    """

    loss: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None
    output_mask: Optional[torch.BoolTensor] = None
    last_hidden_state: Optional[torch.FloatTensor] = None


def ctc_greedy_decode(logits: torch.Tensor, mask: torch.Tensor, blank: int = 0) -> List[List[int]]:
    """Best-path CTC decoding: argmax per step, merge repeats, drop blanks. Returns token ids per sequence."""
    best = logits.argmax(-1).cpu()
    lengths = mask.long().sum(1).cpu()
    out = []
    for row, n in zip(best, lengths):
        row = row[: int(n)]
        if len(row) == 0:
            out.append([])
            continue
        keep = torch.ones_like(row, dtype=torch.bool)
        keep[1:] = row[1:] != row[:-1]
        out.append([int(t) for t in row[keep] if int(t) != blank])
    return out


class PoseRecognizerModel(PoseStatisticsMixin, PreTrainedModel):
    """Pose -> gloss recogniser with a CTC head. See the module docstring for the architecture.

    Args:
        config ([`PoseRecognizerConfig`]): model configuration (vocabulary included).
    """

    config_class = PoseRecognizerConfig
    base_model_prefix = "recognizer"
    main_input_name = "poses"
    _no_split_modules = ["EncoderBlock"]
    accepts_loss_kwargs = False  # the loss is a per-batch mean; Trainer scales it for gradient accumulation

    def __init__(self, config: PoseRecognizerConfig):
        super().__init__(config)
        self._init_pose_statistics(config.feature_dim)
        self.encoder = PoseSequenceEncoder(
            feature_dim=config.feature_dim,
            hidden_size=config.hidden_size,
            num_layers=config.num_hidden_layers,
            num_heads=config.num_attention_heads,
            intermediate_size=config.intermediate_size,
            dropout=config.dropout,
            temporal_downsample=config.temporal_downsample,
        )
        self.ctc_head = nn.Linear(config.hidden_size, config.vocab_size)
        self._token_to_id = {tok: i for i, tok in enumerate(config.vocab)}
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        init_evaluator_weights(module, self.config.initializer_range)

    # ------------------------------------------------------------------------------ vocabulary
    @staticmethod
    def sample_tokens(sample: Dict, target: str) -> List[str]:
        """Target tokens of one dataset row: its `gloss` list, or the lowercased words of its `text`."""
        if target == "gloss":
            return [str(g) for g in sample["gloss"]]
        if target == "text":
            return word_tokens(sample["text"])
        raise ValueError(f"`target` must be 'gloss' or 'text' here; got {target!r} (resolve 'auto' first).")

    @staticmethod
    def build_vocab(token_sequences: Sequence[Sequence[str]], min_frequency: int = 1) -> List[str]:
        """Vocabulary for `PoseRecognizerConfig.vocab`: blank, unk, then the sorted tokens of the train split."""
        return build_vocab(token_sequences, specials=(BLANK, UNK), min_frequency=min_frequency)

    def encode_targets(self, token_sequences: Sequence[Sequence[str]]) -> torch.Tensor:
        """Token lists -> `labels` (batch, max_len) LongTensor padded with -100; unknown tokens -> `<unk>`."""
        unk = self._token_to_id[UNK]
        max_len = max((len(s) for s in token_sequences), default=0)
        labels = torch.full((len(token_sequences), max(max_len, 1)), -100, dtype=torch.long)
        for i, seq in enumerate(token_sequences):
            if seq:
                labels[i, : len(seq)] = torch.tensor([self._token_to_id.get(t, unk) for t in seq])
        return labels

    # ---------------------------------------------------------------------------------- forward
    def forward(
        self,
        poses: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        return_dict: Optional[bool] = None,
        **kwargs,
    ) -> Union[PoseRecognizerOutput, tuple]:
        r"""
        Args:
            poses (`torch.FloatTensor` of shape `(batch, num_frames, feature_dim)`):
                Pose features in the dataset's units (the model standardises them itself).
            attention_mask (`torch.BoolTensor` of shape `(batch, num_frames)`, *optional*):
                True on real frames; all frames are real when omitted.
            labels (`torch.LongTensor` of shape `(batch, max_target_len)`, *optional*):
                Target token ids padded with -100 (see [`encode_targets`]); gives the CTC loss (mean over the
                batch of the per-sequence loss divided by its target length). Id 0 (blank) is not a valid target.
            return_dict (`bool`, *optional*): return a [`PoseRecognizerOutput`] (default) or a tuple.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        mask = check_forward_inputs(poses, attention_mask, self.config.feature_dim)
        hidden, out_mask = self.encoder(self.normalize_poses(poses), mask)
        logits = self.ctc_head(hidden)

        loss = None
        if labels is not None:
            if labels.shape[0] != poses.shape[0]:
                raise ValueError(f"`labels` has {labels.shape[0]} rows; `poses` has {poses.shape[0]} sequences.")
            target_mask = labels != -100
            if (labels[target_mask] == 0).any():
                raise ValueError("`labels` contains id 0, the CTC blank; targets must use ids >= 1.")
            log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (steps, batch, vocab)
            loss = F.ctc_loss(
                log_probs,
                labels.clamp_min(0),
                input_lengths=out_mask.long().sum(1),
                target_lengths=target_mask.long().sum(1),
                blank=0,
                reduction="mean",
                # An unreachable alignment (target longer than the output) would give inf; zero it instead of
                # wrecking the batch. The trainer warns about such samples before training.
                zero_infinity=True,
            )
        if not return_dict:
            return tuple(v for v in (loss, logits, out_mask, hidden) if v is not None)
        return PoseRecognizerOutput(loss=loss, logits=logits, output_mask=out_mask, last_hidden_state=hidden)

    # ---------------------------------------------------------------------------------- decoding
    def decode(self, logits: torch.Tensor, output_mask: torch.Tensor) -> List[List[str]]:
        """Greedy CTC decoding of `logits` into token strings per sequence."""
        return [[self.config.vocab[i] for i in ids] for ids in ctc_greedy_decode(logits, output_mask)]

    @torch.no_grad()
    def generate(
        self,
        poses: PoseInput,
        attention_mask: Optional[Union[torch.Tensor, np.ndarray]] = None,
        batch_size: int = 64,
        return_tokens: bool = False,
    ) -> Union[List[str], List[List[str]]]:
        """Transcribe pose sequences in dataset units.

        Args:
            poses (`torch.Tensor`, `np.ndarray` or list of arrays): a padded (batch, frames, feature_dim) array
                with `attention_mask`, or a list of (frames_i, feature_dim) arrays of any lengths.
            attention_mask (`torch.BoolTensor` of shape `(batch, frames)`, *optional*): True on real frames.
            batch_size (`int`, *optional*, defaults to 64): sequences per forward pass.
            return_tokens (`bool`, *optional*, defaults to `False`): return token lists instead of strings.

        Returns:
            `list[str]`: one space-joined gloss (or word) string per sequence (token lists if `return_tokens`).
        """
        batch, mask = as_pose_batch(poses, attention_mask, self.config.feature_dim, self.device, self.dtype)
        tokens: List[List[str]] = []
        with eval_mode(self):
            for start in range(0, batch.shape[0], batch_size):
                m = mask[start : start + batch_size]
                t = int(m.long().sum(1).max())  # trim padding shared by the whole chunk
                out = self(batch[start : start + batch_size, :t], attention_mask=m[:, :t], return_dict=True)
                tokens.extend(self.decode(out.logits, out.output_mask))
        return tokens if return_tokens else [" ".join(t) for t in tokens]


AutoConfig.register(PoseRecognizerConfig.model_type, PoseRecognizerConfig, exist_ok=True)
AutoModel.register(PoseRecognizerConfig, PoseRecognizerModel, exist_ok=True)
