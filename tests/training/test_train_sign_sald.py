"""Sign-SALD training on a toy SynthSign corpus: both stages, losses, resume, the output folder as a pipeline;
configs, dotted overrides (ablations) and parameter counts."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline

from hf_sign.data.io import save_corpus
from hf_sign.data.schema import make_sample, sign_features
from hf_sign.data.synthsign import build_synthsign
from hf_sign.models.sign_sald import SkeletonVAE
from hf_sign.pipelines.pipeline_sign_sald import SignSALDPipeline
from hf_sign.training.losses import masked_mse
from hf_sign.training.sign_sald_stages import build_denoiser, build_vae, latent_joint_weights
from hf_sign.training.sign_sald_trainer import STAGES, full_config, main, sign_sald_param_counts, train_sign_sald

FAST = {"vae_training.num_train_epochs": 2, "ldm_training.num_train_epochs": 2}
PROMPT = "where was the brother yesterday?"  # words of the toy corpora (a prompt of unknown words only is refused)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthsign")
    build_synthsign(path, seed=0, num_train=16, num_validation=4, num_test=4, show_progress=False)
    return path


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("sald")
    train_sign_sald(corpus, out, config="tiny", seed=0)
    return out


def test_both_stages_write_a_pipeline(trained):
    for name in ("model_index.json", "pipeline_sign_sald.py", "sign_sald_config.json", "sign_sald_metrics.json"):
        assert (trained / name).is_file(), name
    for sub in ("vae", "denoiser", "text_encoder", "tokenizer", "scheduler", "normalizer"):
        assert (trained / sub).is_dir(), sub
    ckpts = list((trained / "checkpoints" / "ldm").glob("checkpoint-*"))
    assert ckpts and (ckpts[0] / "model.safetensors").is_file() and not (ckpts[0] / "training_args.bin").exists()
    metrics = json.loads((trained / "sign_sald_metrics.json").read_text())
    assert metrics["num_train"] == 16 and metrics["vae_global_step"] == 6 and metrics["ldm_global_step"] == 6
    assert metrics["vae_scaling_factor"] > 0 and metrics["vae_val_mpjpe_mm"] > 0
    for stage in STAGES:  # what the stage runner records per stage
        assert metrics[f"{stage}_seconds"] > 0 and metrics[f"{stage}_resumed_from"] is None
        assert np.isfinite([metrics[f"{stage}_train_loss"], metrics[f"{stage}_first_logged_loss"]]).all()
    resolved = json.loads((trained / "sign_sald_config.json").read_text())
    assert resolved["vae"]["skeleton"] == "smplx133" and resolved == {**full_config("tiny"), "vae": resolved["vae"]}
    # every stage logs its loss terms next to the loss
    state = json.loads(next((trained / "checkpoints" / "vae").glob("checkpoint-*/trainer_state.json")).read_text())
    assert all({"loss_m", "loss_pos", "loss_vel", "loss_kl"} <= set(h) for h in state["log_history"] if "loss" in h)


def test_output_dir_loads_and_generates(trained):
    for pipe in (SignSALDPipeline.from_pretrained(trained),
                 DiffusionPipeline.from_pretrained(trained, trust_remote_code=True)):
        assert isinstance(pipe, SignSALDPipeline)
        pipe.set_progress_bar_config(disable=True)
        prompts = [PROMPT, "where is the brother?"]
        out = pipe(prompts, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
        assert all(p.shape == (n, 133) and np.isfinite(p).all() for p, n in zip(out.poses, out.num_frames))
        assert pipe.vae.config.scaling_factor != 1.0 and pipe.scheduler.config.beta_schedule == "linear"
        assert pipe.config.default_guidance_scale == 2.5 and pipe.config.fps == 24.0


def test_resume_continues_from_the_checkpoint(corpus, tmp_path):
    """What only a resume does: markers planted in the checkpoint's state and weights survive, and the second run
    adds only the optimizer steps after the checkpoint's."""
    from safetensors.torch import load_file, save_file

    out = tmp_path / "run"
    train_sign_sald(corpus, out, config="tiny", overrides={**FAST, "ldm_training.num_train_epochs": 1})
    ckpt = out / "checkpoints" / "ldm" / "checkpoint-2"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    state["log_history"].append({"planted_marker": 1.0, "step": 2})
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    weights = load_file(ckpt / "model.safetensors")
    bias = "denoiser.length_predictor.net.4.bias"  # log(frames) the length predictor starts from: log(100) untrained
    weights[bias] = torch.full_like(weights[bias], 100.0)
    save_file(weights, ckpt / "model.safetensors", metadata={"format": "pt"})

    train_sign_sald(corpus, out, config="tiny", stage="ldm", overrides=FAST, resume_from_checkpoint=True)
    metrics = json.loads((out / "sign_sald_metrics.json").read_text())
    assert metrics["ldm_resumed_from"] == str(ckpt) and metrics["ldm_global_step"] == 4
    final = out / "checkpoints" / "ldm" / "checkpoint-4" / "trainer_state.json"
    history = json.loads(final.read_text())["log_history"]
    assert {"planted_marker": 1.0, "step": 2} in history
    # steps 1-2 are the first run's log entries (kept from the checkpoint), only steps 3-4 ran again
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4]
    assert [h for h in history if "loss" in h][:2] == [h for h in state["log_history"] if "loss" in h]
    # trained on from the planted weights: two Adam steps of lr 3e-3 move the bias by about 0.006
    trained = SignSALDPipeline.from_pretrained(out).denoiser.length_predictor.net[4].bias.item()
    assert 99.9 < trained < 100.0
    # without a checkpoint to resume from, the stage trains from scratch (and says so in the metrics)
    fresh = tmp_path / "fresh"
    train_sign_sald(corpus, fresh, config="tiny", stage="vae", overrides=FAST, resume_from_checkpoint=True)
    metrics = json.loads((fresh / "sign_sald_metrics.json").read_text())
    assert metrics["vae_resumed_from"] is None and metrics["vae_global_step"] == 4


