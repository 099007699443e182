"""`hf-sign demo` / `make demo`: text in, generated signing out, with a model loaded by repo id.

Steps of `run_demo`:

1. If `repo_id` is already in the local Hugging Face hub cache (`cached_repo_path`), reuse it: no training.
2. Otherwise build SynthSign into `data_dir` (unless it is there), train `system` with `config` into `work_dir`
   (continuing from the latest checkpoints there, so an interrupted demo picks up where it stopped) and store the
   resulting pipeline folder in the hub cache as `repo_id` (`cache_pipeline_as_repo`).
3. Load it the way a Hub user would, `DiffusionPipeline.from_pretrained(repo_id, trust_remote_code=True)` (offline,
   from the cache), generate signing for `text` with a seeded generator and write `out_dir/<slug>.gif`, `.mp4` and
   `.pose` (`<slug>` is the text in lower case with runs of other characters turned into `-`).
4. Write `out_dir/<slug>-vs-nearest.mp4`: the signing next to the training example whose motion is nearest to it,
   so a newcomer sees what the model learned (from the corpus in `data_dir`, or the one the model's card names).

The first run trains the system's `demo_config` (Stable Signer `demo`: minutes on two CPU cores); later runs take
seconds.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

DEFAULT_TEXT = "the weather tomorrow will be rainy"
DEFAULT_GLOSS = "TOMORROW WEATHER RAIN"  # the same sentence, for a gloss-conditioned system
DEFAULT_SYSTEM = "stable-signer"
OUTPUT_FORMATS = ("gif", "mp4", "pose")


def slugify(text: str, max_length: int = 60) -> str:
    """File-name stem for `text`: lower case, runs of characters other than a-z/0-9 become `-`; `"sign"` if none is
    left."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:max_length].rstrip("-")
    return slug or "sign"


