"""Sign-SALD's skeleton-aware latent denoiser (Shen et al., Sec. 2.2), as a diffusers model.

Input: a noisy latent `z_t` of shape (B, N', J', C) from `SkeletonVAE`, the timestep, and text hidden states
(B, L, text_dim) from a frozen text encoder (CLIP in the paper). Every token (frame n, atomic joint j) is projected
to D channels and gets a learned joint embedding plus a sinusoidal temporal position embedding (any N' works).

Each of the `num_layers` layers applies, in order (eq. 5),

    z = z + FiLM(TempAttn(LN(z)), t)     attention across the N' frames, separately for every atomic joint
    z = z + FiLM(SkelAttn(LN(z)), t)     attention across the J' atomic joints, separately for every frame
    z = z + FiLM(CrossAttn(LN(z), c), t) every token attends to the text tokens
    z = z + FiLM(FFN(LN(z)), t)

with FiLM(h, t) = gamma_t * h + beta_t (eq. 6), gamma_t and beta_t computed from the timestep embedding and
broadcast over frames and joints. FiLM is initialised to the identity (gamma = 1, beta = 0: the projection
producing `gamma - 1` and `beta` is zero-initialised), so at initialisation every block is a plain pre-LN residual
block and the timestep modulation is learned from there.

Long skip connections (paper: "l -> l + tau, tau > 1, via learnable linear projections", after U-Net/U-ViT): the
input of layer `l` is also fed to layer `l + skip_tau` (the output head counts as layer `num_layers`), combined as
`Linear([z, z_skip])` with the projection initialised to pass `z` through and ignore `z_skip`.

Output: `proj_out(LN(z))` back to C channels, the noise prediction (`prediction_type="epsilon"`, recorded for the
pipeline; the scheduler owns the parameterisation).

Classifier-free guidance: the model owns a learned null text embedding. `drop_condition` (called by the trainer)
replaces each sample's text by the null condition with probability `cond_drop_prob`; `null_condition` gives the
unconditional input for guided sampling (one valid token holding the null embedding, the rest masked).

Ablations (Table 3): `use_temporal_attention=False` / `use_skeletal_attention=False` drop that sub-layer;
`use_cross_attention=False` ("w/o CrossAttn") replaces cross-attention with self-attention over the concatenation of
one sentence-level text token (masked mean of the projected text states) and all N' * J' pose tokens.

Duration conditioning (`duration_conditioning=True`; not in the paper, on in `small`): every latent frame also gets,
added to its tokens, the projected text state of the token it signs and the phase within that token's frames, from
per-token durations (a length regulator, as in FastSpeech). Training uses durations from the corpus's `gloss_spans`
(`hf_sign.training.gloss_alignment.gloss_token_timing`); at inference a per-token `DurationPredictor` gives
them, rescaled to the chosen length. Without durations (and for the null condition) every valid token gets an
equal share of the frames.

Length prediction: the number of frames to generate is predicted by a small MLP on the masked mean of the text
states, regressing log(num_frames) (full-rate frames) with an MSE loss (`length_loss`); it lives in this model so
it is saved, loaded and trained with the denoiser, but shares no weights with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps, get_timestep_embedding
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput

__all__ = ["SkeletonLatentDenoiser", "SkeletonLatentDenoiserOutput"]


@dataclass
class SkeletonLatentDenoiserOutput(BaseOutput):
    """Output of `SkeletonLatentDenoiser`.

    Args:
        sample (`torch.Tensor` of shape `(batch, num_latent_frames, num_joints, latent_channels)`): the prediction
            (noise for `prediction_type="epsilon"`).
        cross_attentions (`tuple` of `torch.Tensor` of shape `(batch, num_heads, num_latent_frames, num_joints,
            seq_len)`, *optional*): the cross-attention probabilities of every layer, returned when
            `output_cross_attentions=True` (used by the attention-guidance loss).
    """

    sample: torch.Tensor
    cross_attentions: Optional[Tuple[torch.Tensor, ...]] = None


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x (B, L, D) over the tokens where mask (B, L) is True."""
    w = mask.to(x.dtype)[..., None]
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


