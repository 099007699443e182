"""The system registry: what the CLI, the benchmark harness, the demo and the Space know about each system.

A system registers, once, a [`SignSystem`]: its name, its configs (folder and default), its training stages and entry
point, its pipeline class, its conditioning (`"text"`, `"gloss"` or both) and its parameter report. Everything that
dispatches on a system (`hf-sign train / generate / models params / demo`, the harness) asks the registry, so a new
system is a model file, a stage file, a pipeline file, a config folder and one `register_system` call below.

References to code are `"module:attribute"` strings, imported only when used: this module imports nothing from
hf-sign, so any layer may read the registry and each resolves only what it may use (the harness: pipeline classes).

```python
>>> from hf_sign.systems import get_system
>>> system = get_system("sign-sald")
>>> system.conditioning, system.stages
(('text',), ('vae', 'ldm'))
>>> pipe = system.pipeline_class().from_pretrained("runs/sign-sald-small")
```
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

__all__ = [
    "CONDITIONINGS",
    "FinetuneSpec",
    "SignSystem",
    "get_system",
    "list_systems",
    "register_system",
    "system_for_pipeline",
    "unregister_system",
]

CONDITIONINGS = ("text", "gloss")
CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
Ref = Union[str, Callable, type, None]


def _resolve(ref: Ref) -> Any:
    if ref is None or not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise ValueError(f"A registry reference must look like 'package.module:attribute'; got {ref!r}.")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class FinetuneSpec:
    """What `hf-sign finetune` needs to adapt a system's main network with LoRA (`hf_sign.training.finetune`).

    Args:
        component (`str`): the pipeline component the adapter goes into (e.g. `"denoiser"`).
        stage (`str` or `Stage`): the training `Stage` that trains it; its `build_trainer` takes the trained
            components from `StageContext.base_pipeline` instead of building new ones.
        config (`str` or `Callable`): `config(config, overrides) -> dict`, the system's config resolver.
        section (`str`): the config section of the stage's training arguments (`--learning-rate` and
            `--num-train-epochs` set its `learning_rate` and `num_train_epochs`).
        target_modules (`Tuple[str, ...]`): default LoRA target modules (names of `nn.Linear` layers in the component).
        prepare (`str` or `Callable`, *optional*): the system's `prepare(context, stages)` check of data and config.
    """

    component: str
    stage: Ref
    config: Ref
    section: str
    target_modules: Tuple[str, ...]
    prepare: Ref = None

    def resolve(self, name: str) -> Any:
        return _resolve(getattr(self, name))


@dataclass(frozen=True)
class SignSystem:
    """One system as the registry knows it.

    Args:
        name (`str`): the CLI name (`hf-sign train NAME`), lower case with dashes.
        train (`str` or `Callable`): the training entry point, called as `train(dataset_dir, output_dir, config=...,
            stage=..., seed=..., overrides=..., resume_from_checkpoint=...)` (only the keywords it accepts); it
            returns the output folder or a metrics dict. The output folder of a generator ends up holding a complete
            pipeline folder.
        pipeline (`str` or `type`, *optional*): the pipeline class (`None` for systems that train something other
            than a generator, such as the evaluators).
        conditioning (`Tuple[str, ...]`, defaults to `("text",)`): what the pipeline is conditioned on: `"text"`
            (`prompt=`), `"gloss"` (`gloss=`) or both.
        stages (`Tuple[str, ...]`, defaults to `()`): training stages in order (`--stage` picks one).
        default_config (`str`, defaults to `"small"`): the config `hf-sign train` uses without `--config`.
        config_dir (`str`, *optional*): folder of the named YAML configs; defaults to `hf_sign/configs/<name>`.
        param_report (`str` or `Callable`, *optional*): `param_report(config) -> dict` of parameter counts.
        metrics_file (`str`, defaults to `"metrics.json"`): file in the output folder with the training metrics.
        demo_repo_id (`str`, *optional*): the repo id `hf-sign demo` caches a trained pipeline of this system as.
        demo_config (`str`, *optional*): the config `hf-sign demo` trains when nothing is cached; defaults to
            `default_config`.
        pipeline_tag (`str`, defaults to `"text-to-video"`): the Hub task of its published pipelines (the model card's
            `pipeline_tag` and the model-index task; `hf-sign publish`).
        description (`str`, defaults to `""`): one line for listings.
        finetune (`FinetuneSpec`, *optional*): how `hf-sign finetune` adapts its main network (`None`: not supported).
    """

    name: str
    train: Ref
    pipeline: Ref = None
    conditioning: Tuple[str, ...] = ("text",)
    stages: Tuple[str, ...] = ()
    default_config: str = "small"
    config_dir: Optional[str] = None
    param_report: Ref = None
    metrics_file: str = "metrics.json"
    demo_repo_id: Optional[str] = None
    demo_config: Optional[str] = None
    pipeline_tag: str = "text-to-video"
    description: str = ""
    finetune: Optional[FinetuneSpec] = None
    _cache: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if (
            not isinstance(self.name, str)
            or not self.name
            or self.name != self.name.strip().lower()
            or " " in self.name
        ):
            raise ValueError(f"`name` must be a lower-case name without spaces (e.g. 'sign-sald'); got {self.name!r}.")
        if not self.conditioning or any(c not in CONDITIONINGS for c in self.conditioning):
            raise ValueError(
                f"`conditioning` of {self.name!r} must be a non-empty subset of {CONDITIONINGS}; "
                f"got {self.conditioning!r}."
            )
        if self.train is None:
            raise ValueError(f"System {self.name!r} needs a `train` entry point.")

    # ------------------------------------------------------------------------------------------ code
    def pipeline_class(self) -> type:
        """The pipeline class (imported on first use)."""
        if self.pipeline is None:
            raise ValueError(f"System {self.name!r} has no pipeline (it does not generate signing).")
        if "pipeline" not in self._cache:
            self._cache["pipeline"] = _resolve(self.pipeline)
        return self._cache["pipeline"]

    @property
    def generates(self) -> bool:
        return self.pipeline is not None

    @property
    def input_name(self) -> str:
        """The `__call__` argument of the pipeline's main input: `"prompt"` for text, `"gloss"` otherwise."""
        return "prompt" if "text" in self.conditioning else "gloss"

    # ------------------------------------------------------------------------------------------ configs
    def config_folder(self) -> Path:
        return Path(self.config_dir) if self.config_dir else CONFIGS_DIR / self.name

    def list_configs(self) -> List[str]:
        folder = self.config_folder()
        return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []

    # ------------------------------------------------------------------------------------------ jobs
    def run_training(
        self,
        dataset_dir: Union[str, os.PathLike],
        output_dir: Union[str, os.PathLike],
        config: Optional[str] = None,
        stage: Optional[str] = None,
        seed: Optional[int] = None,
        overrides: Optional[Dict[str, Any]] = None,
        resume_from_checkpoint: bool = False,
        overwrite_output_dir: bool = False,
    ) -> Dict[str, Any]:
        """Train with the system's entry point; returns the training metrics (from `metrics_file` when the entry
        point returns a folder). Raises a `ValueError` naming `stage` when the system has no such stage, and naming
        an option the entry point does not take (instead of dropping it). An `output_dir` that already holds
        checkpoints of the stages to train is refused unless `resume_from_checkpoint` (continue from them) or
        `overwrite_output_dir` (remove them and start over), as transformers' example scripts do."""
        if stage is not None and stage not in self.stages:
            where = f"its stages are {list(self.stages)}" if self.stages else "it has no stages"
            raise ValueError(f"`--stage` {stage!r} is not a stage of {self.name!r}; {where}.")
        from .training.stages import check_output_dir

        stages = [stage] if stage else list(self.stages)
        check_output_dir(output_dir, stages, resume_from_checkpoint, overwrite_output_dir)
        fn = _resolve(self.train)
        params = inspect.signature(fn).parameters
        wanted = dict(config=config or self.default_config, stage=stage, seed=seed, overrides=overrides or None,
                      resume_from_checkpoint=resume_from_checkpoint)
        kwargs = {}
        for key, value in wanted.items():
            if key in params:
                kwargs[key] = value
            elif value not in (None, False):
                raise ValueError(f"`{key}` does not apply to {self.name!r} (its trainer takes no {key}).")
        result = fn(str(dataset_dir), str(output_dir), **kwargs)
        if isinstance(result, dict):
            return result
        path = Path(result if result is not None else output_dir) / self.metrics_file
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def parameter_report(self, config: Optional[str] = None) -> Dict[str, Any]:
        if self.param_report is None:
            raise ValueError(f"System {self.name!r} has no parameter report.")
        fn = _resolve(self.param_report)
        return fn(config) if config is not None else fn()


