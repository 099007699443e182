"""`hf-sign demo`: trains the default system once into a (temporary) hub cache, reuses it by repo id, writes
GIF/MP4/.pose.

The default system through the registry, its tiny config, a 16-sentence SynthSign, 2 denoising steps and a temporary
hub cache (`cache_dir`), so nothing touches the user's Hugging Face cache or the network.
"""

from __future__ import annotations

import json

import imageio.v2 as iio2
import imageio.v3 as iio
import numpy as np
import pytest
from pose_format import Pose

import hf_sign.data.synthsign as synthsign_module
from hf_sign import demo as demo_module
from hf_sign.cli import main
from hf_sign.demo import run_demo, slugify
from hf_sign.pipelines.hub_cache import cached_repo_path
from hf_sign.render import mediapipe_mapping, pose_to_positions
from hf_sign.skeletons import get_skeleton
from hf_sign.systems import SignSystem, get_system, list_systems

SYSTEM = get_system(demo_module.DEFAULT_SYSTEM)
REPO = "test-org/demo"
TEXT = "The weather, tomorrow: will be rainy!"
TINY = dict(config="tiny", show_progress=False, num_inference_steps=2)
SIZES = dict(num_train=16, num_validation=4, num_test=4)


def read_pose(path):
    with open(path, "rb") as fh:
        return Pose.read(fh.read())


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return {name: root / name for name in ("data", "work", "cache", "out1", "out2")}


@pytest.fixture(scope="module")
def first_run(dirs):
    """Nothing cached and no corpus yet: builds the corpus, trains, caches, generates."""
    return run_demo(TEXT, repo_id=REPO, data_dir=dirs["data"], work_dir=dirs["work"], out_dir=dirs["out1"],
                    cache_dir=dirs["cache"], synthsign_sizes=SIZES, **TINY)


def _no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the demo trained or built a corpus although the model is cached")

    monkeypatch.setattr(SignSystem, "run_training", fail)
    monkeypatch.setattr(synthsign_module, "build_synthsign", fail)


def test_slugify():
    assert slugify(TEXT) == "the-weather-tomorrow-will-be-rainy"
    assert slugify("?!") == "sign" and len(slugify("word " * 40)) <= 60


def test_first_run_trains_caches_and_writes_files(first_run, dirs, capsys):
    r = first_run
    assert r["trained"] is True and r["repo_id"] == REPO
    assert (dirs["data"] / "README.md").is_file() and (dirs["work"] / "model_index.json").is_file()
    assert cached_repo_path(REPO, cache_dir=dirs["cache"]) == r["snapshot"]
    assert (r["snapshot"] / "model_index.json").is_file() and not list(r["snapshot"].rglob("checkpoint-*"))
    for fmt in ("gif", "mp4", "pose"):
        assert r[fmt] == dirs["out1"] / f"the-weather-tomorrow-will-be-rainy.{fmt}"
        assert r[fmt].is_file() and r[fmt].stat().st_size > 0, fmt
    n = r["num_frames"]
    assert n > 0 and r["fps"] == 24.0
    pose = read_pose(r["pose"])
    assert pose.body.data.shape[:2] == (n, 1) and pose.body.fps == 24.0
    spec = get_skeleton("smplx133")
    positions = pose_to_positions(pose, spec)
    mapped = sorted({j for j, _, _ in mediapipe_mapping(spec)})  # the joints with a MediaPipe point
    assert positions.shape == (n, 54, 3) and np.isfinite(positions[:, mapped]).all()
    gif = iio.imread(r["gif"], plugin="pillow", index=None)
    assert gif.ndim == 4 and 1 <= gif.shape[0] <= n  # Pillow merges identical consecutive frames
    reader = iio2.get_reader(str(r["mp4"]), format="FFMPEG")
    assert sum(1 for _ in reader) == n
    reader.close()
    # the signing beside its nearest training example: two panels, as long as the longer of the two
    assert r["side_by_side"] == dirs["out1"] / "the-weather-tomorrow-will-be-rainy-vs-nearest.mp4"
    side = iio.imread(r["side_by_side"])
    assert side.shape[0] >= n and side.shape[2] > side.shape[1]


def test_second_run_reuses_the_cache(first_run, dirs, monkeypatch, capsys):
    _no_training(monkeypatch)
    capsys.readouterr()
    r = run_demo(TEXT, repo_id=REPO, data_dir=dirs["data"] / "absent", work_dir=dirs["work"] / "absent",
                 out_dir=dirs["out2"], cache_dir=dirs["cache"], **TINY)
    out = capsys.readouterr().out
    assert r["trained"] is False and r["snapshot"] == first_run["snapshot"]
    assert "reusing" in out and REPO in out and str(r["pose"]) in out
    assert r["side_by_side"] is None and "no side-by-side video" in out  # no corpus here, and no card naming one
    assert not (dirs["data"] / "absent").exists() and not (dirs["work"] / "absent").exists()
    # same seed, same signing: the .pose files are byte-identical
    assert r["num_frames"] == first_run["num_frames"]
    assert r["pose"].read_bytes() == first_run["pose"].read_bytes()


