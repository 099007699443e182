"""The config loader: sections read off signatures and dataclasses, typed optional fields, and the shipped YAML
configs, which list only what differs from the defaults."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import pytest

from hf_sign.models.sign_sald import SkeletonLatentDenoiser, SkeletonVAE
from hf_sign.training.config_utils import CONFIGS_DIR, ConfigSchema, ConfigSection, load_config
from hf_sign.training.sign_sald_trainer import CONFIG_SCHEMA, default_config, full_config


class ToyModel:
    def __init__(self, width: int = 8, name: Optional[str] = None, dims: Tuple[int, ...] = (2, 3),
                 steps: Optional[int] = None, derived: int = 0, required=None):
        pass


@dataclass
class ToyArguments:
    rate: float = 0.1
    weights: Optional[Dict[str, float]] = None


SCHEMA = ConfigSchema(
    "toy",
    top_level={"seed": 0},
    sections={
        "model": ConfigSection(ToyModel, exclude=("derived", "required"), defaults={"width": 16}),
        "training": ConfigSection(ToyArguments),
    },
)


def test_sections_come_from_signatures_and_dataclasses():
    assert SCHEMA.defaults() == {
        "seed": 0,
        "model": {"width": 16, "name": None, "dims": [2, 3], "steps": None},  # tuples as lists, system defaults
        "training": {"rate": 0.1, "weights": None},
    }
    assert SCHEMA.types() == {"model.name": "", "model.steps": 0, "training.weights": {}}
    assert ConfigSection(ToyModel, include=("width",)).fields() == {"width": (8, 0)}
    with pytest.raises(ValueError, match=r"has no configurable argument\(s\) \['depth'\]"):
        ConfigSection(ToyModel, defaults={"depth": 2}).fields()


def test_resolve_checks_types_of_optional_fields():
    cfg = SCHEMA.resolve({"model": {"width": "32"}}, {"model.name": "abc", "model.steps": "5", "training.rate": 1,
                                                       "training.weights": "{a: 2}"})
    assert cfg["model"] == {"width": 32, "name": "abc", "dims": [2, 3], "steps": 5}
    assert cfg["training"] == {"rate": 1.0, "weights": {"a": 2}}
    assert SCHEMA.resolve(None, {"model.name": 123})["model"]["name"] == "123"  # still a string field
    assert SCHEMA.resolve({"model": {"name": "x"}}, {"model.name": "null"})["model"]["name"] is None
    # a mapping field set in a config takes a whole new mapping from the command line
    cfg = SCHEMA.resolve({"training": {"weights": {"a": 1}}}, {"training.weights": "{b: 3}"})
    assert cfg["training"]["weights"] == {"b": 3}
    with pytest.raises(ValueError, match=r"`model.steps` must be a int \(current value None\); got 'many'"):
        SCHEMA.resolve(None, {"model.steps": "many"})
    with pytest.raises(ValueError, match="`training.weights` must be a dict"):
        SCHEMA.resolve(None, {"training.weights": "[1, 2]"})
    with pytest.raises(ValueError, match=r"Unknown toy config key `model.derived`; valid keys in section `model`"):
        SCHEMA.resolve({"model": {"derived": 1}})
    with pytest.raises(ValueError, match="must be a int"):
        SCHEMA.resolve(None, {"seed": "x"})


def test_sign_sald_sections_follow_the_model_signatures():
    cfg = default_config()
    vae_args = set(inspect.signature(SkeletonVAE.__init__).parameters) - {"self"}
    derived = {"scaling_factor", "latents_mean", "latents_std"}  # estimated by the VAE stage
    loss = {"lambda_pos", "lambda_vel", "lambda_kl", "feature_mean", "feature_std"}  # training's, not the model's
    assert set(cfg["vae"]) == vae_args - derived - loss
    den_args = set(inspect.signature(SkeletonLatentDenoiser.__init__).parameters) - {"self"}
    assert set(cfg["denoiser"]) == den_args - {"num_joints", "latent_channels", "text_dim", "cond_drop_prob"}
    for key, value in cfg["denoiser"].items():
        assert value == inspect.signature(SkeletonLatentDenoiser.__init__).parameters[key].default
    assert cfg["vae"]["skeleton"] is None  # follows the dataset
    assert {k: cfg["vae_training"][k] for k in ("lambda_pos", "lambda_vel", "lambda_kl")} == {
        "lambda_pos": 1.0, "lambda_vel": 0.5, "lambda_kl": 1e-4}
    assert cfg["ldm_training"]["cond_drop_prob"] == 0.1
    assert cfg["scheduler"] == {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02,
                                "beta_schedule": "linear", "clip_sample": False, "set_alpha_to_one": False,
                                "steps_offset": 1}
    assert "snr_gamma" not in cfg["ldm_training"]
    with pytest.raises(ValueError, match="Unknown sign-sald config key `ldm_training.snr_gamma`"):
        full_config("tiny", {"ldm_training.snr_gamma": 5})
    for config, overrides in (({"vae": {"skeleton": ["smplx133"]}}, None), ("tiny", {"vae": {"skeleton": [1]}})):
        with pytest.raises(ValueError, match="`vae.skeleton` must be a str"):
            full_config(config, overrides)
    with pytest.raises(ValueError, match="Unknown sign-sald config key `vae.skeletn`"):
        full_config("tiny", {"vae": {"skeletn": "holistic"}})  # a section given as a mapping is merged key by key


def _sign_sald_keys(name):
    """Top-level keys and section keys (a mapping-valued field such as `latent_joint_loss_weights` is one key)."""
    raw = load_config("sign-sald", name)
    return [f"{s}.{k}" if isinstance(v, dict) else s
            for s, v in raw.items() for k in (v if isinstance(v, dict) else [s])]


def _get(cfg, dotted):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIGS_DIR / "sign-sald").glob("*.yaml")))
def test_sign_sald_configs_list_only_what_differs_from_the_defaults(name):
    defaults, resolved = CONFIG_SCHEMA.defaults(), full_config(name)
    keys = _sign_sald_keys(name)
    assert keys, name
    same = [k for k in keys if _get(resolved, k) == _get(defaults, k)]
    assert not same, f"{name}.yaml restates defaults: {same}"


def test_paper_config_is_close_to_empty():
    keys = _sign_sald_keys("paper")
    assert all(k.startswith("text_encoder.") for k in keys) and len(keys) <= 5  # CLIP ViT-B/32's text tower
    cfg = full_config("paper")
    assert cfg["text_encoder"]["hidden_size"] == 512 and cfg["text_encoder"]["max_position_embeddings"] == 77


def test_configs_hold_no_measurement_logs():
    for path in CONFIGS_DIR.glob("*/*.yaml"):
        text = path.read_text(encoding="utf-8")
        comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
        assert len(comments) <= 8, f"{path.name}: {len(comments)} comment lines; results belong in benchmarks/results/"
        assert "session" not in text.lower(), path