_REGISTRY: Dict[str, SignSystem] = {}


def register_system(system: SignSystem, replace: bool = False) -> SignSystem:
    """Add `system` to the registry (a `ValueError` if its name is taken, unless `replace`)."""
    if not isinstance(system, SignSystem):
        raise ValueError(f"`system` must be a SignSystem; got {type(system).__name__}.")
    if system.name in _REGISTRY and not replace:
        raise ValueError(f"A system named {system.name!r} is already registered (pass replace=True to replace it).")
    _REGISTRY[system.name] = system
    return system


def unregister_system(name: str) -> None:
    _REGISTRY.pop(name, None)


def get_system(name: str) -> SignSystem:
    if name not in _REGISTRY:
        raise ValueError(f"Unknown system {name!r}; registered: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[name]


def list_systems(generators_only: bool = False) -> List[SignSystem]:
    return [s for s in _REGISTRY.values() if s.generates or not generators_only]


def system_for_pipeline(pipeline: Any) -> Optional[SignSystem]:
    """The registered system of a pipeline instance, class, class name or saved folder (its `model_index.json`
    names the class); `None` when no registered system has it."""
    if isinstance(pipeline, (str, os.PathLike)) and Path(pipeline).is_dir():
        index = Path(pipeline) / "model_index.json"
        if not index.is_file():
            return None
        class_name = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
        pipeline = class_name[-1] if isinstance(class_name, list) else class_name
    if not isinstance(pipeline, str):
        pipeline = (pipeline if isinstance(pipeline, type) else type(pipeline)).__name__
    for system in list_systems(generators_only=True):
        ref = system.pipeline
        name = ref.rpartition(":")[2] if isinstance(ref, str) else ref.__name__
        if name == pipeline:
            return system
    return None


# ------------------------------------------------------------------------------------------------ the systems
register_system(SignSystem(
    name="sign-sald",
    train="hf_sign.training.sign_sald_trainer:train_sign_sald",
    pipeline="hf_sign.pipelines.pipeline_sign_sald:SignSALDPipeline",
    conditioning=("text",),
    stages=("vae", "ldm"),
    default_config="small",
    param_report="hf_sign.training.sign_sald_trainer:sign_sald_param_counts",
    metrics_file="sign_sald_metrics.json",
    demo_repo_id="hf-sign/sign-sald-synthsign",
    description="Sign-SALD: skeleton-aware VAE + latent diffusion denoiser (text -> smplx133)",
    finetune=FinetuneSpec(
        component="denoiser",
        stage="hf_sign.training.sign_sald_stages:LDM_STAGE",
        config="hf_sign.training.sign_sald_trainer:full_config",
        section="ldm_training",
        # the attention projections, and the hidden layers of the length and duration predictors: a new signer's
        # tempo lives there (the duration predictor exists with `denoiser.duration_conditioning` only)
        target_modules=(
            "to_q", "to_k", "to_v", "to_out", "length_predictor.net.0", "length_predictor.net.2",
            "duration_conditioner.predictor.net.0", "duration_conditioner.predictor.net.2",
        ),
        prepare="hf_sign.training.sign_sald_trainer:_prepare",
    ),
))
register_system(SignSystem(
    name="stable-signer",
    train="hf_sign.training.stable_signer_trainer:train_stable_signer",
    pipeline="hf_sign.pipelines.pipeline_stable_signer:StableSignerPipeline",
    conditioning=("text",),
    stages=("linker", "moe", "renderer"),
    default_config="small",
    param_report="hf_sign.training.stable_signer_trainer:stable_signer_param_counts",
    metrics_file="stable_signer_metrics.json",
    demo_repo_id="hf-sign/stable-signer-synthsign",
    demo_config="demo",
    description="Stable Signer: T5 prompt/text -> gloss linker + pose-prior MoE (+ pose-to-video renderer)",
    finetune=FinetuneSpec(
        component="linker",
        stage="hf_sign.training.stable_signer_linker:LINKER_STAGE",
        config="hf_sign.training.stable_signer_trainer:full_config",
        section="linker_training",
        target_modules=("q", "k", "v", "o"),
        prepare="hf_sign.training.stable_signer_trainer:_prepare",
    ),
))
register_system(SignSystem(
    name="sign-mexd",
    train="hf_sign.training.sign_mexd_trainer:train_sign_mexd",
    pipeline="hf_sign.pipelines.pipeline_sign_mexd:SignMExDPipeline",
    conditioning=("gloss",),  # `prompt=` too once a text-to-gloss linker is attached (SignMExDPipeline.attach_linker)
    stages=("diffusion",),
    default_config="small",
    param_report="hf_sign.training.sign_mexd_trainer:sign_mexd_param_counts",
    metrics_file="sign_mexd_metrics.json",
    demo_repo_id="hf-sign/sign-mexd-synthsign",
    description="Sign-MExD: gloss-conditioned pose diffusion transformer with expert-choice MoE (gloss -> smplx133)",
    finetune=FinetuneSpec(
        component="transformer",
        stage="hf_sign.training.sign_mexd_stages:DIFFUSION_STAGE",
        config="hf_sign.training.sign_mexd_trainer:full_config",
        section="training",
        target_modules=("to_q", "to_k", "to_v", "to_out"),
        prepare="hf_sign.training.sign_mexd_trainer:_prepare",
    ),
))
register_system(SignSystem(
    name="evaluator",
    train="hf_sign.training.evaluator_trainer:train_evaluator_system",
    conditioning=("text",),
    stages=("recognizer", "contrastive"),
    default_config="default",
    metrics_file="evaluator_metrics.json",
    description="evaluators of the benchmark: CTC back-translation recogniser and sign-text contrastive model",
))
register_system(SignSystem(
    name="madis",
    train="hf_sign.training.madis_trainer:train_madis",
    pipeline="hf_sign.pipelines.pipeline_madis:MaDiSPipeline",
    conditioning=("text",),
    stages=("tokenizer", "pretrain", "sft"),
    default_config="small",
    param_report="hf_sign.training.madis_trainer:madis_param_counts",
    metrics_file="madis_metrics.json",
    demo_repo_id="hf-sign/madis-synthsign",
    description="MaDiS: part-wise VQ-VAE tokens, bidirectional masked diffusion LM (tri-level pretraining, UTC, MoP)",
    finetune=FinetuneSpec(
        component="lm",
        stage="hf_sign.training.madis_lm_stages:SFT_STAGE",
        config="hf_sign.training.madis_trainer:full_config",
        section="sft",
        target_modules=("q_proj", "k_proj", "v_proj", "o_proj"),
    ),
))