def run_demo(
    text: Optional[str] = None,
    system: str = DEFAULT_SYSTEM,
    repo_id: Optional[str] = None,
    config: Optional[str] = None,
    data_dir: Union[str, Path] = "outputs/synthsign",
    work_dir: Optional[Union[str, Path]] = None,
    out_dir: Union[str, Path] = "outputs/demo",
    seed: int = 0,
    cache_dir: Optional[Union[str, Path]] = None,
    retrain: bool = False,
    show_progress: bool = True,
    num_inference_steps: Optional[int] = None,
    synthsign_sizes: Optional[Dict[str, int]] = None,
    train_overrides: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Train (once) or reuse the cached `repo_id`, then sign `text` to GIF, MP4 and `.pose` files.

    Args:
        text (`str`, *optional*): the sentence to sign (non-empty), or for a gloss-conditioned system (registry
            conditioning `("gloss",)`) its glosses separated by spaces; defaults to `DEFAULT_TEXT` (`"the weather
            tomorrow will be rainy"`), or `DEFAULT_GLOSS` (`"TOMORROW WEATHER RAIN"`) for a gloss-conditioned system.
        system (`str`, defaults to `"stable-signer"`): a registered system (`hf_sign.systems`) that generates
            signing.
        repo_id (`str`, *optional*): the repo id the trained pipeline is cached as and loaded from (`org/name`);
            defaults to the system's `demo_repo_id` (Stable Signer: `"hf-sign/stable-signer-synthsign"`).
        config (`str`, *optional*): config name or YAML path, used only when training; defaults to the system's
            `demo_config`, else its default config (Stable Signer: `"demo"`).
        data_dir (`str` or `Path`, defaults to `"outputs/synthsign"`): SynthSign corpus folder; built there if it
            has no `README.md` (the corpus card, written last).
        work_dir (`str` or `Path`, *optional*): training output folder; defaults to `outputs/<system>-<config>`.
        out_dir (`str` or `Path`, defaults to `"outputs/demo"`): where the GIF, MP4 and `.pose` files go.
        seed (`int`, defaults to 0): seed of the generator that draws the initial noise (same seed, same signing).
        cache_dir (`str` or `Path`, *optional*): hub cache folder; defaults to huggingface_hub's `HF_HUB_CACHE`.
        retrain (`bool`, defaults to `False`): ignore a cached `repo_id` and train again from scratch into
            `work_dir` (its checkpoints are not resumed), then replace the cached pipeline.
        show_progress (`bool`, defaults to `True`): progress bars for corpus building, sampling and rendering
            (training shows the `transformers.Trainer` bars).
        num_inference_steps (`int`, *optional*): denoising steps; defaults to the pipeline's (50).
        synthsign_sizes (`dict`, *optional*): `num_train`/`num_validation`/`num_test` for a corpus built here
            (default: SynthSign's sizes).
        train_overrides (`dict`, *optional*): dotted config overrides for training (as `hf-sign train --set`).

    Returns:
        `dict`: `gif`, `mp4`, `pose`, `side_by_side` (`Path`s of the written files; `side_by_side` is `None` when
        no corpus is found), `trained` (`bool`: whether this run trained),
        `snapshot` (`Path` of the cached pipeline), `repo_id`, `text`, `num_frames` and `fps`.

    Raises:
        ValueError: `text` is empty or not a string, or `repo_id` is not `org/name`.
    """
    from .systems import get_system

    registered = get_system(system)
    if not registered.generates:
        raise ValueError(f"`system` {system!r} does not generate signing; pick one with a pipeline.")
    config = config or registered.demo_config or registered.default_config
    repo_id = repo_id or registered.demo_repo_id or f"hf-sign/{system}-synthsign"
    if text is None:
        text = DEFAULT_TEXT if registered.input_name == "prompt" else DEFAULT_GLOSS
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"`text` must be a non-empty sentence to sign; got {text!r}.")
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or any(not p for p in repo_id.split("/")):
        raise ValueError(f"`repo_id` must look like 'org/name'; got {repo_id!r}.")
    text = text.strip()
    started = time.perf_counter()

    import torch
    from diffusers import DiffusionPipeline

    from .pipelines.hub_cache import cache_pipeline_as_repo, cached_repo_path
    from .render import render_to_file

    work_dir = Path(work_dir) if work_dir is not None else Path("outputs") / f"{system}-{Path(str(config)).stem}"
    data_dir, out_dir = Path(data_dir), Path(out_dir)

    snapshot = None if retrain else cached_repo_path(repo_id, cache_dir=cache_dir)
    trained = snapshot is None
    if snapshot is not None:
        print(
            f"[demo] reusing {repo_id} from the Hugging Face cache ({snapshot}); "
            "no training (--retrain to train again)"
        )
    else:
        if (data_dir / "README.md").is_file():
            print(f"[demo] corpus: reusing SynthSign in {data_dir}")
        else:
            from .data.synthsign import build_synthsign

            print(f"[demo] corpus: building SynthSign into {data_dir}")
            build_synthsign(data_dir, seed=0, show_progress=show_progress, **(synthsign_sizes or {}))
        resume = not retrain and any((work_dir / "checkpoints").glob("*/checkpoint-*"))
        how = "continuing from the checkpoints in" if resume else "into"
        print(f"[demo] training {system} ({config!r} config) {how} {work_dir}; interrupt and rerun to continue")
        start = time.perf_counter()
        registered.run_training(
            data_dir, work_dir, config=config, overrides=train_overrides, resume_from_checkpoint=resume
        )
        print(f"[demo] trained in {time.perf_counter() - start:.0f} s")
        snapshot = cache_pipeline_as_repo(work_dir, repo_id, cache_dir=cache_dir)
        print(f"[demo] cached {work_dir} as {repo_id} ({snapshot})")

    pipe = DiffusionPipeline.from_pretrained(
        repo_id, trust_remote_code=True, local_files_only=True, cache_dir=cache_dir
    )
    pipe.set_progress_bar_config(disable=not show_progress)
    kwargs = {} if num_inference_steps is None else {"num_inference_steps": num_inference_steps}
    signed = text if registered.input_name == "prompt" else [text.split()]  # gloss systems: the text holds glosses
    output = pipe(
        **{registered.input_name: signed}, generator=torch.Generator().manual_seed(seed), output_type="np", **kwargs
    )
    poses = np.asarray(output.poses[0])
    spec, fps = pipe.skeleton, pipe.fps
    info = (getattr(output, "info", None) or [{}])[0]
    for key in ("unknown_glosses", "replaced_glosses"):
        if info.get(key):
            print(f"[demo] {key.replace('_', ' ')} (not in the model's vocabulary): {info[key]}")

    result: Dict[str, Any] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = slugify(text)
    for fmt in OUTPUT_FORMATS:
        result[fmt] = render_to_file(
            poses, spec, out_dir / f"{stem}.{fmt}", fps=fps, text=text, show_progress=show_progress
        )
    print(f"[demo] signed {text!r} with {system} (seed {seed}, {len(poses)} frames at {fps:g} fps):")
    for fmt in OUTPUT_FORMATS:
        print(f"[demo]   {result[fmt]}")
    side = out_dir / f"{stem}-vs-nearest.mp4"
    result["side_by_side"] = _side_by_side(poses, spec, fps, text, data_dir, snapshot, side, show_progress)
    print(f'[demo] load it in Python: DiffusionPipeline.from_pretrained("{repo_id}", trust_remote_code=True)')
    print(f"[demo] {time.perf_counter() - started:.0f} s from start to the signing")
    result.update(trained=trained, snapshot=Path(snapshot), repo_id=repo_id, text=text, num_frames=len(poses), fps=fps)
    return result


def _side_by_side(poses, spec, fps, text, data_dir: Path, snapshot, out_path: Path, show_progress: bool):
    """The generated signing next to the nearest training example (by motion, `TrainingExampleIndex`) as one MP4,
    from the corpus in `data_dir` or the one the cached model's card names; `None` (said in one line) without one."""
    from .render.side_by_side import TrainingExampleIndex, render_side_by_side, training_corpus_of

    corpus = data_dir if (data_dir / "README.md").is_file() else training_corpus_of(snapshot)
    if corpus is None:
        print(f"[demo] no side-by-side video: no corpus in {data_dir} and none named by the model's card")
        return None
    nearest = TrainingExampleIndex.from_corpus(corpus, show_progress=show_progress).nearest(poses)
    path = render_side_by_side(poses, nearest, spec, out_path, fps=fps, text=text, show_progress=show_progress)
    print(f"[demo]   {path} (next to the nearest training example, {nearest.id}: {nearest.text!r})")
    return path
