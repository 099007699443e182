"""`SignVideoPipeline`: signing poses -> signer video with Stable Signer's pose-to-video renderer, inference only.

The renderer is diffusers' own `UNet2DConditionModel` and `ControlNetModel` in pixel space: the ControlNet reads the
skeleton control frame (`hf_sign.render.avatar.draw_skeleton_frames`), the UNet's and the ControlNet's cross attention
read the reference appearance tokens (`ReferenceImageEncoder`). Pixels may be packed into channels before the UNet
(a pixel-unshuffle by the patch size, `2 ** (len(controlnet.config.conditioning_embedding_out_channels) - 1)`: 2 x 2
pixels become 12 channels at half the resolution, a permutation of the same pixels, so the noise and the loss are
unchanged by it). A UNet with three times the channels also reads the control frame and the reference image
concatenated to its noisy input (the renderer's `concat_conditioning` option: pixel-aligned conditioning that a small
renderer trained from scratch picks up much faster than ControlNet's zero-initialised residuals).

Steps of `__call__`:

1. check the inputs (clear `ValueError`s naming the argument);
2. poses -> joint positions (the skeleton's forward kinematics), or positions as given;
3. draw the control frames (coloured skeleton on black) in one framing for the whole sequence;
4. encode the reference appearance: a `reference_image`, or the avatar drawn from the first pose in a `style`;
5. set the scheduler's timesteps and draw ONE initial noise image, shared by every frame;
6. denoise the frames in batches of `frame_batch_size` (DDIM by default, eta 0);
7. postprocess to uint8 frames / tensors / PIL images, and optionally write a video with `render.video.save_video`.

Temporal consistency comes from two things every frame shares: the same initial noise (with DDIM at eta 0 the sampler
is then a deterministic function of the control frame and the reference, so two frames with the same pose get the
same picture and nearby poses nearby pictures: nothing flickers from noise), and the same reference tokens (the
appearance is read from one image for the whole sequence).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ControlNetModel, UNet2DConditionModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput, replace_example_docstring
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from ..models.stable_signer import ReferenceImageEncoder
from ..render.avatar import AVATAR_STYLES, AvatarStyle, draw_avatar_frames, draw_skeleton_frames, get_avatar_style
from ..render.video import save_video
from .pipeline_utils import SignPipeline

__all__ = [
    "SignVideoPipeline",
    "SignVideoPipelineOutput",
    "VIDEO_OUTPUT_TYPES",
    "renderer_layout",
    "renderer_noise_prediction",
]

# "np": uint8 frames (T, H, W, 3); "pt": float frames (T, 3, H, W) in [0, 1]; "pil": a list of PIL images
VIDEO_OUTPUT_TYPES = ("np", "pt", "pil")

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from hf_sign.pipelines.pipeline_sign_video import SignVideoPipeline

        >>> pipe = SignVideoPipeline.from_pretrained("outputs/sign-video")
        >>> poses = ...  # (num_frames, 133) smplx133 features, e.g. a pose pipeline's `out.poses[0]`
        >>> out = pipe(poses=poses, style="studio", num_inference_steps=20, generator=torch.Generator().manual_seed(0),
        ...            output_path="sign.mp4")
        >>> out.frames.shape  # (num_frames, 64, 64, 3) uint8

        >>> # the appearance of any picture of a signer instead of a preset style
        >>> out = pipe(poses=poses, reference_image=out.frames[0])
        ```
"""


@dataclass
class SignVideoPipelineOutput(BaseOutput):
    """Output of [`SignVideoPipeline`].

    Args:
        frames (`np.ndarray`, `torch.Tensor` or `List[PIL.Image.Image]`): the video, `(T, H, W, 3)` uint8 for
            `output_type="np"`, `(T, 3, H, W)` float in [0, 1] for `"pt"`, `T` images for `"pil"`.
        control_frames (`np.ndarray`): the skeleton control frames `(T, H, W, 3)` uint8 the renderer followed.
        reference_image (`np.ndarray`): the reference appearance image `(H, W, 3)` uint8.
        fps (`float`): frame rate of the video.
        video_path (`str`, *optional*): the written video file, when `output_path` was given.
    """

    frames: Any
    control_frames: np.ndarray
    reference_image: np.ndarray
    fps: float
    video_path: Optional[str] = None


