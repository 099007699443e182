"""The Gradio Space: a sentence (or glosses) in, signing out, for every system of the registry that has a model.

`spaces/app.py` is a thin launcher around this module, so the Space's logic is importable and tested:

* [`resolve_models`]: which models to serve: `--model NAME=DIR_OR_REPO_ID` flags, else the `HF_SIGN_SPACE_MODELS`
  environment variable (the same specs, separated by commas or spaces), else each generating system's
  `demo_repo_id` that is already in the local Hugging Face cache (what `make demo` leaves there).
* [`SpaceModel`]: one loaded pipeline (`load_sign_pipeline`: a folder or a repo id) with its registry system, the
  `__call__` arguments it takes, and, where a training corpus is known, the nearest-training-example index.
* [`generate`]: one request, no Gradio involved: checks the input, runs the pipeline under the model's lock (a
  pipeline's scheduler holds per-call state), then writes the MP4, `.pose`, `.npz` and optional side-by-side video.
* [`build_demo`]: the `gr.Blocks` app with a queue whose concurrency is limited; [`main`]: the command line.

What reaches a system goes through the registry only: its `conditioning` picks a text or a gloss input, and the
seed, steps and guidance controls are shown only for pipelines whose `__call__` takes `generator`,
`num_inference_steps` or `guidance_scale`. A control a pipeline takes but leaves unused on the pose path (Stable
Signer's steps drive its pose-to-video renderer only) changes nothing in the skeleton video the Space shows.

Bad input (empty, too long, or refused by the pipeline's own checks, e.g. a prompt longer than its tokenizer takes)
is answered with a one-line message (`gr.Error`); any other failure is logged on the server and answered with a
generic message, never a stack trace.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence

import numpy as np

from .demo import slugify
from .systems import SignSystem, list_systems, system_for_pipeline

__all__ = [
    "MAX_INPUT_CHARS",
    "SpaceInputError",
    "SpaceModel",
    "SpaceResult",
    "build_demo",
    "generate",
    "load_models",
    "main",
    "resolve_models",
]

logger = logging.getLogger(__name__)

MODELS_ENV = "HF_SIGN_SPACE_MODELS"
DATASET_ENV = "HF_SIGN_SPACE_DATASET"
# a signed sentence is short; longer inputs are refused with a message instead of queueing minutes of work
MAX_INPUT_CHARS = 200
# two CPU cores: two requests at a time; the rest wait in the queue (and see their position there)
DEFAULT_CONCURRENCY_LIMIT = 2
MAX_QUEUE_SIZE = 32
MAX_STEPS = 200
MAX_GUIDANCE = 20.0
EXAMPLE_TEXTS = (
    "where was the brother yesterday?",
    "who will visit the hotel tomorrow?",
    "the weather tomorrow will be rainy",
    "is my milk cold?",
)
EXAMPLE_GLOSSES = ("YESTERDAY BROTHER WHERE", "TOMORROW HOTEL VISIT WHO")
# the `__call__` arguments behind the Space's controls
CONTROL_ARGS = {"seed": "generator", "steps": "num_inference_steps", "guidance": "guidance_scale"}
# nearest-training-example indexes, one per corpus, shared by the models trained on it
_INDEXES: Dict[str, Any] = {}
_INDEX_LOCK = threading.Lock()


class SpaceInputError(ValueError):
    """Input the Space refuses, with the message shown to the user."""


# ------------------------------------------------------------------------------------------------ models
def resolve_models(specs: Optional[Sequence[str]] = None, env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """`{name: folder or repo id}` to serve: the `--model` specs, else `$HF_SIGN_SPACE_MODELS`, else the cached
    `demo_repo_id` of each generating system (named after the system). Empty when none is found."""
    from .evaluation.harness import parse_model_specs

    env = os.environ if env is None else env
    if specs:
        return parse_model_specs(specs)
    if env.get(MODELS_ENV, "").strip():
        return parse_model_specs(re.split(r"[,\s]+", env[MODELS_ENV].strip()))
    from .pipelines.hub_cache import cached_repo_path

    return {
        s.name: s.demo_repo_id
        for s in list_systems(generators_only=True)
        if s.demo_repo_id and cached_repo_path(s.demo_repo_id) is not None
    }


@dataclass
class SpaceModel:
    """A pipeline the Space serves.

    Args:
        name (`str`): its label in the system selector.
        source (`str`): the folder or repo id it was loaded from.
        pipeline (`Any`): the loaded pipeline.
        system (`SignSystem`): its registry entry.
        corpus (`str`, *optional*): a corpus folder or dataset repo id holding its training split, for the
            side-by-side with the nearest training example.
    """

    name: str
    source: str
    pipeline: Any
    system: SignSystem
    corpus: Optional[str] = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, name: str, source: str, corpus: Optional[str] = None) -> "SpaceModel":
        """Load `source` (a pipeline folder or a repo id) with `load_sign_pipeline`. Without `corpus`, the training
        corpus named by the folder's model card (if any) is used for the side-by-side."""
        from .pipelines.hub_cache import cached_repo_path
        from .pipelines.loading import load_sign_pipeline
        from .render.side_by_side import training_corpus_of

        pipeline = load_sign_pipeline(source)
        system = system_for_pipeline(pipeline)
        if system is None:
            raise ValueError(
                f"`--model` {name}={source}: {type(pipeline).__name__} is no registered system's pipeline."
            )
        pipeline.set_progress_bar_config(disable=True)
        if corpus is None:
            folder = Path(source) if Path(source).is_dir() else cached_repo_path(source)
            corpus = training_corpus_of(folder) if folder is not None else None
        return cls(name=name, source=str(source), pipeline=pipeline, system=system, corpus=corpus)

    @property
    def accepts(self) -> FrozenSet[str]:
        """The keyword arguments of the pipeline's `__call__`."""
        return frozenset(inspect.signature(self.pipeline.__call__).parameters)

    @property
    def input_kind(self) -> str:
        """`"text"` or `"gloss"`: what the input box holds (the registry's `conditioning`)."""
        return "text" if self.system.input_name == "prompt" else "gloss"

    def controls(self) -> Dict[str, Dict[str, Any]]:
        """`{control: {"visible": bool, "value": default}}` for `seed`, `steps` and `guidance`; a control is visible
        when `__call__` takes its argument. Defaults: the signature's, else the pipeline config's `default_<arg>`."""
        params = inspect.signature(self.pipeline.__call__).parameters
        out = {}
        for control, arg in CONTROL_ARGS.items():
            value = params[arg].default if arg in params else None
            if value is inspect.Parameter.empty or value is None:
                value = getattr(self.pipeline, "config", {}).get(f"default_{arg}")
            out[control] = {"visible": arg in params, "value": value}
        out["seed"]["value"] = 0
        return out

    def nearest_index(self):
        """The `TrainingExampleIndex` of the training corpus (built on first use, once per corpus), or `None`
        without a corpus."""
        if self.corpus is None:
            return None
        with _INDEX_LOCK:
            if self.corpus not in _INDEXES:
                from .render.side_by_side import TrainingExampleIndex

                _INDEXES[self.corpus] = TrainingExampleIndex.from_corpus(self.corpus, split="train")
            return _INDEXES[self.corpus]


