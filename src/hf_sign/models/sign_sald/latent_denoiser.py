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
broadcast over frames and joints, initialised to the identity (so at initialisation every block is a plain pre-LN
residual block and the timestep modulation is learned from there).

Long skip connections (paper: "l -> l + tau, tau > 1, via learnable linear projections", after U-Net/U-ViT): the
input of layer `l` is also fed to layer `l + skip_tau` (the output head counts as layer `num_layers`), combined as
`Linear([z, z_skip])` with the projection initialised to pass `z` through and ignore `z_skip`.

Output: `proj_out(LN(z))` back to C channels, the prediction named by `prediction_type` (recorded for the
pipeline; the scheduler owns the parameterisation).

Blocks: attention is `hf_sign.models.attention.MaskedAttention` (it returns the cross-attention probabilities for
the attention-guidance loss), the FFN is diffusers' `FeedForward` (GELU), FiLM and the positions come from
`hf_sign.models.embeddings`, timesteps from diffusers' `Timesteps` / `TimestepEmbedding`, and the length and word
timing from `hf_sign.models.length_regulator`.

Classifier-free guidance: the model owns a learned null text embedding; `null_condition` gives the unconditional
input (one valid token holding the null embedding, the rest masked).

Ablations (Table 3): `use_temporal_attention=False` / `use_skeletal_attention=False` drop that sub-layer;
`use_cross_attention=False` ("w/o CrossAttn") replaces cross-attention with self-attention over the concatenation of
one sentence-level text token (masked mean of the projected text states) and all N' * J' pose tokens.

Options not in the paper (the `paper` config leaves them off):

* `relative_positions`: frames and text tokens also get the embedding of their position relative to their valid
  length, so cross-attention can align them whatever the absolute lengths.
* `duration_conditioning`: a `DurationConditioning` component gives every latent frame the projected text state of
  the token it signs and its phase within that token's frames, from a `TokenTiming` (per-token durations and
  signing order; a length regulator, as in FastSpeech). Training passes the timing from the corpus's `gloss_spans`;
  at inference `predict_token_timing` predicts it. Without a timing (and for the null condition) every valid token
  gets an equal share of the frames.

Length prediction: the number of frames to generate is predicted by a `LengthPredictor` on the text states,
regressing log(num_frames) (full-rate frames); it lives in this model so it is saved and loaded with the denoiser,
but shares no weights with it.