def _holistic_corpus(path, num_train=8):
    """A toy MediaPipe Holistic corpus (216 features), like the fingerspelling lexicon's, with one gloss per clip."""
    rng = np.random.default_rng(0)
    base = rng.normal(0.0, 0.2, FEATURES_HOLISTIC)

    def rows(n, prefix):
        out = []
        for i in range(n):
            frames = int(rng.integers(10, 30))
            wave = np.sin(np.linspace(0.0, 2 * np.pi, frames))[:, None] * rng.normal(0.0, 0.05, FEATURES_HOLISTIC)
            letter = chr(ord("a") + i)
            out.append(make_sample(id=f"{prefix}{i}", text=f"letter {letter}", poses=(base + wave).astype(np.float32),
                                   fps=25.0, representation="holistic", gloss=[letter.upper()],
                                   gloss_spans=[[0, frames]]))
        return out

    splits = {"train": rows(num_train, "tr"), "validation": rows(2, "va")}
    save_corpus(splits, sign_features(FEATURES_HOLISTIC), path, card="---\nlicense: cc0-1.0\n---\ntoy holistic\n")
    return path


FEATURES_HOLISTIC = 216
ONE_EPOCH = {"vae_training.num_train_epochs": 1, "ldm_training.num_train_epochs": 1}


def test_skeleton_follows_the_dataset(tmp_path):
    corpus = _holistic_corpus(tmp_path / "holistic")
    out = train_sign_sald(corpus, tmp_path / "out", config="tiny", overrides=ONE_EPOCH)  # no --set needed
    assert json.loads((out / "sign_sald_config.json").read_text())["vae"]["skeleton"] == "holistic"
    pipe = SignSALDPipeline.from_pretrained(out)
    assert pipe.vae.config.skeleton == "holistic" and pipe.config.fps == 25.0
    pipe.set_progress_bar_config(disable=True)
    poses = pipe("letter b", num_inference_steps=2, num_frames=8, generator=torch.manual_seed(0)).poses[0]
    assert poses.shape == (8, FEATURES_HOLISTIC) and np.isfinite(poses).all()