def renderer_layout(unet: UNet2DConditionModel, controlnet: ControlNetModel) -> Tuple[int, bool]:
    """`(patch_size, concat_conditioning)` of a renderer: the patch size from the ControlNet's control embedding (one
    stride-2 step per extra entry), and whether the UNet's input also holds the control and reference images (three
    times `3 * patch_size**2` channels instead of once)."""
    patch = 2 ** (len(controlnet.config.conditioning_embedding_out_channels) - 1)
    channels = int(unet.config.in_channels)
    if channels not in (3 * patch**2, 9 * patch**2) or unet.config.out_channels != 3 * patch**2:
        raise ValueError(
            f"The UNet's in/out channels ({channels}/{unet.config.out_channels}) fit neither {3 * patch**2} nor "
            f"{9 * patch**2} input channels for the ControlNet's patch size {patch}."
        )
    return patch, channels == 9 * patch**2


def renderer_noise_prediction(
    unet: UNet2DConditionModel,
    controlnet: ControlNetModel,
    sample: torch.Tensor,
    timestep: torch.Tensor,
    control: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    reference_image: Optional[torch.Tensor] = None,
    conditioning_scale: float = 1.0,
) -> torch.Tensor:
    """The renderer's noise prediction for noisy frames `sample` `(B, 3, H, W)` (what training and sampling share).

    `control` is the skeleton frame `(B, 3, H, W)` in [0, 1]; `encoder_hidden_states` the reference tokens;
    `reference_image` `(B, 3, H, W)` in [-1, 1] is needed by a UNet with concatenated conditioning. Frames are
    pixel-unshuffled by the patch size into the UNet and its output shuffled back (`renderer_layout`).
    """
    patch, concat = renderer_layout(unet, controlnet)
    x = sample
    if concat:
        if reference_image is None:
            raise ValueError("`reference_image` is needed: this UNet reads the control and reference images too.")
        x = torch.cat([sample, control * 2.0 - 1.0, reference_image], dim=1)
    x = F.pixel_unshuffle(x, patch) if patch > 1 else x
    down, mid = controlnet(
        x,
        timestep,
        encoder_hidden_states=encoder_hidden_states,
        controlnet_cond=control,
        conditioning_scale=conditioning_scale,
        return_dict=False,
    )
    eps = unet(
        x,
        timestep,
        encoder_hidden_states=encoder_hidden_states,
        down_block_additional_residuals=down,
        mid_block_additional_residual=mid,
    ).sample
    return F.pixel_shuffle(eps, patch) if patch > 1 else eps