def load_models(sources: Mapping[str, str], corpus: Optional[str] = None) -> Dict[str, SpaceModel]:
    """Load every `{name: folder or repo id}`; `corpus` (a corpus folder or dataset repo id) serves the side-by-side
    of all of them."""
    if not sources:
        raise ValueError("No model to serve; give at least one `--model NAME=DIR_OR_REPO_ID`.")
    return {name: SpaceModel.load(name, source, corpus=corpus) for name, source in sources.items()}


# ------------------------------------------------------------------------------------------------ one request
@dataclass
class SpaceResult:
    """The files of one request: `video` (MP4), `pose` (pose-format), `npz` (`hf_sign.render.save_npz`),
    `side_by_side` (MP4 or `None`), and `details` (what was signed: frames, fps, the system's `info`, seconds)."""

    video: Path
    pose: Path
    npz: Path
    side_by_side: Optional[Path]
    details: Dict[str, Any]


def check_input(text: Any, kind: str, max_chars: int = MAX_INPUT_CHARS) -> str:
    """The stripped input, or a [`SpaceInputError`] saying what is wrong (empty, too long)."""
    what = "sentence" if kind == "text" else "gloss sequence (space-separated glosses)"
    if not isinstance(text, str) or not text.strip():
        raise SpaceInputError(f"Type a {what} to sign; the input is empty.")
    text = " ".join(text.split())
    if len(text) > max_chars:
        raise SpaceInputError(
            f"The input has {len(text)} characters; the limit is {max_chars}. Sign a shorter {what}."
        )
    return text