Checkpoints saved before the shared blocks load unchanged: `_LEGACY_KEY_RENAMES` maps their weight names
(`layers.<i>.ffn.0.*` -> `layers.<i>.ffn.net.0.proj.*`, `layers.<i>.ffn.3.*` -> `layers.<i>.ffn.net.2.*`,
`duration_predictor.*` -> `duration_conditioner.predictor.*`, `duration_proj.*` -> `duration_conditioner.proj.*`),
applied by `from_pretrained` (diffusers' `_fix_state_dict_keys_on_load`, single-file checkpoints) and by
`load_state_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import FeedForward
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from ..attention import MaskedAttention
from ..embeddings import FiLM, broadcast_timestep, relative_position_embedding, sinusoidal_embedding
from ..length_regulator import DurationConditioning, LengthPredictor, TokenTiming
from ..utils import masked_mean, rename_state_dict_keys

__all__ = ["SkeletonLatentDenoiser", "SkeletonLatentDenoiserOutput"]

# Weight names of checkpoints saved before the shared blocks -> today's names (see the module docstring).
_LEGACY_KEY_RENAMES = (
    (r"^(layers\.\d+\.)ffn\.0\.", r"\1ffn.net.0.proj."),
    (r"^(layers\.\d+\.)ffn\.3\.", r"\1ffn.net.2."),
    (r"^duration_predictor\.", "duration_conditioner.predictor."),
    (r"^duration_proj\.", "duration_conditioner.proj."),
)


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


class SequentialAttentionLayer(nn.Module):
    """TempAttn -> SkelAttn -> CrossAttn -> FFN, each `z + FiLM(A(LN(z)), t)` (eq. 5), on z of shape (B, N, J, D)."""

    def __init__(self, dim, num_heads, ff_dim, time_dim, dropout, use_temporal, use_skeletal, use_cross):
        super().__init__()
        # The text sub-layer is "cross" (cross-attention) or "joint" (self-attention over [sentence, pose tokens]).
        self.text_key = "cross" if use_cross else "joint"
        names = (["temporal"] if use_temporal else []) + (["skeletal"] if use_skeletal else []) + [self.text_key]
        self.norms = nn.ModuleDict({n: nn.LayerNorm(dim) for n in names + ["ffn"]})
        self.attns = nn.ModuleDict({n: MaskedAttention(dim, num_heads, dropout=dropout) for n in names})
        self.films = nn.ModuleDict({n: FiLM(time_dim, dim) for n in names + ["ffn"]})
        self.ffn = FeedForward(dim, inner_dim=ff_dim, dropout=dropout, activation_fn="gelu")

    def forward(
        self,
        z: torch.Tensor,
        temb: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        frame_mask: torch.Tensor,
        output_attentions: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Returns `(z, cross-attention probabilities (B, H, N, J, L) or None)`."""
        b, n, j, d = z.shape
        # 1. temporal attention: every atomic joint's sequence of frames (padded frames are never attended to)
        if "temporal" in self.attns:
            h = self.norms["temporal"](z).transpose(1, 2).reshape(b * j, n, d)
            h, _ = self.attns["temporal"](h, attention_mask=frame_mask.repeat_interleave(j, dim=0))
            z = z + self.films["temporal"](h.reshape(b, j, n, d).transpose(1, 2), temb)

        # 2. skeletal attention: the atomic joints of every frame
        if "skeletal" in self.attns:
            h, _ = self.attns["skeletal"](self.norms["skeletal"](z).reshape(b * n, j, d))
            z = z + self.films["skeletal"](h.reshape(b, n, j, d), temb)

        # 3. text: every pose token attends to the text tokens ("w/o CrossAttn": self-attention over the sentence
        #    token, the masked mean of the text, and all pose tokens)
        h = self.norms[self.text_key](z).reshape(b, n * j, d)
        probs = None
        if self.text_key == "cross":
            h, probs = self.attns["cross"](h, text, attention_mask=text_mask, output_attentions=output_attentions)
            probs = None if probs is None else probs.unflatten(2, (n, j))
        else:
            sentence = self.norms["joint"](masked_mean(text, text_mask))[:, None]
            pose_mask = frame_mask.repeat_interleave(j, dim=1)
            h, _ = self.attns["joint"](
                torch.cat([sentence, h], dim=1), attention_mask=torch.cat([pose_mask.new_ones(b, 1), pose_mask], 1)
            )
            h = h[:, 1:]
        z = z + self.films[self.text_key](h.reshape(b, n, j, d), temb)

        # 4. feed-forward
        z = z + self.films["ffn"](self.ffn(self.norms["ffn"](z)), temb)
        return z, probs


class SkeletonLatentDenoiser(ModelMixin, ConfigMixin, PeftAdapterMixin):
    r"""Sign-SALD noise predictor over skeletal-temporal latents (B, N', J', C), conditioned on text.

    Args:
        num_joints (`int`, *optional*, defaults to 7): J', atomic joints of the latent (1 for the "w/o ST-Latent" VAE).
        latent_channels (`int`, *optional*, defaults to 16): C, channels per latent token
            (`SkeletonVAE.latent_channels`).
        hidden_dim (`int`, *optional*, defaults to 256): D, transformer width.
        num_layers (`int`, *optional*, defaults to 8): sequential-attention layers.
        num_heads (`int`, *optional*, defaults to 4): attention heads (must divide `hidden_dim`).
        ff_mult (`int`, *optional*, defaults to 4): FFN width = `ff_mult * hidden_dim`.
        text_dim (`int`, *optional*, defaults to 512): width of the text hidden states (CLIP ViT-B/32: 512).
        time_embed_dim (`int`, *optional*): width of the timestep embedding; defaults to `hidden_dim`.
        dropout (`float`, *optional*, defaults to 0.0): dropout on attention probabilities and inside the FFN.
        max_frames (`int`, *optional*, defaults to 400): upper bound of `predict_num_frames` (full-rate frames). The
            sinusoidal position embedding itself has no length limit.
        skip_tau (`int`, *optional*, defaults to 2): long skip distance tau (> 1); 0 disables the long skips.
        use_temporal_attention (`bool`, *optional*, defaults to `True`): keep TempAttn ("w/o TempAttn" if False).
        use_skeletal_attention (`bool`, *optional*, defaults to `True`): keep SkelAttn ("w/o SkelAttn" if False).
        use_cross_attention (`bool`, *optional*, defaults to `True`): cross-attention to the text tokens; False is
            "w/o CrossAttn" (self-attention over a pooled sentence token concatenated with the pose tokens).
        prediction_type (`str`, *optional*, defaults to `"epsilon"`): what the output means; the scheduler must use
            the same (documentation for pipelines).
        length_predictor_hidden (`int`, *optional*, defaults to 128): hidden width of the length predictor MLP (and of
            the duration predictor's).
        relative_positions (`bool`, *optional*, defaults to `False`): add `relative_position_embedding` to the pose
            tokens (position within the valid frames) and to the projected text tokens (position within the valid
            tokens). Not in the paper and off in the `small` and `paper` configs; kept so that models trained with it
            keep loading.
        duration_conditioning (`bool`, *optional*, defaults to `False`): add a `DurationConditioning` component
            (`duration_conditioner`): every latent frame gets the projected text state of the token it signs and a
            sinusoidal embedding of its phase within that token's frames, from the `token_timing` passed to
            `forward`; `predict_token_timing` predicts it. Not in the paper.
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
        prediction_type: str = "epsilon",
        length_predictor_hidden: int = 128,
        relative_positions: bool = False,
        duration_conditioning: bool = False,
        duration_per_joint: bool = False,
    ):
        super().__init__()
        if hidden_dim % num_heads:
            raise ValueError(f"`hidden_dim` ({hidden_dim}) must be divisible by `num_heads` ({num_heads}).")
        if skip_tau and skip_tau < 2:
            raise ValueError(f"`skip_tau` must be 0 (no long skips) or > 1; got {skip_tau}.")
        time_dim = time_embed_dim or hidden_dim
        self.gradient_checkpointing = False

        # inputs: latent tokens, timestep, text (and the learned null text for classifier-free guidance)
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

        # length and word timing (not named like the config fields: ModelMixin resolves config names first)
        self.length_predictor = LengthPredictor(text_dim, length_predictor_hidden, max(max_frames / 4.0, 1.0))
        self.duration_conditioner = None
        if duration_conditioning:
            groups = num_joints if duration_per_joint else 1
            self.duration_conditioner = DurationConditioning(text_dim, hidden_dim, length_predictor_hidden, groups)

        self.register_load_state_dict_pre_hook(_rename_legacy_keys_hook)

    # ------------------------------------------------------------------------------------------ loading
    def _fix_state_dict_keys_on_load(self, state_dict):
        """diffusers' hook for renamed weights (see the module docstring): `from_pretrained` calls it on the loaded
        checkpoint before matching it to the model, on both of its loading paths (`low_cpu_mem_usage`)."""
        super()._fix_state_dict_keys_on_load(state_dict)
        return rename_state_dict_keys(state_dict, _LEGACY_KEY_RENAMES)

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
                f"`encoder_attention_mask` must have shape {tuple(states.shape[:2])} (batch, seq_len); "
                f"got {tuple(mask.shape)}."
            )
        mask = mask.bool()
        if not mask.any(1).all():
            raise ValueError(
                "`encoder_attention_mask` has a sample with no valid token; use `null_condition` instead."
            )
        return mask

    def _check_inputs(self, sample, timestep, attention_mask, encoder_hidden_states):
        """Validated `(timestep (B,), frame mask (B, N') bool)`; every frame is valid without `attention_mask`."""
        cfg = self.config
        if sample.ndim != 4 or tuple(sample.shape[2:]) != (cfg.num_joints, cfg.latent_channels):
            raise ValueError(
                f"`sample` must have shape (batch, num_latent_frames, {cfg.num_joints}, {cfg.latent_channels}) "
                f"(num_joints, latent_channels); got {tuple(sample.shape)}."
            )
        b, n = sample.shape[:2]
        if encoder_hidden_states.shape[0] != b:
            raise ValueError(
                f"`encoder_hidden_states` has batch size {encoder_hidden_states.shape[0]}; `sample` has {b}."
            )
        timestep = broadcast_timestep(timestep, b, sample.device)
        if attention_mask is None:
            return timestep, torch.ones(b, n, dtype=torch.bool, device=sample.device)
        if tuple(attention_mask.shape) != (b, n):
            raise ValueError(
                f"`attention_mask` must have shape ({b}, {n}) (batch, num_latent_frames); "
                f"got {tuple(attention_mask.shape)}."
            )
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
        token_timing: Optional[TokenTiming] = None,
        output_cross_attentions: bool = False,
        return_dict: bool = True,
    ) -> Union[SkeletonLatentDenoiserOutput, Tuple]:
        """Predict the noise (or what `prediction_type` names) in `sample`.

        Args:
            sample (`torch.Tensor` of shape `(batch, num_latent_frames, num_joints, latent_channels)`): noisy latents.
            timestep (`torch.Tensor` of shape `(batch,)`, or a scalar): diffusion timesteps.
            encoder_hidden_states (`torch.Tensor` of shape `(batch, seq_len, text_dim)`): text encoder states.
            encoder_attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): True on real tokens.
            attention_mask (`torch.Tensor` of shape `(batch, num_latent_frames)`, *optional*): True on real latent
                frames; padded frames are never attended to (their outputs are meaningless and must be masked).
            token_timing (`TokenTiming`, *optional*): when each text token is signed (needs
                `duration_conditioning=True`); `None` shares the frames evenly among the tokens. Give the null
                condition an empty timing (`TokenTiming.empty_like`).
            output_cross_attentions (`bool`, *optional*, defaults to `False`): also return every layer's
                cross-attention probabilities (needs `use_cross_attention=True`).
            return_dict (`bool`, *optional*, defaults to `True`): return a `SkeletonLatentDenoiserOutput`, else a
                tuple `(sample,)`, or `(sample, cross_attentions)` with `output_cross_attentions`.
        """
        # 1. check the inputs
        timestep, frame_mask = self._check_inputs(sample, timestep, attention_mask, encoder_hidden_states)
        text_mask = self._check_text(encoder_hidden_states, encoder_attention_mask)
        if token_timing is not None and self.duration_conditioner is None:
            raise ValueError("`token_timing` needs a denoiser with `duration_conditioning=True`.")
        if output_cross_attentions and not self.config.use_cross_attention:
            raise ValueError("`output_cross_attentions=True` needs `use_cross_attention=True` (this model has none).")
        n, d = sample.shape[1], self.config.hidden_dim

        # 2. timestep embedding
        temb = self.time_embedding(self.time_proj(timestep).to(sample.dtype))

        # 3. pose tokens (B, N', J', D): latent projection + joint embedding + sinusoidal frame position
        positions = sinusoidal_embedding(torch.arange(n, device=sample.device), d).to(sample.dtype)
        z = self.proj_in(sample) + self.joint_embedding + positions[:, None, :]

        # 4. text tokens (B, L, D)
        text = self.text_proj(encoder_hidden_states)

        # 5. relative positions of the frames and the text tokens (option)
        if self.config.relative_positions:
            z = z + relative_position_embedding(frame_mask, d).to(z.dtype)[:, :, None, :]
            text = text + relative_position_embedding(text_mask, d).to(text.dtype)

        # 6. word timing: each frame gets the text state of the token it signs (option)
        if self.duration_conditioner is not None:
            z = z + self.duration_conditioner(text, text_mask, frame_mask, token_timing).to(z.dtype)

        # 7. the layers, with long skips from `skip_tau` positions back
        inputs, attentions = [], []
        for i, layer in enumerate(self.layers):
            z = self._long_skip(i, z, inputs)
            inputs.append(z)
            args = (z, temb, text, text_mask, frame_mask, output_cross_attentions)
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                z, probs = self._gradient_checkpointing_func(layer, *args)
            else:
                z, probs = layer(*args)
            attentions.append(probs)
        z = self._long_skip(len(self.layers), z, inputs)

        # 8. output head
        out = self.proj_out(self.norm_out(z))
        attentions = tuple(attentions) if output_cross_attentions else None
        if not return_dict:
            return (out,) if attentions is None else (out, attentions)
        return SkeletonLatentDenoiserOutput(sample=out, cross_attentions=attentions)

    def _long_skip(self, position: int, z: torch.Tensor, inputs: list) -> torch.Tensor:
        tau = self.config.skip_tau
        if not tau or position < tau:
            return z
        return self.skip_projs[position - tau](torch.cat([z, inputs[position - tau]], dim=-1))

    # ------------------------------------------------------------------------------------------ guidance
    def null_condition(
        self,
        batch_size: int,
        seq_len: int = 1,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Unconditional input: (states (batch, seq_len, text_dim), mask) with one valid token holding the learned null
        embedding and `seq_len - 1` masked zero tokens (so it can be concatenated with conditional states)."""
        null = self.null_text_embedding.to(device=device, dtype=dtype)
        states = torch.cat([null.expand(batch_size, 1, -1), null.new_zeros(batch_size, seq_len - 1, null.shape[0])], 1)
        mask = torch.zeros(batch_size, seq_len, dtype=torch.bool, device=null.device)
        mask[:, 0] = True
        return states, mask

    # ------------------------------------------------------------------------------------ length and timing
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
        return log_n.float().exp().round().clamp(1, self.config.max_frames).long()

    def predict_token_timing(
        self, encoder_hidden_states: torch.Tensor, encoder_attention_mask: Optional[torch.Tensor] = None
    ) -> TokenTiming:
        """Predicted `TokenTiming` (batch, seq_len): full-rate frames signed for every text token (0 on masked tokens
        and below one frame, i.e. words that are not signed) and their signing-order keys."""
        self._check_durations_enabled()
        mask = self._check_text(encoder_hidden_states, encoder_attention_mask)
        return self.duration_conditioner.predict(encoder_hidden_states, mask)

    def _check_durations_enabled(self):
        if self.duration_conditioner is None:
            raise ValueError("This denoiser has no duration predictor (`duration_conditioning=False`).")


def _rename_legacy_keys_hook(module, state_dict, prefix, *args) -> None:
    """`load_state_dict` pre-hook: older weight names -> today's, under the module's `prefix`."""
    rename_state_dict_keys(state_dict, _LEGACY_KEY_RENAMES, prefix)