def test_a_pinned_skeleton_must_match_the_dataset(tmp_path):
    corpus = _holistic_corpus(tmp_path / "holistic", num_train=2)
    pinned = tmp_path / "pinned.yaml"
    pinned.write_text("vae:\n  skeleton: smplx133\n")
    for config, overrides in ((pinned, ONE_EPOCH), ("tiny", {**ONE_EPOCH, "vae.skeleton": "smplx133"})):
        with pytest.raises(ValueError) as err:
            train_sign_sald(corpus, tmp_path / "out", config=config, overrides=overrides)
        message = str(err.value)
        for part in ("`vae.skeleton`", "'smplx133'", "'holistic'", "--set vae.skeleton=holistic"):
            assert part in message, (part, message)
        assert not (tmp_path / "out" / "checkpoints").exists()  # before any stage
    # pinning the dataset's own skeleton is fine
    train_sign_sald(corpus, tmp_path / "ok", config=pinned, overrides={**ONE_EPOCH, "vae.skeleton": "holistic"},
                    stage="vae")
    assert SkeletonVAE.from_pretrained(tmp_path / "ok" / "vae").config.skeleton == "holistic"


def test_a_representation_without_a_skeleton_is_named(tmp_path):
    rows = [make_sample(id=f"t{i}", text="hello", poses=np.zeros((8, 6), np.float32), fps=25.0, representation="toy")
            for i in range(2)]
    save_corpus({"train": rows}, sign_features(6), tmp_path / "toy", card="---\nlicense: cc0-1.0\n---\ntoy\n")
    with pytest.raises(ValueError, match="representation 'toy' has no skeleton for the VAE"):
        train_sign_sald(tmp_path / "toy", tmp_path / "out", config="tiny")


def test_ldm_stage_needs_vae(corpus, tmp_path):
    with pytest.raises(ValueError, match="run stage `vae` first"):
        train_sign_sald(corpus, tmp_path, config="tiny", stage="ldm")


def test_ablation_trains_end_to_end(corpus, tmp_path):
    """w/o ST-Latent + w/o CrossAttn through `--set`-style string overrides, via the CLI entry point."""
    argv = ["--dataset_dir", str(corpus), "--output_dir", str(tmp_path), "--config", "tiny",
            "--set", "vae.skeleton_aware=false", "denoiser.use_cross_attention=false",
            "vae_training.num_train_epochs=1", "ldm_training.num_train_epochs=1"]
    assert main(argv) == 0
    pipe = SignSALDPipeline.from_pretrained(tmp_path)
    assert pipe.vae.latent_num_joints == 1 and pipe.denoiser.config.num_joints == 1
    assert pipe.denoiser.config.use_cross_attention is False
    pipe.set_progress_bar_config(disable=True)
    assert pipe(PROMPT, num_inference_steps=2, num_frames=9).poses[0].shape == (9, 133)


def test_per_channel_latent_normalization(corpus, tmp_path):
    overrides = {**FAST, "vae_training.latent_normalization": "per_channel",
                 "denoiser.prediction_type": "v_prediction"}
    train_sign_sald(corpus, tmp_path, config="tiny", overrides=overrides)
    pipe = SignSALDPipeline.from_pretrained(tmp_path)
    assert len(pipe.vae.config.latents_std) == pipe.vae.latent_num_joints * pipe.vae.latent_channels
    low, high = json.loads((tmp_path / "sign_sald_metrics.json").read_text())["vae_latents_std_range"]
    assert low == pytest.approx(min(pipe.vae.config.latents_std), abs=1e-4) and high >= low
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    pipe.set_progress_bar_config(disable=True)
    out = pipe(PROMPT, num_inference_steps=2, num_frames=9, generator=torch.Generator().manual_seed(0))
    assert out.poses[0].shape == (9, 133) and np.isfinite(out.poses[0]).all()
    with pytest.raises(ValueError, match="latent_normalization"):
        full_config("tiny", {"vae_training.latent_normalization": "per_joint"})