def _number(value: Any, name: str, lo: float, hi: float, integer: bool) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise SpaceInputError(f"`{name}` must be a number; got {value!r}.")
    if integer and float(value) != int(value):
        raise SpaceInputError(f"`{name}` must be a whole number; got {value!r}.")
    if not lo <= value <= hi:
        raise SpaceInputError(f"`{name}` must be between {lo:g} and {hi:g}; got {value!r}.")
    return int(value) if integer else float(value)


def generate(
    model: SpaceModel,
    text: str,
    seed: Optional[int] = 0,
    num_inference_steps: Optional[int] = None,
    guidance_scale: Optional[float] = None,
    side_by_side: bool = False,
    out_dir: Optional[os.PathLike] = None,
    max_chars: int = MAX_INPUT_CHARS,
) -> SpaceResult:
    """Sign `text` (glosses for a gloss-conditioned system) with `model` and write the Space's files.

    `seed`, `num_inference_steps` and `guidance_scale` reach the pipeline only where its `__call__` takes them
    (`seed` as a seeded `generator`); `None` keeps the pipeline's default. `side_by_side` also writes the generation
    next to the nearest training example when the model has a corpus. Files go to `out_dir` (a new temporary folder
    by default).

    Raises:
        SpaceInputError: empty or too long input, out-of-range controls, or input the pipeline refuses (its
            `ValueError` message).
    """
    import torch

    from .render import render_to_file, save_npz
    from .render.side_by_side import render_side_by_side

    # 1. inputs
    text = check_input(text, model.input_kind, max_chars)
    accepts = model.accepts
    kwargs: Dict[str, Any] = {"output_type": "np"}
    kwargs[model.system.input_name] = [text] if model.input_kind == "text" else [text.split()]
    if "generator" in accepts:
        seed = 0 if seed is None else _number(seed, "seed", 0, 2**31 - 1, integer=True)
        kwargs["generator"] = torch.Generator().manual_seed(seed)
    if num_inference_steps is not None and "num_inference_steps" in accepts:
        kwargs["num_inference_steps"] = _number(num_inference_steps, "steps", 1, MAX_STEPS, integer=True)
    if guidance_scale is not None and "guidance_scale" in accepts:
        kwargs["guidance_scale"] = _number(guidance_scale, "guidance", 0.0, MAX_GUIDANCE, integer=False)
    # 2. the pipeline, one call at a time per model (its scheduler keeps the timesteps of the running call)
    try:
        with model.lock:
            start = time.perf_counter()
            output = model.pipeline(**kwargs)
            seconds = time.perf_counter() - start
    except ValueError as err:
        raise SpaceInputError(str(err)) from err
    poses = np.asarray(output.poses[0], dtype=np.float32)
    info = (output.info or [None])[0] or {}
    spec, fps = model.pipeline.skeleton, float(model.pipeline.fps)
    # 3. the files
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="hf-sign-space-"))
    out.mkdir(parents=True, exist_ok=True)
    stem = slugify(text)
    video = render_to_file(poses, spec, out / f"{stem}.mp4", fps=fps, text=text, show_progress=False)
    pose = render_to_file(poses, spec, out / f"{stem}.pose", fps=fps, show_progress=False)
    glosses = info.get("glosses") or (text.split() if model.input_kind == "gloss" else [])
    npz = save_npz(out / f"{stem}.npz", poses, spec.name, fps, text=text, gloss=glosses)
    details: Dict[str, Any] = {
        "system": model.system.name,
        "model": model.name,
        "input": text,
        "num_frames": int(poses.shape[0]),
        "fps": fps,
        "generation_seconds": round(seconds, 3),
        "arguments": {k: v for k, v in kwargs.items() if k in ("num_inference_steps", "guidance_scale")},
    }
    if "generator" in kwargs:
        details["arguments"]["seed"] = seed
    if info:
        details["info"] = json.loads(json.dumps(info, default=str))
    pair = None
    index = model.nearest_index() if side_by_side else None
    if index is not None:
        nearest = index.nearest(poses)
        pair = render_side_by_side(poses, nearest, spec, out / f"{stem}-side-by-side.mp4", fps=fps, text=text)
        details["nearest_training_example"] = {"id": nearest.id, "text": nearest.text, "distance": nearest.distance}
    return SpaceResult(video=video, pose=pose, npz=npz, side_by_side=pair, details=details)


