"""`StableSignerPipeline`: prompt or text -> glosses -> 3D signing poses (-> video) with Stable Signer, inference only.

Steps of `__call__` (on the hf-sign pipeline base, `pipeline_utils.SignPipeline`):

1. check the inputs (clear `ValueError`s; a language the linker was not trained on is refused);
2. SLUL: the T5 linker turns each prompt, prefixed by its language tag, into glosses (`linker.generate`, greedy or
   beam search); with `gloss=` the given glosses are used instead (the prompt, or the glosses themselves when no
   prompt is given, still feeds the encoder whose states make the gate's query);
3. glosses the pose bank does not hold are replaced by the nearest bank gloss by linker embedding (cosine of the
   pooled encoder states of the gloss spelled as text); every replacement is reported in `info`, nothing dropped;
4. SLP-MoE: the gate weighs the `K` experts per gloss from the query `[Pool(H); d_i]`; the top-gated expert's clip is
   taken (`sample_experts=True` draws the expert from the gate weights with `generator` instead);
5. the clips are joined into a sentence with minimum-jerk transitions (the bank's lead-in, transitions, lead-out),
   resampled to `num_frames` / `duration_s` when given;
6. `output_type="video"` renders the poses with the pose-to-video renderer (`SignVideoPipeline` over this pipeline's
   `unet`, `controlnet`, `reference_encoder` and `renderer_scheduler`; present once the `renderer` stage has run).

`info` of each sequence: `glosses` (what was signed), `linked_glosses` (the linker's or the given glosses),
`replaced_glosses` (`{"index", "gloss", "replacement", "similarity"}` each), `experts`, `gate_weights`, `language`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import replace_example_docstring
from transformers import PreTrainedModel  # noqa: F401  (diffusers looks the loading class up by name)
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from ..data.pose_bank import PoseBank
from ..data.resample import resample_to_length
from ..models.stable_signer.expert_gate import PoseExpertGate
from ..models.stable_signer.linker import SignLinkerForConditionalGeneration
from ..models.stable_signer.reference_encoder import ReferenceImageEncoder
from .pipeline_utils import SignPipeline, SignPipelineOutput, check_gloss

__all__ = ["StableSignerPipeline", "StableSignerPipelineOutput"]

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> from hf_sign.pipelines.pipeline_stable_signer import StableSignerPipeline

        >>> pipe = StableSignerPipeline.from_pretrained("outputs/stable-signer-small")  # `hf-sign train stable-signer`
        >>> out = pipe('How do you sign "where was the brother yesterday?"?')
        >>> out.info[0]["glosses"], out.poses[0].shape
        (['YESTERDAY', 'BROTHER', 'WHERE'], (62, 133))

        >>> out = pipe("where was the brother yesterday?", output_type="video", num_inference_steps=20)
        >>> out.frames[0].shape  # (num_frames, 64, 64, 3) uint8
        ```
"""


@dataclass
class StableSignerPipelineOutput(SignPipelineOutput):
    """[`SignPipelineOutput`] plus the rendered video of each sequence.

    Args:
        frames (`List[np.ndarray]`, *optional*): `(num_frames_i, H, W, 3)` uint8 frames, for `output_type="video"`.
    """

    frames: Optional[List[np.ndarray]] = None