def test_attention_guidance_trains_and_logs_its_loss(corpus, tmp_path):
    overrides = {**FAST, "ldm_training.attention_guidance_weight": 0.5, "ldm_training.attention_guidance_heads": 1}
    train_sign_sald(corpus, tmp_path, config="tiny", overrides=overrides)
    state = json.loads(next((tmp_path / "checkpoints" / "ldm").glob("checkpoint-*/trainer_state.json")).read_text())
    logged = [h["loss_attention"] for h in state["log_history"] if "loss_attention" in h]
    assert logged and all(0 < v < 20 for v in logged)
    pipe = SignSALDPipeline.from_pretrained(tmp_path)  # inference does not need the alignment
    pipe.set_progress_bar_config(disable=True)
    assert pipe(PROMPT, num_inference_steps=2, num_frames=9).poses[0].shape == (9, 133)
    with pytest.raises(ValueError, match="use_cross_attention"):
        no_cross = {**overrides, "denoiser.use_cross_attention": False}
        train_sign_sald(corpus, tmp_path / "b", config="tiny", overrides=no_cross)
    with pytest.raises(ValueError, match="attention_guidance_weight"):
        full_config("tiny", {"ldm_training.attention_guidance_weight": -1})


def test_duration_conditioning_trains_and_generates(corpus, tmp_path):
    overrides = {**FAST, "denoiser.duration_conditioning": True}
    train_sign_sald(corpus, tmp_path, config="tiny", overrides=overrides)
    state = json.loads(next((tmp_path / "checkpoints" / "ldm").glob("checkpoint-*/trainer_state.json")).read_text())
    logged = [h["loss_duration"] for h in state["log_history"] if "loss_duration" in h]
    assert logged and all(0 < v < 50 for v in logged)
    pipe = SignSALDPipeline.from_pretrained(tmp_path)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.denoiser.config.duration_conditioning
    out = pipe(["where is the brother?", PROMPT], num_inference_steps=2, generator=torch.manual_seed(0))
    assert [p.shape[1] for p in out.poses] == [133, 133] and all(np.isfinite(p).all() for p in out.poses)


def test_latent_joint_loss_weights(corpus, tmp_path):
    pred, target = torch.zeros(2, 3, 2, 4), torch.zeros(2, 3, 2, 4)
    target[:, :, 0] = 1.0  # every error sits on atomic joint 0
    target[1, 2] = 100.0  # a padded frame: never counted
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    assert masked_mse(pred, target, mask).item() == pytest.approx(0.5)
    assert masked_mse(pred, target, mask, torch.tensor([3.0, 1.0])).item() == pytest.approx(0.75)  # 1.5 x 0.5
    assert masked_mse(pred, target, mask, torch.tensor([0.0, 1.0])).item() == 0.0
    assert masked_mse(pred, target, mask, torch.tensor([3, 1])).item() == pytest.approx(0.75)  # integers
    for bad in ([1, 3], {"left_hand": -1}, "hands"):
        with pytest.raises(ValueError, match="latent_joint_loss_weights"):
            full_config("tiny", {"ldm_training.latent_joint_loss_weights": bad})
    vae = {**full_config("tiny")["vae"], "skeleton": "smplx133"}  # the skeleton follows the dataset when training
    assert latent_joint_weights({"left_hand": 3, "right_hand": 2}, vae) == [1, 1, 1, 1, 1, 3, 2]
    assert latent_joint_weights({"left_hand": 3}, {**vae, "num_atomic_joints": 5}) == [1, 1, 1, 3, 1]
    assert latent_joint_weights({"left_hand": 3}, {**vae, "skeleton_aware": False}) is None  # flat latent: warned
    with pytest.raises(ValueError, match="every atomic joint weight 0"):
        names = ("root", "spine", "head", "left_shoulder", "right_shoulder", "left_hand", "right_hand")
        latent_joint_weights(dict.fromkeys(names, 0), vae)
    with pytest.raises(ValueError, match=r"names \['left_elbow'\], not atomic joints .*J' = 7"):
        elbow = {**FAST, "ldm_training.latent_joint_loss_weights": {"left_elbow": 2}}
        train_sign_sald(corpus, tmp_path, config="tiny", overrides=elbow)
    assert not (tmp_path / "checkpoints").exists()  # failed before the VAE stage
    # trains end to end with the weights
    hands = {**FAST, "ldm_training.latent_joint_loss_weights": "{left_hand: 3}"}
    train_sign_sald(corpus, tmp_path / "w", config="tiny", overrides=hands)
    assert (tmp_path / "w" / "model_index.json").is_file()