# ------------------------------------------------------------------------------------------------ the app
def _input_label(model: SpaceModel) -> Dict[str, str]:
    if model.input_kind == "text":
        return {"label": "Sentence", "placeholder": EXAMPLE_TEXTS[0]}
    return {"label": "Glosses (space-separated)", "placeholder": EXAMPLE_GLOSSES[0]}


def build_demo(
    models: Mapping[str, SpaceModel],
    concurrency_limit: int = DEFAULT_CONCURRENCY_LIMIT,
    max_chars: int = MAX_INPUT_CHARS,
):
    """The Space as a `gr.Blocks` (queued, at most `concurrency_limit` requests at a time). Its API endpoint
    `/generate` takes `(system, text, seed, steps, guidance, side_by_side)` and returns
    `(video, pose_file, npz_file, side_by_side_video, details)`."""
    import gradio as gr

    if not models:
        raise ValueError("`models` is empty; the Space needs at least one loaded model.")
    if isinstance(concurrency_limit, bool) or not isinstance(concurrency_limit, int) or concurrency_limit < 1:
        raise ValueError(f"`concurrency_limit` must be a positive int; got {concurrency_limit!r}.")
    names = list(models)
    first = models[names[0]]

    def on_system(name: str):
        model = models[name]
        c = model.controls()
        return (
            gr.update(**_input_label(model)),
            gr.update(visible=c["seed"]["visible"]),
            gr.update(visible=c["steps"]["visible"], value=c["steps"]["value"] or 1),
            gr.update(visible=c["guidance"]["visible"], value=c["guidance"]["value"] or 1.0),
            gr.update(visible=model.corpus is not None, value=False),
            gr.update(visible=model.corpus is not None, value=None),
        )

    def on_generate(name, text, seed, steps, guidance, pair):
        if name not in models:
            raise gr.Error(f"Unknown system {name!r}; choose one of {names}.")
        model = models[name]
        c = model.controls()
        try:
            result = generate(
                model,
                text,
                seed=seed if c["seed"]["visible"] else None,
                num_inference_steps=steps if c["steps"]["visible"] else None,
                guidance_scale=guidance if c["guidance"]["visible"] else None,
                side_by_side=bool(pair),
                max_chars=max_chars,
            )
        except SpaceInputError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception:  # noqa: BLE001 - logged in full on the server; the user gets one line
            logger.exception("generation failed for system %s, input %r", name, text)
            raise gr.Error("Generation failed on the server; try another input.", print_exception=False) from None
        pair_path = str(result.side_by_side) if result.side_by_side else None
        return (
            str(result.video),
            str(result.pose),
            str(result.npz),
            pair_path,
            result.details,
        )

    c = first.controls()
    with gr.Blocks(title="hf-sign: sign language production", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# hf-sign: text in, signing out\n"
            "Choose a system, type a sentence (or glosses for a gloss-conditioned system) and press **Generate**. "
            "You get the signing as a skeleton video, and its poses as a `.pose` file (pose-format) and a `.npz` "
            f"file. Inputs are limited to {max_chars} characters."
        )
        with gr.Row():
            with gr.Column():
                system = gr.Dropdown(names, value=names[0], label="System", elem_id="system")
                text = gr.Textbox(lines=2, max_lines=4, elem_id="text", **_input_label(first))
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", visible=c["seed"]["visible"])
                    steps = gr.Slider(
                        1,
                        MAX_STEPS,
                        step=1,
                        value=c["steps"]["value"] or 1,
                        label="Steps",
                        visible=c["steps"]["visible"],
                    )
                    guidance = gr.Slider(
                        0.0,
                        MAX_GUIDANCE,
                        step=0.1,
                        value=c["guidance"]["value"] or 1.0,
                        label="Guidance scale",
                        elem_id="guidance",
                        visible=c["guidance"]["visible"],
                    )
                pair = gr.Checkbox(
                    False,
                    label="Also show the nearest training example side by side",
                    visible=first.corpus is not None,
                )
                button = gr.Button("Generate", variant="primary", elem_id="generate")
                gr.Examples([[t] for t in EXAMPLE_TEXTS], inputs=[text], label="Example sentences")
                if any(m.input_kind == "gloss" for m in models.values()):
                    gr.Examples([[g] for g in EXAMPLE_GLOSSES], inputs=[text], label="Example glosses")
            with gr.Column():
                video = gr.Video(label="Signing", elem_id="video", autoplay=True, loop=True)
                with gr.Row():
                    pose_file = gr.File(label=".pose (pose-format)")
                    npz_file = gr.File(label=".npz (poses)")
                pair_video = gr.Video(
                    label="Side by side with the nearest training example", visible=first.corpus is not None
                )
                details = gr.JSON(label="Details", elem_id="details")
        system.change(
            on_system,
            inputs=[system],
            outputs=[text, seed, steps, guidance, pair, pair_video],
            api_visibility="private",
        )
        inputs = [system, text, seed, steps, guidance, pair]
        outputs = [video, pose_file, npz_file, pair_video, details]
        button.click(on_generate, inputs=inputs, outputs=outputs, api_name="generate")
        text.submit(on_generate, inputs=inputs, outputs=outputs, api_visibility="private")
    demo.queue(default_concurrency_limit=concurrency_limit, max_size=MAX_QUEUE_SIZE)
    return demo