def image_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 `(N, H, W, 3)` -> float `(N, 3, H, W)` in [-1, 1]."""
    return torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class SignVideoPipeline(SignPipeline):
    r"""Pose-to-video rendering: skeleton-controlled, reference-conditioned pixel diffusion.

    Args:
        unet ([`~diffusers.UNet2DConditionModel`]): the denoiser (`in_channels = 3 * patch_size**2`, or three times
            that with concatenated control and reference images), with cross attention of width
            `reference_encoder.config.cross_attention_dim`.
        controlnet ([`~diffusers.ControlNetModel`]): reads the skeleton control frame at full resolution (its
            conditioning embedding downsamples by `patch_size`).
        reference_encoder ([`ReferenceImageEncoder`]): the reference image -> cross-attention tokens.
        scheduler ([`~diffusers.SchedulerMixin`]): e.g. `DDIMScheduler` with the training schedule
            (`prediction_type="epsilon"`).
        image_size (`int`, *optional*): frame width and height in pixels (a multiple of `unet.config.sample_size`);
            defaults to the UNet's: `sample_size` times the patch size.
        skeleton (`str`, *optional*, defaults to `"smplx133"`): the skeleton of the input poses.
        fps (`float`, *optional*, defaults to 24.0): frame rate of written videos.
        default_style (`str`, *optional*): preset style used when neither `reference_image` nor `style` is given;
            defaults to the first of `AVATAR_STYLES`.
        default_strength (`float`, *optional*, defaults to 1.0): `strength` when `__call__` gets none.
    """

    model_cpu_offload_seq = "reference_encoder->controlnet->unet"
    _hub_entry_file = "pipeline_sign_video"
    _settings = ("fps", "skeleton", "image_size", "default_style", "default_strength")
    _callback_tensor_inputs: List[str] = []

    def __init__(
        self,
        unet: UNet2DConditionModel,
        controlnet: ControlNetModel,
        reference_encoder: ReferenceImageEncoder,
        scheduler: SchedulerMixin,
        image_size: Optional[int] = None,
        skeleton: str = "smplx133",
        fps: float = 24.0,
        default_style: Optional[str] = None,
        default_strength: float = 1.0,
    ):
        super().__init__()
        self.register_modules(
            unet=unet, controlnet=controlnet, reference_encoder=reference_encoder, scheduler=scheduler
        )
        default_style = get_avatar_style(default_style or AVATAR_STYLES[0].name).name
        if unet is not None and controlnet is not None:
            patch = renderer_layout(unet, controlnet)[0]
            if image_size is None:
                image_size = int(unet.config.sample_size) * patch
            if image_size != int(unet.config.sample_size) * patch:
                raise ValueError(
                    f"`image_size`={image_size} does not fit the UNet: expected its sample_size "
                    f"{unet.config.sample_size} times the patch size {patch}."
                )
        image_size = 64 if image_size is None else image_size
        if isinstance(default_strength, bool) or not 0 < float(default_strength) <= 1:
            raise ValueError(f"`default_strength` must be a number in (0, 1]; got {default_strength!r}.")
        self.register_to_config(
            image_size=int(image_size),
            skeleton=skeleton,
            fps=float(fps),
            default_style=default_style,
            default_strength=float(default_strength),
        )

    @property
    def output_types(self) -> Tuple[str, ...]:
        return VIDEO_OUTPUT_TYPES

    @property
    def patch_size(self) -> int:
        """Pixels per side packed into the UNet's channels."""
        return renderer_layout(self.unet, self.controlnet)[0]

    @classmethod
    def from_renderer_folder(
        cls, folder: Union[str, Path], skeleton: str = "smplx133", fps: float = 24.0, **kwargs
    ) -> "SignVideoPipeline":
        """The pipeline from a renderer training stage's output: `unet/`, `controlnet/`, `reference_encoder/` and
        `renderer_scheduler/` under `folder`; `image_size` follows the UNet. `kwargs` go to the pipeline (e.g.
        `default_style`)."""
        from diffusers import DDIMScheduler

        folder = Path(folder)
        missing = [
            n for n in ("unet", "controlnet", "reference_encoder", "renderer_scheduler") if not (folder / n).is_dir()
        ]
        if missing:
            raise ValueError(f"`folder` {str(folder)!r} is not a renderer folder: it lacks {missing}.")
        return cls(
            unet=UNet2DConditionModel.from_pretrained(str(folder / "unet")),
            controlnet=ControlNetModel.from_pretrained(str(folder / "controlnet")),
            reference_encoder=ReferenceImageEncoder.from_pretrained(str(folder / "reference_encoder")),
            scheduler=DDIMScheduler.from_pretrained(str(folder / "renderer_scheduler")),
            skeleton=skeleton,
            fps=fps,
            **kwargs,
        )

    # ------------------------------------------------------------------------------------------ checks
    def check_inputs(self, poses, strength, positions, reference_image, style, num_inference_steps, frame_batch_size,
                     output_type, generator, fps, latents) -> None:
        """Raise a `ValueError` naming the argument for anything `__call__` cannot honour."""
        spec = self.skeleton
        if (poses is None) == (positions is None):
            raise ValueError("Give exactly one of `poses` (features) and `positions` (joint positions).")
        if poses is not None:
            shape = tuple(getattr(poses, "shape", np.shape(poses)))
            if len(shape) != 2 or shape[1] != spec.feature_dim:
                raise ValueError(
                    f"`poses` must have shape (num_frames, {spec.feature_dim}) for skeleton {spec.name!r}; got "
                    f"{shape}."
                )
            if shape[0] == 0:
                raise ValueError("`poses` is empty; give at least one frame.")
        else:
            shape = tuple(getattr(positions, "shape", np.shape(positions)))
            if len(shape) != 3 or shape[1:] != (spec.num_position_joints, 3) or shape[0] == 0:
                raise ValueError(
                    f"`positions` must have shape (num_frames >= 1, {spec.num_position_joints}, 3) for skeleton "
                    f"{spec.name!r}; got {shape}."
                )
        if reference_image is not None and style is not None:
            raise ValueError("Give at most one of `reference_image` and `style`.")
        if style is not None:
            get_avatar_style(style)
        for name, value in (("num_inference_steps", num_inference_steps), ("frame_batch_size", frame_batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` must be a positive int; got {value!r}.")
        if output_type not in VIDEO_OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {VIDEO_OUTPUT_TYPES}; got {output_type!r}.")
        if strength is not None and (
            isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1
        ):
            raise ValueError(f"`strength` must be a number in (0, 1]; got {strength!r}.")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(
                f"`generator` must be one torch.Generator (the frames share their noise); got {type(generator)}."
            )
        if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0):
            raise ValueError(f"`fps` must be a positive number; got {fps!r}.")
        size = int(self.config.image_size)
        if latents is not None and (not torch.is_tensor(latents) or tuple(latents.shape) != (1, 3, size, size)):
            shape = tuple(latents.shape) if torch.is_tensor(latents) else type(latents).__name__
            raise ValueError(f"`latents` must be a tensor (1, 3, {size}, {size}) shared by every frame; got {shape}.")

    def prepare_reference(self, reference_image, style, positions: np.ndarray) -> np.ndarray:
        """The reference appearance as uint8 `(H, W, 3)`: the given image (resized to `image_size`), or the avatar of
        the first pose in `style` (default: `config.default_style`)."""
        size = int(self.config.image_size)
        if reference_image is None:
            style = get_avatar_style(style if style is not None else self.config.default_style)
            return draw_avatar_frames(positions, self.skeleton, style, size, frames=[0])[0]
        if isinstance(reference_image, Image.Image):
            image = reference_image.convert("RGB")
        else:
            arr = reference_image.detach().cpu().numpy() if torch.is_tensor(reference_image) else reference_image
            arr = np.asarray(arr)
            if arr.ndim != 3 or arr.shape[-1] != 3:
                raise ValueError(
                    f"`reference_image` must be a PIL image or an (height, width, 3) array; got shape {arr.shape}."
                )
            if arr.dtype != np.uint8:
                if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
                    raise ValueError("`reference_image` as a float array must hold values in [0, 1].")
                arr = np.round(arr * 255).astype(np.uint8)
            image = Image.fromarray(arr)
        if image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR)
        return np.asarray(image)

    def _denoise(
        self, chunks, init, control, states, ref, num_inference_steps, start, step_kwargs, conditioning_scale
    ):
        """Denoise every chunk of frames from the shared `init` over the timesteps from `start` on; returns the float
        frames of each chunk."""
        device, dtype = self._execution_device, self.unet.dtype
        out = []
        with self.progress_bar(total=len(chunks) * (num_inference_steps - start)) as bar:
            for chunk in chunks:
                # set again for every chunk: resets the state of multistep schedulers
                timesteps = self.prepare_timesteps(num_inference_steps, device)[start:]
                cond = control[chunk.start : chunk.stop].to(device, dtype)
                x = init.expand(len(chunk), -1, -1, -1).clone()
                hidden, refs = states.expand(len(chunk), -1, -1), ref.expand(len(chunk), -1, -1, -1)
                for t in timesteps:
                    model_in = self.scheduler.scale_model_input(x, t)
                    eps = renderer_noise_prediction(
                        self.unet, self.controlnet, model_in, t, cond, hidden, refs, conditioning_scale
                    )
                    x = self.scheduler.step(eps, t, x, **step_kwargs).prev_sample
                    bar.update()
                out.append(x.float().cpu())
        return out

    # ------------------------------------------------------------------------------------------ call
    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        poses: Optional[Union[np.ndarray, torch.Tensor]] = None,
        positions: Optional[Union[np.ndarray, torch.Tensor]] = None,
        reference_image: Optional[Union[Image.Image, np.ndarray]] = None,
        style: Optional[Union[str, AvatarStyle]] = None,
        num_inference_steps: int = 25,
        strength: Optional[float] = None,
        generator: Optional[torch.Generator] = None,
        latents: Optional[torch.Tensor] = None,
        frames: Optional[List[int]] = None,
        frame_batch_size: int = 16,
        controlnet_conditioning_scale: float = 1.0,
        eta: float = 0.0,
        output_type: str = "np",
        return_dict: bool = True,
        fps: Optional[float] = None,
        output_path: Optional[Union[str, Path]] = None,
        show_progress: Optional[bool] = None,
    ) -> Union[SignVideoPipelineOutput, tuple]:
        r"""Render a signing pose sequence as a video of a signer.

        Args:
            poses (`np.ndarray` or `torch.Tensor`, *optional*): features `(num_frames, feature_dim)` of
                `config.skeleton` in dataset units. Either this or `positions`.
            positions (`np.ndarray` or `torch.Tensor`, *optional*): joint positions `(num_frames, J, 3)` of the
                skeleton's position view instead.
            reference_image (`PIL.Image.Image` or `np.ndarray`, *optional*): the signer's appearance, an RGB image
                (uint8, or float in [0, 1]); resized to `image_size`. Not together with `style`.
            style (`str` or `AvatarStyle`, *optional*): a preset name of `AVATAR_STYLES` or an [`AvatarStyle`]: the
                reference is the avatar of the first pose in that style. Default: `config.default_style`.
            num_inference_steps (`int`, *optional*, defaults to 25): denoising steps of a full schedule.
            strength (`float`, *optional*): in (0, 1]: how much of the schedule runs. 1 starts from pure noise; below 1
                every frame starts from the reference image noised to the timestep `strength` of the way down the
                schedule (the "reference latent": frames share the reference's appearance and background from the
                start), and `round(strength * num_inference_steps)` steps run. Defaults to `config.default_strength`.
            generator (`torch.Generator`, *optional*): draws the one initial noise image shared by every frame.
            latents (`torch.Tensor`, *optional*): that initial noise `(1, 3, image_size, image_size)` instead.
            frames (`List[int]`, *optional*): render only these frame indices (the framing still fits the whole
                sequence, so they match the full video's frames); default: every frame.
            frame_batch_size (`int`, *optional*, defaults to 16): frames denoised together.
            controlnet_conditioning_scale (`float`, *optional*, defaults to 1.0): weight of the ControlNet residuals.
            eta (`float`, *optional*, defaults to 0.0): DDIM's eta (0 keeps frames consistent; ignored by schedulers
                without it).
            output_type (`str`, *optional*, defaults to `"np"`): `"np"` (uint8 `(T, H, W, 3)`), `"pt"` (float
                `(T, 3, H, W)` in [0, 1]) or `"pil"` (a list of images).
            return_dict (`bool`, *optional*, defaults to `True`): return a [`SignVideoPipelineOutput`], else a tuple.
            fps (`float`, *optional*): frame rate of the written video; default `config.fps`.
            output_path (`str` or `Path`, *optional*): write the frames to this `.mp4` or `.gif` file.
            show_progress (`bool`, *optional*): show the denoising progress bar for this call (default: the
                pipeline's progress bar configuration, `set_progress_bar_config`).

        Examples:

        Returns:
            [`SignVideoPipelineOutput`] or `tuple`.
        """
        # 1. check the inputs
        self.check_inputs(poses, strength, positions, reference_image, style, num_inference_steps, frame_batch_size,
                          output_type, generator, fps, latents)
        spec, size, device = self.skeleton, int(self.config.image_size), self._execution_device
        dtype = self.unet.dtype

        # 2. joint positions
        if poses is not None:
            arr = poses.detach().cpu().numpy() if torch.is_tensor(poses) else np.asarray(poses)
            positions = np.asarray(spec.to_positions(arr.astype(np.float32)))
        else:
            positions = positions.detach().cpu().numpy() if torch.is_tensor(positions) else np.asarray(positions)
        if frames is not None:
            frames = list(frames)
            bad = [
                f
                for f in frames
                if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not 0 <= f < positions.shape[0]
            ]
            if bad or not frames:
                raise ValueError(
                    f"`frames` must be a non-empty list of frame indices in 0..{positions.shape[0] - 1}; got {frames}."
                )

        # 3. control frames, one framing for the whole sequence
        control_frames = draw_skeleton_frames(positions, spec, size, frames=frames)
        num_frames = control_frames.shape[0]
        control = (image_to_tensor(control_frames) + 1.0) / 2.0  # ControlNet conditioning in [0, 1]

        # 4. the reference appearance tokens, shared by every frame
        reference = self.prepare_reference(reference_image, style, positions)
        ref = image_to_tensor(reference[None]).to(device, dtype)
        states = self.reference_encoder(ref).last_hidden_state

        # 5. one initial noise image for every frame: pure noise, or (strength < 1) the reference image noised to the
        # first of the remaining timesteps
        strength = float(self.config.default_strength if strength is None else strength)
        timesteps = self.prepare_timesteps(num_inference_steps, device)
        start = num_inference_steps - min(num_inference_steps, max(1, int(round(num_inference_steps * strength))))
        if latents is None:
            latents = randn_tensor((1, 3, size, size), generator=generator, device=device, dtype=dtype)
        if start == 0:
            init = latents.to(device, dtype) * self.scheduler.init_noise_sigma
        else:
            init = self.scheduler.add_noise(ref, latents.to(device, dtype), timesteps[start : start + 1])
        step_kwargs = self.prepare_extra_step_kwargs(generator, eta)

        # 6. denoise the frames batch by batch
        chunks = [range(i, min(i + frame_batch_size, num_frames)) for i in range(0, num_frames, frame_batch_size)]
        bar_config = dict(getattr(self, "_progress_bar_config", {}))
        if show_progress is not None:
            self.set_progress_bar_config(**{**bar_config, "disable": not show_progress})
        try:
            out = self._denoise(
                chunks,
                init,
                control,
                states,
                ref,
                num_inference_steps,
                start,
                step_kwargs,
                controlnet_conditioning_scale,
            )
        finally:
            self._progress_bar_config = bar_config
        video = (torch.cat(out).clamp(-1, 1) + 1.0) / 2.0  # (T, 3, H, W) in [0, 1]

        # 7. outputs (and the video file)
        frames_u8 = (video.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        fps = float(fps if fps is not None else self.fps)
        video_path = None
        if output_path is not None:
            video_path = str(save_video(frames_u8, output_path, fps))
        if output_type == "pt":
            result = video
        elif output_type == "pil":
            result = [Image.fromarray(f) for f in frames_u8]
        else:
            result = frames_u8
        self.maybe_free_model_hooks()
        output = SignVideoPipelineOutput(
            frames=result, control_frames=control_frames, reference_image=reference, fps=fps, video_path=video_path
        )
        return output if return_dict else output.to_tuple()
