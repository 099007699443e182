"""The Gradio Space through its API (`gradio_client` against the app on a local port) and its plain functions: one
tiny pipeline per registered system, video / `.pose` / `.npz` outputs that hold the generated poses, visible errors
for bad input, controls that follow each pipeline's `__call__`, and eight concurrent requests."""

from __future__ import annotations

import contextlib
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from pose_format import Pose

from hf_sign.space import (
    MAX_INPUT_CHARS,
    SpaceInputError,
    SpaceModel,
    build_demo,
    check_input,
    generate,
    load_models,
    main,
    resolve_models,
)
from hf_sign.systems import list_systems

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

TEXT = "where was the brother yesterday?"
GLOSS = "YESTERDAY ME STORE GO"  # for the gloss-conditioned systems: glosses their tiny tokenizers know
STEPS = 3  # for the pipelines that take steps; tiny models, few steps


@pytest.fixture(scope="module")
def corpus(tiny_synthsign):
    return tiny_synthsign


@pytest.fixture(scope="module")
def models(tiny_pipeline_folders, corpus):
    return load_models({name: str(folder) for name, folder in tiny_pipeline_folders.items()}, corpus=str(corpus))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_space(models, concurrency_limit=2):
    """The Space's Blocks served on a free local port; yields its URL."""
    demo = build_demo(models, concurrency_limit=concurrency_limit)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def client(models):
    with running_space(models) as url:
        yield gradio_client.Client(url, verbose=False)


def call(client, system, text=TEXT, seed=0, steps=STEPS, guidance=2.0, pair=False):
    return client.predict(system, text, seed, steps, guidance, pair, api_name="/generate")


def video_path(value):
    return value["video"] if isinstance(value, dict) else value


def read_pose(path):
    with open(path, "rb") as fh:
        return Pose.read(fh.read())


# ------------------------------------------------------------------------------------------------ plain functions
def test_every_generating_system_is_served_by_its_registry_entry(models):
    assert set(models) == {s.name for s in list_systems(generators_only=True)}, "a new system needs a tiny fixture"
    for name, model in models.items():
        assert model.system.name == name
        assert model.input_kind == ("text" if "text" in model.system.conditioning else "gloss")


def test_controls_follow_the_call_signature(models):
    for model in models.values():
        controls = model.controls()
        assert controls["seed"]["visible"] == ("generator" in model.accepts)
        assert controls["steps"]["visible"] == ("num_inference_steps" in model.accepts)
        assert controls["guidance"]["visible"] == ("guidance_scale" in model.accepts)
    # Sign-SALD takes guidance (default from its config); Stable Signer has none
    assert models["sign-sald"].controls()["guidance"] == {"visible": True, "value": 2.5}
    assert models["stable-signer"].controls()["guidance"]["visible"] is False


def test_generate_passes_only_what_the_pipeline_takes(models, tmp_path):
    # guidance given to a pipeline without `guidance_scale` is not passed (it would raise a TypeError)
    result = generate(models["stable-signer"], TEXT, seed=1, guidance_scale=3.0, out_dir=tmp_path / "ss")
    assert "guidance_scale" not in result.details["arguments"] and result.details["arguments"]["seed"] == 1
    sald = models["sign-sald"]
    a = generate(sald, TEXT, seed=0, num_inference_steps=2, out_dir=tmp_path / "a")
    b = generate(sald, TEXT, seed=0, num_inference_steps=2, out_dir=tmp_path / "b")
    c = generate(sald, TEXT, seed=0, num_inference_steps=4, out_dir=tmp_path / "c")
    d = generate(sald, TEXT, seed=5, num_inference_steps=2, out_dir=tmp_path / "d")
    poses = {k: np.load(r.npz)["poses"] for k, r in dict(a=a, b=b, c=c, d=d).items()}
    np.testing.assert_array_equal(poses["a"], poses["b"])
    for other in ("c", "d"):  # steps and seed reach the pipeline
        assert poses["a"].shape != poses[other].shape or not np.allclose(poses["a"], poses[other])


@pytest.mark.parametrize(
    "text, message",
    [("", "input is empty"), ("   \n ", "input is empty"), (None, "input is empty"), ("a" * 201, "limit is 200")],
)
def test_check_input_refuses_bad_text(text, message):
    with pytest.raises(SpaceInputError, match=message):
        check_input(text, "text", max_chars=MAX_INPUT_CHARS)
    assert check_input("  where   was\nhe ", "text") == "where was he"


def test_out_of_range_controls_are_input_errors(models, tmp_path):
    for kwargs, name in [({"seed": -1}, "seed"), ({"num_inference_steps": 0}, "steps"), ({"seed": 1.5}, "seed")]:
        with pytest.raises(SpaceInputError, match=name):
            generate(models["sign-sald"], TEXT, out_dir=tmp_path, **kwargs)


def test_resolve_models(monkeypatch):
    import hf_sign.pipelines.hub_cache as hub_cache

    assert resolve_models(["a=org/x", "b=some/dir"], env={}) == {"a": "org/x", "b": "some/dir"}
    env = {"HF_SIGN_SPACE_MODELS": "a=org/x, b=org/y"}
    assert resolve_models(None, env=env) == {"a": "org/x", "b": "org/y"}
    cached = {s.demo_repo_id for s in list_systems(generators_only=True)}
    monkeypatch.setattr(hub_cache, "cached_repo_path", lambda repo_id: "/cache" if repo_id in cached else None)
    expected = {s.name: s.demo_repo_id for s in list_systems(generators_only=True)}
    assert resolve_models(None, env={}) == expected
    monkeypatch.setattr(hub_cache, "cached_repo_path", lambda repo_id: None)
    assert resolve_models(None, env={}) == {}