def test_interrupted_run_continues_from_checkpoints(first_run, dirs, tmp_path):
    """A demo stopped after the first stage: the next run resumes its checkpoint and trains the next stage."""
    work, (first, second) = tmp_path / "work", SYSTEM.stages[:2]
    SYSTEM.run_training(dirs["data"], work, config="tiny", stage=first)
    steps = json.loads((work / SYSTEM.metrics_file).read_text())[f"{first}_global_step"]
    r = run_demo(TEXT, repo_id="test-org/resumed", data_dir=dirs["data"], work_dir=work, out_dir=tmp_path / "out",
                 cache_dir=dirs["cache"], **TINY)
    metrics = json.loads((work / SYSTEM.metrics_file).read_text())
    assert r["trained"] is True and metrics[f"{first}_resumed_from"].endswith(f"checkpoint-{steps}")
    assert metrics[f"{second}_global_step"] > 0 and r["pose"].stat().st_size > 0
    assert cached_repo_path("test-org/resumed", cache_dir=dirs["cache"]) == r["snapshot"]


@pytest.mark.parametrize("text", ["", "   ", 3])
def test_empty_text_raises(text, tmp_path, monkeypatch):
    _no_training(monkeypatch)
    with pytest.raises(ValueError, match="`text`"):
        run_demo(text, repo_id=REPO, data_dir=tmp_path / "d", out_dir=tmp_path / "o", cache_dir=tmp_path / "c", **TINY)
    assert not any(tmp_path.iterdir())


def test_bad_repo_id_raises(tmp_path):
    with pytest.raises(ValueError, match="`repo_id`"):
        run_demo("hello", repo_id="no-slash", cache_dir=tmp_path, **TINY)


def test_cli_demo_passes_its_options(monkeypatch):
    calls = []
    monkeypatch.setattr(demo_module, "run_demo", lambda **kw: calls.append(kw) or {})
    assert main(["demo"]) == 0
    # repo id and config default to the system's (the registry's), resolved in run_demo
    assert calls[-1]["text"] is None and calls[-1]["system"] == SYSTEM.name  # the system's default, in run_demo
    assert calls[-1]["repo_id"] is None and calls[-1]["config"] is None
    assert calls[-1]["out_dir"] == "outputs/demo" and calls[-1]["retrain"] is False
    argv = [
        "demo", "--text", "hello", "--config", "tiny", "--repo-id", "a/b", "--out", "o", "--seed", "3", "--retrain"
    ]
    assert main(argv) == 0
    assert {k: calls[-1][k] for k in ("text", "config", "repo_id", "out_dir", "seed", "retrain")} == {
        "text": "hello", "config": "tiny", "repo_id": "a/b", "out_dir": "o", "seed": 3, "retrain": True}


def test_demo_defaults_come_from_the_registry(tmp_path, monkeypatch):
    _no_training(monkeypatch)
    assert SYSTEM.name == "stable-signer" and SYSTEM.demo_repo_id == "hf-sign/stable-signer-synthsign"
    assert SYSTEM.demo_config == "demo" and get_system("sign-sald").demo_config is None
    with pytest.raises(ValueError, match="does not generate"):
        run_demo("hello", system="evaluator", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="Unknown system"):
        run_demo("hello", system="nope", cache_dir=tmp_path)


def test_cli_demo_empty_text_is_a_clear_error(tmp_path, monkeypatch, capsys):
    _no_training(monkeypatch)
    assert main(["demo", "--text", "", "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path / "d")]) == 2
    assert "`text`" in capsys.readouterr().err


def test_a_gloss_conditioned_system_signs_glosses_by_default(first_run, dirs, tmp_path, capsys):
    gloss_system = next(s for s in list_systems(generators_only=True) if s.input_name == "gloss")
    r = run_demo(system=gloss_system.name, repo_id="test-org/gloss-demo", data_dir=dirs["data"],
                 work_dir=tmp_path / "work", out_dir=tmp_path / "out", cache_dir=dirs["cache"], **TINY)
    assert r["text"] == demo_module.DEFAULT_GLOSS and r["pose"].name == "tomorrow-weather-rain.pose"
    assert r["num_frames"] > 0 and read_pose(r["pose"]).body.data.shape[0] == r["num_frames"]
    capsys.readouterr()
    run_demo("TOMORROW NOTAGLOSS", system=gloss_system.name, repo_id="test-org/gloss-demo",
             out_dir=tmp_path / "out2", cache_dir=dirs["cache"], **TINY)
    assert "unknown glosses (not in the model's vocabulary): ['NOTAGLOSS']" in capsys.readouterr().out