class StableSignerPipeline(SignPipeline):
    r"""Prompt/text-to-sign generation with Stable Signer: SLUL linker, pose-prior SLP-MoE, pose-to-video renderer.

    Args:
        linker ([`SignLinkerForConditionalGeneration`]): the T5 prompt/text -> gloss linker.
        tokenizer ([`~transformers.PreTrainedTokenizerBase`]): the linker's tokenizer.
        gate ([`PoseExpertGate`]): the SLP-MoE gate over the pose bank's experts.
        pose_bank ([`PoseBank`]): gloss -> K candidate clips (an HF dataset in `pose_bank/`).
        unet ([`~diffusers.UNet2DConditionModel`], *optional*): the renderer's denoiser.
        controlnet ([`~diffusers.ControlNetModel`], *optional*): the renderer's skeleton-frame conditioning.
        reference_encoder ([`ReferenceImageEncoder`], *optional*): the renderer's appearance encoder.
        renderer_scheduler ([`~diffusers.SchedulerMixin`], *optional*): the renderer's scheduler (DDIM).
        fps (`float`, *optional*, defaults to 24.0): frame rate of the corpus.
        skeleton (`str`, *optional*): output skeleton; defaults to the bank's representation.
        default_language (`str`, *optional*): language tag used when `__call__` gets none; defaults to the linker's
            first tag.
        video_settings (`dict`, *optional*): the renderer's settings (image size, default style, steps), kept
            for the video pipeline.
    """

    model_cpu_offload_seq = "linker->gate"
    _hub_entry_file = "pipeline_stable_signer"
    _settings = ("fps", "skeleton", "default_language", "video_settings")
    _optional_components = ["unet", "controlnet", "reference_encoder", "renderer_scheduler"]
    _extra_output_types = ("video",)
    _supports_latent_output = False

    def __init__(
        self,
        linker: SignLinkerForConditionalGeneration,
        tokenizer: PreTrainedTokenizerBase,
        gate: PoseExpertGate,
        pose_bank: PoseBank,
        unet: Optional[UNet2DConditionModel] = None,
        controlnet: Optional[ControlNetModel] = None,
        reference_encoder: Optional[ReferenceImageEncoder] = None,
        renderer_scheduler: Optional[SchedulerMixin] = None,
        fps: float = 24.0,
        skeleton: Optional[str] = None,
        default_language: Optional[str] = None,
        video_settings: Optional[Dict[str, Any]] = None,
    ):
        super().__init__()
        self.register_modules(
            linker=linker, tokenizer=tokenizer, gate=gate, pose_bank=pose_bank, unet=unet, controlnet=controlnet,
            reference_encoder=reference_encoder, renderer_scheduler=renderer_scheduler,
        )
        skeleton = skeleton or (pose_bank.config.representation if pose_bank is not None else None)
        default_language = default_language or (linker.config.language_tags[0] if linker is not None else None)
        self.register_to_config(
            fps=float(fps), skeleton=skeleton, default_language=default_language, video_settings=video_settings or {}
        )
        self._bank_embeddings: Dict[str, torch.Tensor] = {}  # per language tag, computed on first need

    # ------------------------------------------------------------------------------------------ checks
    def check_inputs(self, prompt, gloss, language, num_frames, duration_s, generator, output_type,
                     num_sequences_per_prompt, num_inference_steps):
        if prompt is None and gloss is None:
            raise ValueError("Give `prompt` (text or a request such as 'How do you sign \"...\"?') or `gloss`.")
        prompts = self.check_prompt(prompt, self.tokenizer) if prompt is not None else None
        glosses = check_gloss(gloss) if gloss is not None else None
        if prompts is not None and glosses is not None and len(prompts) != len(glosses):
            raise ValueError(f"`gloss` has {len(glosses)} entries for {len(prompts)} prompt(s); give one per prompt.")
        batch = len(prompts) if prompts is not None else len(glosses)
        languages = language if isinstance(language, (list, tuple)) else [language] * batch
        if len(languages) != batch:
            raise ValueError(f"`language` has {len(languages)} entries for {batch} prompt(s).")
        languages = [self.linker.check_language(lang or self.config.default_language) for lang in languages]
        self.check_common_inputs(batch, num_frames, duration_s, generator, output_type, num_sequences_per_prompt)
        if output_type == "video":
            if self.unet is None or self.controlnet is None or self.reference_encoder is None:
                raise ValueError(
                    "`output_type='video'` needs the renderer (`unet`, `controlnet`, `reference_encoder`, "
                    "`renderer_scheduler`); train it with `hf-sign train stable-signer --stage renderer`."
                )
            steps = num_inference_steps
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
                raise ValueError(f"`num_inference_steps` must be a positive int; got {num_inference_steps!r}.")
        return prompts, glosses, languages

    # ------------------------------------------------------------------------------------------ linking
    def _encode(self, texts: List[str], languages: List[str]):
        enc = self.tokenizer(
            [self.linker.format_input(t, lang) for t, lang in zip(texts, languages)], padding=True, return_tensors="pt"
        )
        return enc["input_ids"].to(self.linker.device), enc["attention_mask"].to(self.linker.device)

    def link(self, prompts: List[str], languages: List[str], num_beams: Optional[int] = None) -> List[List[str]]:
        """The linker's glosses for each prompt (`linker.link`); `num_beams` defaults to the linker's
        `generation_config`."""
        return self.linker.link(self.tokenizer, prompts, languages, num_beams)

    def _gloss_embeddings(self, glosses: List[str], language: str) -> torch.Tensor:
        input_ids, attention_mask = self._encode([g.lower() for g in glosses], [language] * len(glosses))
        return torch.nn.functional.normalize(self.linker.pool_encoder(input_ids, attention_mask)[0].float(), dim=-1)

    def replace_unknown(self, glosses: List[str], language: str) -> tuple:
        """`(glosses, replaced)`: each gloss missing from the bank becomes the nearest bank gloss by linker
        embedding; `replaced` lists `{"index", "gloss", "replacement", "similarity"}`."""
        unknown = [i for i, g in enumerate(glosses) if g not in self.pose_bank]
        if not unknown:
            return list(glosses), []
        bank_glosses = self.pose_bank.glosses
        if language not in self._bank_embeddings:
            self._bank_embeddings[language] = self._gloss_embeddings(bank_glosses, language)
        sims = self._gloss_embeddings([glosses[i] for i in unknown], language) @ self._bank_embeddings[language].t()
        out, replaced = list(glosses), []
        for row, i in enumerate(unknown):
            best = int(sims[row].argmax())
            out[i] = bank_glosses[best]
            replaced.append(
                {"index": i, "gloss": glosses[i], "replacement": out[i], "similarity": float(sims[row, best])}
            )
        return out, replaced

    # ------------------------------------------------------------------------------------------ call
    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        prompt: Optional[Union[str, List[str]]] = None,
        gloss: Optional[Union[str, List[str], List[List[str]]]] = None,
        language: Optional[Union[str, List[str]]] = None,
        num_frames: Optional[Union[int, List[int]]] = None,
        duration_s: Optional[Union[float, List[float]]] = None,
        num_sequences_per_prompt: int = 1,
        sample_experts: bool = False,
        num_beams: Optional[int] = None,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        output_type: str = "np",
        return_dict: bool = True,
        num_inference_steps: int = 20,
        reference_image: Optional[Any] = None,
        style: Optional[Any] = None,
        strength: Optional[float] = None,
    ) -> Union[StableSignerPipelineOutput, tuple]:
        r"""Generate signing for `prompt` (or `gloss`).

        Args:
            prompt (`str` or `List[str]`, *optional*): text or request-style prompts.
            gloss (`str`, `List[str]` or `List[List[str]]`, *optional*): glosses to sign instead of the linker's.
            language (`str` or `List[str]`, *optional*): language tag(s); default `default_language`.
            num_frames (`int` or `List[int]`, *optional*): resample each sequence to this many frames.
            duration_s (`float` or `List[float]`, *optional*): or to this many seconds.
            num_sequences_per_prompt (`int`, *optional*, defaults to 1): sequences per prompt (differ only with
                `sample_experts=True` or in their video noise).
            sample_experts (`bool`, *optional*, defaults to `False`): draw each gloss's expert from the gate weights
                (with `generator`) instead of taking the top one.
            num_beams (`int`, *optional*): beam size of the linker's decoding; default: the linker's
                `generation_config` (the training config's `linker.num_beams`).
            generator (`torch.Generator` or `List[torch.Generator]`, *optional*): randomness of expert sampling and
                of the renderer's noise (one per sequence in a list).
            output_type (`str`, *optional*, defaults to `"np"`): `"np"`, `"pt"`, `"joints"`, `"pose"` or `"video"`.
            return_dict (`bool`, *optional*, defaults to `True`): a [`StableSignerPipelineOutput`] or a tuple.
            num_inference_steps (`int`, *optional*, defaults to 20): the renderer's DDIM steps (video only).
            reference_image (`PIL.Image` or `np.ndarray`, *optional*): appearance of the signer (video only).
            style (`str` or `AvatarStyle`, *optional*): or an avatar style to draw the reference in (video only).
            strength (`float`, *optional*): where the renderer's sampling starts (1: pure noise; below 1: the
                reference image noised that far); default: the renderer's `default_strength` (video only).

        Examples:
        """
        # 1. inputs
        prompts, given, languages = self.check_inputs(
            prompt, gloss, language, num_frames, duration_s, generator, output_type, num_sequences_per_prompt,
            num_inference_steps,
        )
        batch = len(prompts) if prompts is not None else len(given)
        # 2. glosses: the linker's, or the given ones
        linked = given if given is not None else self.link(prompts, languages, num_beams=num_beams)
        texts = prompts if prompts is not None else [" ".join(g).lower() for g in given]
        # words (or glosses) the linker's tokenizer does not know: warned about and listed; none known is refused
        name, what = ("prompt", "word") if prompts is not None else ("gloss", "gloss")
        words = self.check_known_words(texts, self.tokenizer, name, what)
        lengths = self.requested_num_frames(batch, num_frames, duration_s)
        generators = generator if isinstance(generator, list) else [generator] * (batch * num_sequences_per_prompt)
        sequences, info = [], []
        for b in self.progress_bar(range(batch)):
            # 3. glosses the bank lacks -> nearest bank gloss (reported)
            if not linked[b]:
                raise ValueError(f"The linker produced no gloss for prompt {b} ({texts[b]!r}); nothing to sign.")
            glosses, replaced = self.replace_unknown(linked[b], languages[b])
            # 4. the gate over the experts, per gloss
            input_ids, attention_mask = self._encode([texts[b]], [languages[b]])
            query = self.linker.gloss_queries(self.tokenizer, input_ids, attention_mask, [glosses])[0]
            weights = self.gate(query.to(self.gate.dtype)).weights.float().cpu()
            for s in range(num_sequences_per_prompt):
                g = generators[b * num_sequences_per_prompt + s]
                experts = (
                    torch.multinomial(weights, 1, generator=g).squeeze(1) if sample_experts else weights.argmax(dim=-1)
                ).tolist()
                # 5. the chosen clips joined into a sentence
                poses = self.pose_bank.join([self.pose_bank.candidates(x)[k] for x, k in zip(glosses, experts)])
                if lengths is not None:
                    poses = resample_to_length(poses, lengths[b]).astype(np.float32)
                sequences.append(poses)
                info.append(
                    {
                        "glosses": glosses,
                        "linked_glosses": list(linked[b]),
                        "replaced_glosses": replaced,
                        "experts": experts,
                        "gate_weights": weights.tolist(),
                        "language": languages[b],
                        **words[b],
                    }
                )
        if output_type != "video":
            out = self.postprocess(sequences, output_type, info)
            return self.finish(StableSignerPipelineOutput(**out.__dict__), return_dict)
        # 6. video through the renderer
        out = self.postprocess(sequences, "np", info)
        video = self.video_pipeline()
        frames = [
            video(
                poses=p,
                num_inference_steps=num_inference_steps,
                generator=g,
                reference_image=reference_image,
                style=style,
                strength=strength,
                output_type="np",
            ).frames
            for p, g in zip(out.poses, generators)
        ]
        return self.finish(StableSignerPipelineOutput(**out.__dict__, frames=frames), return_dict)

    def video_pipeline(self):
        """A `SignVideoPipeline` sharing this pipeline's renderer modules."""
        from .pipeline_sign_video import SignVideoPipeline

        video = SignVideoPipeline(
            unet=self.unet,
            controlnet=self.controlnet,
            reference_encoder=self.reference_encoder,
            scheduler=self.renderer_scheduler,
            skeleton=self.config.skeleton,
            **(self.config.video_settings or {}),
        )
        video.set_progress_bar_config(**getattr(self, "_progress_bar_config", {}))
        return video