# ------------------------------------------------------------------------------------------------ command line
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spaces/app.py", description="The hf-sign Gradio Space: text (or glosses) in, signing out."
    )
    parser.add_argument(
        "--model",
        action="append",
        metavar="NAME=DIR_OR_REPO_ID",
        help=f"a pipeline folder or repo id to serve (repeatable); default: ${MODELS_ENV}, else "
        "each system's demo repo id found in the local Hugging Face cache",
    )
    parser.add_argument(
        "--dataset",
        default=os.environ.get(DATASET_ENV) or None,
        metavar="DIR_OR_REPO_ID",
        help=f"training corpus for the side-by-side with the nearest training example (default: "
        f"${DATASET_ENV}, else the corpus named by each model's card)",
    )
    parser.add_argument(
        "--host", default=None, help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY_LIMIT,
        help="requests generated at the same time (the rest wait in the queue)",
    )
    parser.add_argument("--max-input-chars", type=int, default=MAX_INPUT_CHARS, help="longest input accepted")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """`python spaces/app.py [--model NAME=DIR_OR_REPO_ID ...] [--dataset DIR_OR_REPO_ID] [--port N]`."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sources = resolve_models(args.model)
    if not sources:
        cached = ", ".join(s.demo_repo_id for s in list_systems(generators_only=True) if s.demo_repo_id)
        print(
            f"No model to serve: pass --model NAME=DIR_OR_REPO_ID, set {MODELS_ENV}, or run `make demo` to train "
            f"and cache one of {cached}."
        )
        return 2
    try:
        models = load_models(sources, corpus=args.dataset)
        demo = build_demo(models, concurrency_limit=args.concurrency, max_chars=args.max_input_chars)
    except (ValueError, OSError) as err:
        print(f"error: {err}")
        return 2
    for name, model in models.items():
        side = f", side-by-side from {model.corpus}" if model.corpus else ""
        print(f"serving {name}: {model.system.name} from {model.source}{side}", flush=True)
        if model.corpus:  # index the corpus while the server starts, not in the first request
            threading.Thread(target=model.nearest_index, daemon=True).start()
    demo.launch(server_name=args.host, server_port=args.port)
    return 0