def test_attention_guidance_without_gloss_spans_fails_before_training(corpus, tmp_path):
    import shutil

    import pyarrow.parquet as pq

    bare = tmp_path / "bare"
    shutil.copytree(corpus, bare)
    for f in (bare / "data").glob("*.parquet"):
        pq.write_table(pq.read_table(f).drop_columns(["gloss_spans"]), f)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="need `gloss_spans` in every train sample; 16 have none"):
        train_sign_sald(bare, out, config="tiny", overrides={**FAST, "ldm_training.attention_guidance_weight": 0.1})
    assert not (out / "checkpoints").exists()  # no stage ran
    advice = "`denoiser.duration_conditioning` need .*--set denoiser.duration_conditioning=false"
    with pytest.raises(ValueError, match=advice):
        train_sign_sald(bare, out, config="tiny", overrides={**FAST, "denoiser.duration_conditioning": True})
    # the vae stage alone does not need the alignment
    guided = {**FAST, "ldm_training.attention_guidance_weight": 0.1}
    train_sign_sald(bare, out, config="tiny", stage="vae", overrides=guided)
    assert (out / "vae" / "config.json").is_file()


# ------------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize(
    "overrides, check",
    [
        ({"vae.num_atomic_joints": 5}, lambda v, d: v.latent_num_joints == 5 and d.config.num_joints == 5),
        ({"vae.num_atomic_joints": "9"}, lambda v, d: v.latent_num_joints == 9 and d.config.num_joints == 9),
        ({"vae.skeleton_aware": False}, lambda v, d: v.latent_num_joints == 1 and d.config.latent_channels == 28),
        ({"denoiser.use_skeletal_attention": "false"}, lambda v, d: "skeletal" not in d.layers[0].attns),
        ({"denoiser.use_temporal_attention": False}, lambda v, d: "temporal" not in d.layers[0].attns),
        ({"denoiser.use_cross_attention": False}, lambda v, d: "joint" in d.layers[0].attns),
    ],
)
def test_ablation_overrides(overrides, check):
    cfg = full_config("tiny", overrides)
    vae = build_vae(cfg)
    assert check(vae, build_denoiser(cfg, vae, cfg["text_encoder"]["hidden_size"]))


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"vae.num_atomic_jionts": 5}, r"Unknown .* key `vae.num_atomic_jionts`.*num_atomic_joints"),
        ({"nope": 1}, "Unknown"),
        ({"vae.num_atomic_joints": "five"}, "must be a int"),
        ({"denoiser.use_cross_attention": 3}, "must be a bool"),
        ({"vae": 3}, "is a section"),
        ({"text_encoder.type": "t5"}, "text_encoder.type"),
    ],
)
def test_bad_overrides(overrides, match):
    with pytest.raises(ValueError, match=match):
        full_config("tiny", overrides)


def test_configs_and_param_counts():
    paper = sign_sald_param_counts("paper")
    assert abs(paper["vae"] - 2.81e6) / 2.81e6 < 0.01 and paper["paper_vae"] == 2_810_000
    assert paper["denoiser"] > paper["length_predictor"] > 0 and paper["text_encoder"] > 0
    cfg = full_config("paper")
    assert cfg["vae_training"]["num_train_epochs"] == 50 and cfg["vae_training"]["per_device_train_batch_size"] == 128
    assert cfg["ldm_training"]["num_train_epochs"] == 500 and cfg["ldm_training"]["per_device_train_batch_size"] == 64
    assert cfg["ldm_training"]["learning_rate"] == cfg["vae_training"]["learning_rate"] == 1e-3
    assert cfg["scheduler"]["num_train_timesteps"] == 1000 and cfg["scheduler"]["beta_schedule"] == "linear"
    assert inspect.signature(SignSALDPipeline.__call__).parameters["num_inference_steps"].default == 50  # DDIM 50
    small = sign_sald_param_counts("small")
    tiny = sign_sald_param_counts("tiny")
    assert tiny["vae"] < small["vae"] < paper["vae"] and tiny["denoiser"] < small["denoiser"] < paper["denoiser"]
    with pytest.raises(ValueError, match="Unknown sign-sald config"):
        full_config("huge")