class Attention(nn.Module):
    """Multi-head attention over token sequences (B, L, D) with an optional key padding mask (True = attend)."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"`hidden_dim` ({dim}) must be divisible by `num_heads` ({num_heads}).")
        self.num_heads, self.dropout = num_heads, dropout
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None, key_mask: Optional[torch.Tensor] = None,
                return_weights: bool = False):
        """Attend from x to `context` (default: x). With `return_weights`, returns `(out, probabilities (B, H, Lq, Lk))`."""
        context = x if context is None else context
        heads = lambda t: t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # noqa: E731  (B, H, L, D/H)
        q, k, v = heads(self.to_q(x)), heads(self.to_k(context)), heads(self.to_v(context))
        mask = None if key_mask is None else key_mask[:, None, None, :]
        if not return_weights:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
            return self.to_out(out.transpose(1, 2).flatten(2))
        scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # the same maths as above, probabilities kept
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        probs = scores.softmax(-1)
        out = F.dropout(probs, self.dropout, self.training) @ v
        return self.to_out(out.transpose(1, 2).flatten(2)), probs


class FiLM(nn.Module):
    """FiLM(h, t) = gamma_t * h + beta_t (eq. 6), broadcast over frames and joints; identity at initialisation."""

    def __init__(self, cond_dim: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(F.silu(cond))[:, None, None, :].chunk(2, dim=-1)  # cond (B, Dt) -> (B, 1, 1, D)
        return (1.0 + scale) * h + shift


class SequentialAttentionLayer(nn.Module):
    """TempAttn -> SkelAttn -> CrossAttn -> FFN, each `z + FiLM(A(LN(z)), t)` (eq. 5), on z of shape (B, N, J, D)."""

    def __init__(self, dim, num_heads, ff_dim, time_dim, dropout, use_temporal, use_skeletal, use_cross):
        super().__init__()
        # The text sub-layer is "cross" (cross-attention) or "joint" (self-attention over [sentence, pose tokens]).
        self.text_key = "cross" if use_cross else "joint"
        names = (["temporal"] if use_temporal else []) + (["skeletal"] if use_skeletal else []) + [self.text_key]
        self.norms = nn.ModuleDict({n: nn.LayerNorm(dim) for n in names + ["ffn"]})
        self.attns = nn.ModuleDict({n: Attention(dim, num_heads, dropout) for n in names})
        self.films = nn.ModuleDict({n: FiLM(time_dim, dim) for n in names + ["ffn"]})
        self.ffn = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, dim))

    def forward(self, z, temb, text, text_mask, frame_mask=None, text_token=None, output_cross_attentions=False):
        """Returns z, or `(z, cross-attention probabilities (B, H, N, J, L))` with `output_cross_attentions`."""
        b, n, j, d = z.shape
        probs = None
        if "temporal" in self.attns:  # every atomic joint's sequence of frames
            h = self.norms["temporal"](z).transpose(1, 2).reshape(b * j, n, d)
            mask = None if frame_mask is None else frame_mask.repeat_interleave(j, dim=0)
            h = self.attns["temporal"](h, key_mask=mask).reshape(b, j, n, d).transpose(1, 2)
            z = z + self.films["temporal"](h, temb)
        if "skeletal" in self.attns:  # the atomic joints of every frame
            h = self.attns["skeletal"](self.norms["skeletal"](z).reshape(b * n, j, d)).reshape(b, n, j, d)
            z = z + self.films["skeletal"](h, temb)
        key = self.text_key
        h = self.norms[key](z).reshape(b, n * j, d)
        if key == "cross" and output_cross_attentions:
            h, probs = self.attns[key](h, context=text, key_mask=text_mask, return_weights=True)
            probs = probs.unflatten(2, (n, j))
        elif key == "cross":  # every pose token attends to the text tokens
            h = self.attns[key](h, context=text, key_mask=text_mask)
        else:  # "w/o CrossAttn": self-attention over [sentence token, pose tokens]
            tokens = torch.cat([self.norms[key](text_token)[:, None], h], dim=1)
            pose_mask = None if frame_mask is None else frame_mask.repeat_interleave(j, dim=1)
            mask = None if pose_mask is None else torch.cat([pose_mask.new_ones(b, 1), pose_mask], dim=1)
            h = self.attns[key](tokens, key_mask=mask)[:, 1:]
        z = z + self.films[key](h.reshape(b, n, j, d), temb)
        z = z + self.films["ffn"](self.ffn(self.norms["ffn"](z)), temb)
        return (z, probs) if output_cross_attentions else z


class LengthPredictor(nn.Module):
    """MLP regressing log(num_frames) from the masked mean of the text hidden states and log(number of tokens).

    The token count is an input of its own because mean pooling discards it, and sentence length is the
    strongest single cue for how long the signing lasts.
    """

    def __init__(self, text_dim: int, hidden: int, init_frames: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(text_dim + 1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        nn.init.constant_(self.net[-1].bias, math.log(init_frames))  # start from a typical length

    def forward(self, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        count = mask.sum(1, keepdim=True).to(text.dtype).clamp_min(1.0).log()
        return self.net(torch.cat([_masked_mean(text, mask), count], dim=-1))[:, 0]


class DurationPredictor(nn.Module):
    """Per-token MLP giving `(log(1 + frames signed for the token), signing-order key)` from its text hidden state.

    The key places the token in the signing: sign languages reorder (SynthSign puts time words first and wh-words
    last), so the frames are laid out in the order of the keys, not of the text.
    """

    def __init__(self, text_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(text_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2))

    def forward(self, text: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        out = self.net(text)
        return out[..., 0], out[..., 1]


def align_frames_to_tokens(
    token_durations: Optional[torch.Tensor],
    text_mask: torch.Tensor,
    frame_mask: torch.Tensor,
    token_order: Optional[torch.Tensor] = None,
) -> Tuple[torch.LongTensor, torch.Tensor, torch.Tensor]:
    """Which text token each latent frame signs, and where in that token's frames it is (a length regulator).

    Args:
        token_durations (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): frames per token in any unit; every
            sample's durations are rescaled to fill its valid latent frames. Masked tokens get none. A sample whose
            valid durations sum to 0 (and every sample when `None`) spreads its frames evenly over its valid tokens.
        text_mask (`torch.Tensor` of shape `(batch, seq_len)`, bool): valid text tokens.
        frame_mask (`torch.Tensor` of shape `(batch, num_latent_frames)`, bool): valid latent frames (a prefix).
        token_order (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): sort keys; the tokens' segments follow
            each other in ascending key order (ties keep the text order). Default: the text order.

    Returns:
        `(token_index (B, N'), phase (B, N') in [0, 1), segment_frames (B, N'))`: the token of each frame's centre,
        the centre's position within that token's segment and the segment's length in latent frames (padded frames
        repeat the last valid frame's values; they are masked downstream).
    """
    mask = text_mask.to(torch.float32)
    for name, value in (("token_durations", token_durations), ("token_order", token_order)):
        if value is not None and tuple(value.shape) != tuple(text_mask.shape):
            raise ValueError(f"`{name}` must have shape {tuple(text_mask.shape)} (batch, seq_len); got {tuple(value.shape)}.")
    if token_durations is None:
        durations = mask
    else:
        durations = token_durations.to(torch.float32).clamp_min(0.0) * mask
        durations = torch.where(durations.sum(1, keepdim=True) <= 0, mask, durations)
    if token_order is None:
        order = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    else:
        order = torch.sort(token_order.to(torch.float32), dim=1, stable=True).indices
    durations = durations.gather(1, order)  # in signing order
    frames = frame_mask.sum(1, keepdim=True).to(torch.float32)
    durations = durations * frames / durations.sum(1, keepdim=True)
    ends = durations.cumsum(1)
    centres = torch.arange(frame_mask.shape[1], device=frame_mask.device, dtype=torch.float32)[None] + 0.5
    centres = torch.minimum(centres, frames - 0.5)  # padded frames reuse the last valid position
    # the first segment ending after the centre (zero-length segments are skipped by `right=True`)
    slot = torch.searchsorted(ends.contiguous(), centres.contiguous(), right=True).clamp_max(durations.shape[1] - 1)
    length = durations.gather(1, slot)
    phase = (centres - (ends.gather(1, slot) - length)) / length.clamp_min(1e-6)
    return order.gather(1, slot), phase.clamp(0.0, 1.0 - 1e-6), length


def relative_position_embedding(mask: torch.Tensor, dim: int, scale: float = 100.0) -> torch.Tensor:
    """Sinusoidal embedding (B, L, dim) of each token's relative position `i / (valid_length - 1)` in [0, 1].

    Pose frames and text tokens both get it, so cross-attention can align "a third of the way through the
    signing" with "a third of the way through the sentence" whatever the absolute lengths (`scale` spreads
    [0, 1] over the sinusoid frequencies).
    """
    valid = mask.sum(1, keepdim=True).to(torch.float32)
    rel = torch.arange(mask.shape[1], device=mask.device, dtype=torch.float32)[None] / (valid - 1).clamp_min(1.0)
    emb = get_timestep_embedding(rel.clamp(max=1.0).flatten() * scale, dim, flip_sin_to_cos=True, downscale_freq_shift=0)
    return emb.reshape(*mask.shape, dim)


class SkeletonLatentDenoiser(ModelMixin, ConfigMixin):
    r"""Sign-SALD noise predictor over skeletal-temporal latents (B, N', J', C), conditioned on text.

    Args:
        num_joints (`int`, *optional*, defaults to 7): J', atomic joints of the latent (1 for the "w/o ST-Latent" VAE).
        latent_channels (`int`, *optional*, defaults to 16): C, channels per latent token (`SkeletonVAE.latent_channels`).
        hidden_dim (`int`, *optional*, defaults to 256): D, transformer width.
        num_layers (`int`, *optional*, defaults to 8): sequential-attention layers.
        num_heads (`int`, *optional*, defaults to 4): attention heads (must divide `hidden_dim`).
        ff_mult (`int`, *optional*, defaults to 4): FFN width = `ff_mult * hidden_dim`.
        text_dim (`int`, *optional*, defaults to 512): width of the text hidden states (CLIP ViT-B/32: 512).
        time_embed_dim (`int`, *optional*): width of the timestep embedding; defaults to `hidden_dim`.
        dropout (`float`, *optional*, defaults to 0.0): dropout on attention weights and inside the FFN.
        max_frames (`int`, *optional*, defaults to 400): upper bound of `predict_num_frames` (full-rate frames). The
            sinusoidal position embedding itself has no length limit.
        skip_tau (`int`, *optional*, defaults to 2): long skip distance tau (> 1); 0 disables the long skips.
        use_temporal_attention (`bool`, *optional*, defaults to `True`): keep TempAttn ("w/o TempAttn" if False).
        use_skeletal_attention (`bool`, *optional*, defaults to `True`): keep SkelAttn ("w/o SkelAttn" if False).
        use_cross_attention (`bool`, *optional*, defaults to `True`): cross-attention to the text tokens; False is
            "w/o CrossAttn" (self-attention over a pooled sentence token concatenated with the pose tokens).
        cond_drop_prob (`float`, *optional*, defaults to 0.1): probability that `drop_condition` replaces a
            sample's text by the learned null condition during training (classifier-free guidance).
        prediction_type (`str`, *optional*, defaults to `"epsilon"`): what the output means; the scheduler must use
            the same (documentation for pipelines).
        length_predictor_hidden (`int`, *optional*, defaults to 128): hidden width of the length predictor MLP (and of
            the duration predictor's).
        relative_positions (`bool`, *optional*, defaults to `False`): add `relative_position_embedding` to the pose
            tokens (position within the valid frames) and to the projected text tokens (position within the valid
            tokens). Not in the paper; meant to make text-to-motion alignment easier to learn on small data (its effect
            has not been measured in isolation yet).
        duration_conditioning (`bool`, *optional*, defaults to `False`): add to every latent frame the projected
            text state of the token it signs and a sinusoidal embedding of its phase within that token's frames
            (`align_frames_to_tokens`), from `token_durations`; adds a `DurationPredictor`. Not in the paper.
        duration_per_joint (`bool`, *optional*, defaults to `False`): project that frame conditioning separately for
            every atomic joint (so e.g. the hands get their own map from the word to the latent) instead of adding
            one vector to all of a frame's joints.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        num_joints: int = 7,
        latent_channels: int = 16,
        hidden_dim: int = 256,
        num_layers: int = 8,
        num_heads: int = 4,
        ff_mult: int = 4,
        text_dim: int = 512,
        time_embed_dim: Optional[int] = None,
        dropout: float = 0.0,
        max_frames: int = 400,
        skip_tau: int = 2,
        use_temporal_attention: bool = True,
        use_skeletal_attention: bool = True,
        use_cross_attention: bool = True,
        cond_drop_prob: float = 0.1,
        prediction_type: str = "epsilon",
        length_predictor_hidden: int = 128,
        relative_positions: bool = False,
        duration_conditioning: bool = False,
        duration_per_joint: bool = False,
    ):
        super().__init__()
        if skip_tau and skip_tau < 2:
            raise ValueError(f"`skip_tau` must be 0 (no long skips) or > 1; got {skip_tau}.")
        if not 0.0 <= cond_drop_prob < 1.0:
            raise ValueError(f"`cond_drop_prob` must be in [0, 1); got {cond_drop_prob}.")
        time_dim = time_embed_dim or hidden_dim
        self.gradient_checkpointing = False

        self.proj_in = nn.Linear(latent_channels, hidden_dim)
        self.joint_embedding = nn.Parameter(torch.randn(num_joints, hidden_dim) * 0.02)
        self.time_proj = Timesteps(hidden_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(hidden_dim, time_dim)
        self.text_proj = nn.Linear(text_dim, hidden_dim)
        self.null_text_embedding = nn.Parameter(torch.randn(text_dim) * 0.02)

        self.layers = nn.ModuleList(
            SequentialAttentionLayer(
                hidden_dim, num_heads, ff_mult * hidden_dim, time_dim, dropout,
                use_temporal_attention, use_skeletal_attention, use_cross_attention,
            )
            for _ in range(num_layers)
        )
        # Skip into position p (= layer p's input, p = num_layers: the output head) from position p - tau.
        num_skips = num_layers - skip_tau + 1 if skip_tau and num_layers >= skip_tau else 0
        self.skip_projs = nn.ModuleList(nn.Linear(2 * hidden_dim, hidden_dim) for _ in range(num_skips))
        for proj in self.skip_projs:  # pass z through, ignore the skip at initialisation
            nn.init.zeros_(proj.bias)
            with torch.no_grad():
                proj.weight.zero_()
                proj.weight[:, :hidden_dim].copy_(torch.eye(hidden_dim))

        self.norm_out = nn.LayerNorm(hidden_dim)
        self.proj_out = nn.Linear(hidden_dim, latent_channels)
        self.length_predictor = LengthPredictor(text_dim, length_predictor_hidden, max(max_frames / 4.0, 1.0))
        if duration_conditioning:
            self.duration_predictor = DurationPredictor(text_dim, length_predictor_hidden)
            # [text state of the frame's token, phase embedding, log segment length] -> a frame embedding
            self.duration_proj = nn.Linear(2 * hidden_dim + 1, hidden_dim * (num_joints if duration_per_joint else 1))

    # ------------------------------------------------------------------------------------------ checks
    def _check_text(self, states: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        if states.ndim != 3 or states.shape[-1] != self.config.text_dim:
            raise ValueError(
                f"`encoder_hidden_states` must have shape (batch, seq_len, {self.config.text_dim}) (text_dim); "
                f"got {tuple(states.shape)}."
            )
        if mask is None:
            return torch.ones(states.shape[:2], dtype=torch.bool, device=states.device)
        if tuple(mask.shape) != tuple(states.shape[:2]):
            raise ValueError(
                f"`encoder_attention_mask` must have shape {tuple(states.shape[:2])} (batch, seq_len); got {tuple(mask.shape)}."
            )
        mask = mask.bool()
        if not mask.any(1).all():
            raise ValueError("`encoder_attention_mask` has a sample with no valid token; use `null_condition` instead.")
        return mask

    def _check_inputs(self, sample, timestep, attention_mask):
        cfg = self.config
        if sample.ndim != 4 or tuple(sample.shape[2:]) != (cfg.num_joints, cfg.latent_channels):
            raise ValueError(
                f"`sample` must have shape (batch, num_latent_frames, {cfg.num_joints}, {cfg.latent_channels}) "
                f"(num_joints, latent_channels); got {tuple(sample.shape)}."
            )
        b, n = sample.shape[:2]
        if not torch.is_tensor(timestep):
            timestep = torch.tensor([timestep], device=sample.device)
        timestep = timestep.to(sample.device).reshape(-1)
        if timestep.shape[0] == 1:
            timestep = timestep.expand(b)
        if timestep.shape[0] != b:
            raise ValueError(f"`timestep` must be a scalar or have shape ({b},); got {tuple(timestep.shape)}.")
        if attention_mask is not None:
            if tuple(attention_mask.shape) != (b, n):
                raise ValueError(f"`attention_mask` must have shape ({b}, {n}) (batch, num_latent_frames); got {tuple(attention_mask.shape)}.")
            attention_mask = attention_mask.bool()
            if not attention_mask.any(1).all():
                raise ValueError("`attention_mask` has a sample with no valid latent frame.")
        return timestep, attention_mask

    # ------------------------------------------------------------------------------------------ forward
    def forward(
        self,
        sample: torch.Tensor,
        timestep: Union[torch.Tensor, float, int],
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        token_durations: Optional[torch.Tensor] = None,
        token_order: Optional[torch.Tensor] = None,
        output_cross_attentions: bool = False,
        return_dict: bool = True,
    ) -> Union[SkeletonLatentDenoiserOutput, Tuple[torch.Tensor]]:
        """Predict the noise in `sample`.

        Args:
            sample (`torch.Tensor` of shape `(batch, num_latent_frames, num_joints, latent_channels)`): noisy latents.
            timestep (`torch.Tensor` of shape `(batch,)`, or a scalar): diffusion timesteps.
            encoder_hidden_states (`torch.Tensor` of shape `(batch, seq_len, text_dim)`): text encoder states.
            encoder_attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): True on real tokens.
            attention_mask (`torch.Tensor` of shape `(batch, num_latent_frames)`, *optional*): True on real latent
                frames; padded frames are never attended to (their outputs are meaningless and must be masked).
            output_cross_attentions (`bool`, *optional*, defaults to `False`): also return every layer's
                cross-attention probabilities (needs `use_cross_attention=True`).
            return_dict (`bool`, *optional*, defaults to `True`): return a `SkeletonLatentDenoiserOutput`, else a tuple.
        """
        timestep, attention_mask = self._check_inputs(sample, timestep, attention_mask)
        text_mask = self._check_text(encoder_hidden_states, encoder_attention_mask)
        if encoder_hidden_states.shape[0] != sample.shape[0]:
            raise ValueError(
                f"`encoder_hidden_states` has batch size {encoder_hidden_states.shape[0]}; `sample` has {sample.shape[0]}."
            )
        n, d = sample.shape[1], self.config.hidden_dim
        temb = self.time_embedding(self.time_proj(timestep).to(sample.dtype))
        positions = get_timestep_embedding(
            torch.arange(n, device=sample.device), d, flip_sin_to_cos=True, downscale_freq_shift=0
        ).to(sample.dtype)
        z = self.proj_in(sample) + self.joint_embedding + positions[:, None, :]
        text = self.text_proj(encoder_hidden_states)
        frames = attention_mask if attention_mask is not None else torch.ones(sample.shape[:2], dtype=torch.bool, device=sample.device)
        if self.config.relative_positions:
            z = z + relative_position_embedding(frames, d).to(z.dtype)[:, :, None, :]
            text = text + relative_position_embedding(text_mask, d).to(text.dtype)
        if self.config.duration_conditioning:
            cond = self._duration_embedding(text, text_mask, frames, token_durations, token_order).to(z.dtype)
            z = z + cond.unflatten(-1, (-1, d))  # (B, N', 1 or J', D)
        elif token_durations is not None or token_order is not None:
            raise ValueError("`token_durations` / `token_order` need a denoiser with `duration_conditioning=True`.")
        text_token = None if self.config.use_cross_attention else _masked_mean(text, text_mask)

        if output_cross_attentions and not self.config.use_cross_attention:
            raise ValueError("`output_cross_attentions=True` needs `use_cross_attention=True` (this model has none).")

        inputs, attentions = [], []  # the input of every layer (for the long skips); cross-attention probabilities
        for i, layer in enumerate(self.layers):
            z = self._long_skip(i, z, inputs)
            inputs.append(z)
            args = (z, temb, text, text_mask, attention_mask, text_token, output_cross_attentions)
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                z = self._gradient_checkpointing_func(layer, *args)
            else:
                z = layer(*args)
            if output_cross_attentions:
                z, probs = z
                attentions.append(probs)
        z = self._long_skip(len(self.layers), z, inputs)
        out = self.proj_out(self.norm_out(z))
        attentions = tuple(attentions) if output_cross_attentions else None
        if not return_dict:
            return (out,) if attentions is None else (out, attentions)
        return SkeletonLatentDenoiserOutput(sample=out, cross_attentions=attentions)

    def _duration_embedding(self, text, text_mask, frame_mask, token_durations, token_order) -> torch.Tensor:
        """(B, N', D or J' * D): the text state of each frame's token, its phase and log segment length, projected."""
        index, phase, length = align_frames_to_tokens(token_durations, text_mask, frame_mask, token_order)
        d = self.config.hidden_dim
        token_state = text.gather(1, index[..., None].expand(-1, -1, d))
        phase_emb = get_timestep_embedding(phase.flatten() * 100.0, d, flip_sin_to_cos=True, downscale_freq_shift=0)
        feats = [token_state, phase_emb.reshape(*phase.shape, d).to(text.dtype), length.clamp_min(1e-3).log()[..., None].to(text.dtype)]
        return self.duration_proj(torch.cat(feats, dim=-1))

    def _long_skip(self, position: int, z: torch.Tensor, inputs: list) -> torch.Tensor:
        tau = self.config.skip_tau
        if not tau or position < tau:
            return z
        return self.skip_projs[position - tau](torch.cat([z, inputs[position - tau]], dim=-1))

    # ------------------------------------------------------------------------------------------ guidance
    def null_condition(
        self, batch_size: int, seq_len: int = 1, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Unconditional input: (states (batch, seq_len, text_dim), mask) with one valid token holding the learned null
        embedding and `seq_len - 1` masked zero tokens (so it can be concatenated with conditional states)."""
        null = self.null_text_embedding.to(device=device, dtype=dtype)
        states = torch.cat([null.expand(batch_size, 1, -1), null.new_zeros(batch_size, seq_len - 1, null.shape[0])], 1)
        mask = torch.zeros(batch_size, seq_len, dtype=torch.bool, device=null.device)
        mask[:, 0] = True
        return states, mask

    def drop_condition(
        self,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
        drop_prob: Optional[float] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Training-time condition dropout for classifier-free guidance (the trainer calls it before `forward`).

        Each sample's text is replaced by `null_condition` with probability `drop_prob` (default
        `config.cond_drop_prob`). Returns `(encoder_hidden_states, encoder_attention_mask)`; gradients reach the
        learned null embedding through the dropped samples.
        """
        mask = self._check_text(encoder_hidden_states, encoder_attention_mask)
        p = self.config.cond_drop_prob if drop_prob is None else drop_prob
        if p <= 0:
            return encoder_hidden_states, mask
        b, seq_len, _ = encoder_hidden_states.shape
        gen_device = generator.device if generator is not None else encoder_hidden_states.device
        drop = (torch.rand(b, generator=generator, device=gen_device) < p).to(encoder_hidden_states.device)
        null_states, null_mask = self.null_condition(b, seq_len, encoder_hidden_states.device, encoder_hidden_states.dtype)
        states = torch.where(drop[:, None, None], null_states, encoder_hidden_states)
        return states, torch.where(drop[:, None], null_mask, mask)

    # ------------------------------------------------------------------------------------------ length
    def predict_log_num_frames(
        self, encoder_hidden_states: torch.Tensor, encoder_attention_mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """log(number of full-rate frames) predicted from the text, shape (batch,)."""
        mask = self._check_text(encoder_hidden_states, encoder_attention_mask)
        return self.length_predictor(encoder_hidden_states, mask)

    @torch.no_grad()
    def predict_num_frames(
        self, encoder_hidden_states: torch.Tensor, encoder_attention_mask: Optional[torch.Tensor] = None
    ) -> torch.LongTensor:
        """Predicted number of full-rate frames per sample (batch,), rounded and clamped to [1, `max_frames`]."""
        log_n = self.predict_log_num_frames(encoder_hidden_states, encoder_attention_mask)
        return log_n.exp().round().clamp(1, self.config.max_frames).long()

    def length_loss(
        self,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: Optional[torch.Tensor],
        num_frames: torch.Tensor,
    ) -> torch.Tensor:
        """MSE between predicted and true log(num_frames); `num_frames` (batch,) counts real full-rate frames."""
        log_n = self.predict_log_num_frames(encoder_hidden_states, encoder_attention_mask)
        if tuple(num_frames.shape) != tuple(log_n.shape):
            raise ValueError(f"`num_frames` must have shape {tuple(log_n.shape)} (batch,); got {tuple(num_frames.shape)}.")
        return F.mse_loss(log_n, num_frames.to(log_n).clamp_min(1.0).log())

    # ------------------------------------------------------------------------------------------ durations
    def _check_durations_enabled(self):
        if not self.config.duration_conditioning:
            raise ValueError("This denoiser has no duration predictor (`duration_conditioning=False`).")

    def predict_token_timing(
        self, encoder_hidden_states: torch.Tensor, encoder_attention_mask: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """`(durations, order)`, both (batch, seq_len): predicted full-rate frames signed for every text token (0 on
        masked tokens and below one frame, i.e. words that are not signed) and their signing-order keys."""
        self._check_durations_enabled()
        mask = self._check_text(encoder_hidden_states, encoder_attention_mask)
        log_d, order = self.duration_predictor(encoder_hidden_states)
        durations = torch.expm1(log_d).clamp_min(0.0) * mask
        return torch.where(durations < 1.0, torch.zeros_like(durations), durations), order

    def duration_loss(
        self,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: Optional[torch.Tensor],
        token_durations: torch.Tensor,
        token_order: torch.Tensor,
    ) -> torch.Tensor:
        """MSE of log(1 + frames) over the valid tokens plus MSE of the order keys over the signed tokens."""
        self._check_durations_enabled()
        mask = self._check_text(encoder_hidden_states, encoder_attention_mask)
        for name, value in (("token_durations", token_durations), ("token_order", token_order)):
            if tuple(value.shape) != tuple(mask.shape):
                raise ValueError(f"`{name}` must have shape {tuple(mask.shape)} (batch, seq_len); got {tuple(value.shape)}.")
        log_d, order = self.duration_predictor(encoder_hidden_states)
        target = token_durations.to(log_d).clamp_min(0.0)
        err_d = ((log_d - target.log1p()) ** 2 * mask).sum() / mask.sum().clamp_min(1)
        signed = mask & (target > 0)
        err_o = ((order - token_order.to(order)) ** 2 * signed).sum() / signed.sum().clamp_min(1)
        return err_d + err_o