def test_main_without_models_says_what_to_do(monkeypatch, capsys):
    import hf_sign.pipelines.hub_cache as hub_cache

    monkeypatch.delenv("HF_SIGN_SPACE_MODELS", raising=False)
    monkeypatch.setattr(hub_cache, "cached_repo_path", lambda repo_id: None)
    assert main([]) == 2
    assert "--model NAME=DIR_OR_REPO_ID" in capsys.readouterr().out
    assert main(["--model", "x=/no/such/folder/or-repo"]) == 2
    assert "error:" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ the API
@pytest.mark.parametrize("system", [s.name for s in list_systems(generators_only=True)])
def test_api_returns_video_pose_and_npz(client, models, system):
    model = models[system]
    text = TEXT if model.input_kind == "text" else GLOSS
    video, pose_file, npz_file, pair, details = call(client, system, text=text)
    frames = iio.imread(video_path(video))
    assert frames.ndim == 4 and frames.shape[-1] == 3 and frames.std() > 0
    with np.load(npz_file, allow_pickle=False) as z:
        poses = z["poses"]
        assert str(z["representation"]) == model.pipeline.skeleton.name and float(z["fps"]) == model.pipeline.fps
        assert str(z["text"]) == text
    assert poses.shape == (details["num_frames"], model.pipeline.skeleton.feature_dim) and len(frames) == len(poses)
    pose = read_pose(pose_file)
    assert pose.body.data.shape[0] == len(poses) and pose.body.fps == model.pipeline.fps
    # the .npz holds what the pipeline generates for the same input and seed
    kwargs = {model.system.input_name: [text if model.input_kind == "text" else text.split()], "output_type": "np"}
    if "generator" in model.accepts:
        kwargs["generator"] = torch.Generator().manual_seed(0)
    if "num_inference_steps" in model.accepts:
        kwargs["num_inference_steps"] = STEPS
    if "guidance_scale" in model.accepts:
        kwargs["guidance_scale"] = 2.0
    np.testing.assert_allclose(poses, model.pipeline(**kwargs).poses[0], atol=1e-6)
    assert pair is None and details["system"] == system


def test_api_side_by_side_with_the_nearest_training_example(client):
    video, _, _, pair, details = call(client, "sign-sald", pair=True)
    frames = iio.imread(video_path(pair))
    assert frames.shape[2] == 2 * iio.imread(video_path(video)).shape[2]
    assert details["nearest_training_example"]["id"].startswith("synthsign-train-")


@pytest.mark.parametrize(
    "text, system, message",
    [
        ("", "sign-sald", "input is empty"),
        ("word " * 60, "sign-sald", f"the limit is {MAX_INPUT_CHARS}"),
        (TEXT, "no-such-system", "no-such-system"),
    ],
)
def test_api_bad_input_is_a_visible_error(client, text, system, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message) as err:
        call(client, system, text=text)
    assert "Traceback" not in str(err.value)


def test_api_unexpected_failure_is_one_line(client, models, monkeypatch):
    from gradio_client.exceptions import AppError

    def broken(**kwargs):
        raise RuntimeError("internal detail")

    monkeypatch.setattr(models["stable-signer"], "pipeline", _Broken(models["stable-signer"].pipeline, broken))
    with pytest.raises(AppError, match="Generation failed on the server") as err:
        call(client, "stable-signer")
    assert "internal detail" not in str(err.value)


class _Broken:
    """A pipeline stand-in with the real one's signature and attributes whose call raises."""

    def __init__(self, pipe, fn):
        self._pipe, self._fn = pipe, fn

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    def __call__(self, **kwargs):
        return self._fn(**kwargs)


def test_eight_concurrent_requests_complete(client, capsys):
    systems = [s.name for s in list_systems(generators_only=True)]
    texts = ["where was the brother yesterday?", "who will visit the hotel tomorrow?", "is my milk cold?", "hello"]

    def one(i):
        start = time.perf_counter()
        out = call(client, systems[i % len(systems)], text=texts[i % len(texts)], seed=i)
        return time.perf_counter() - start, out

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(8)))
    wall = time.perf_counter() - start
    for i, (_, (video, pose_file, npz_file, _, details)) in enumerate(results):
        assert iio.imread(video_path(video)).shape[0] == details["num_frames"] > 0
        assert np.load(npz_file)["poses"].shape[0] == details["num_frames"]
        assert details["system"] == systems[i % len(systems)] and details["input"] == texts[i % len(texts)]
    with capsys.disabled():
        latencies = ", ".join(f"{s:.2f}" for s, _ in results)
        print(f"\n[space] 8 concurrent requests (concurrency limit 2): wall {wall:.2f} s; per request: {latencies} s")


def test_space_model_refuses_a_folder_of_no_system(tmp_path):
    with pytest.raises((ValueError, OSError)):
        SpaceModel.load("x", str(tmp_path))
