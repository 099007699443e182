"""Shared config helpers: named YAML configs and type-checked dotted overrides."""

import pytest

from hf_sign.training.config_utils import (
    apply_overrides,
    coerce_value,
    deep_update,
    load_config,
    parse_overrides,
    resolve_config,
)

BASE = {
    "seed": 0,
    "vae": {"hidden_dims": [16, 16], "skeleton_aware": True, "lambda_kl": 1e-4, "act_fn": "silu"},
    "opt": None,
}


def test_resolve_and_load(tmp_path):
    assert resolve_config("sign-sald", "tiny").name == "tiny.yaml"
    assert load_config("sign-sald", "tiny")["vae"]["latent_dim"] == 4
    path = tmp_path / "mine.yaml"
    path.write_text("seed: 3\n")
    assert load_config("sign-sald", path) == {"seed": 3}
    with pytest.raises(ValueError, match="does not exist"):
        resolve_config("sign-sald", tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="choose one of"):
        resolve_config("sign-sald", "enormous")


def test_a_config_built_on_a_base(tmp_path):
    tiny = load_config("sign-sald", "tiny")
    variant = tmp_path / "variant.yaml"
    variant.write_text("base: tiny\nseed: 7\nvae:\n  latent_dim: 6\n")
    out = load_config("sign-sald", variant)
    assert "base" not in out and out["seed"] == 7 and out["vae"]["latent_dim"] == 6
    assert {k: v for k, v in out["vae"].items() if k != "latent_dim"} == {
        k: v for k, v in tiny["vae"].items() if k != "latent_dim"
    }
    assert out["denoiser"] == tiny["denoiser"]
    on_variant = tmp_path / "second.yaml"  # a chain of bases, by path
    on_variant.write_text(f"base: {variant}\nseed: 8\n")
    assert load_config("sign-sald", on_variant) == {**out, "seed": 8}
    variant.write_text(f"base: {on_variant}\n")
    with pytest.raises(ValueError, match="its own `base`"):
        load_config("sign-sald", on_variant)
    variant.write_text("base: [tiny]\n")
    with pytest.raises(ValueError, match="`base` in config .* must name another sign-sald config"):
        load_config("sign-sald", variant)


def test_overrides_types_and_errors():
    out = apply_overrides(BASE, {"seed": "4", "vae.hidden_dims": "[32, 64]", "vae.skeleton_aware": "false",
                                 "vae.lambda_kl": 1, "opt": "adam"})
    assert out["seed"] == 4 and out["vae"]["hidden_dims"] == [32, 64] and out["vae"]["skeleton_aware"] is False
    assert out["vae"]["lambda_kl"] == 1.0 and isinstance(out["vae"]["lambda_kl"], float) and out["opt"] == "adam"
    assert BASE["seed"] == 0  # the input is not modified
    with pytest.raises(ValueError, match=r"valid keys in section `vae`: \['act_fn'"):
        apply_overrides(BASE, {"vae.dim": 3})
    with pytest.raises(ValueError, match="must be a bool"):
        apply_overrides(BASE, {"vae.skeleton_aware": "maybe"})
    with pytest.raises(ValueError, match="must be a int"):
        apply_overrides(BASE, {"seed": 1.5})
    with pytest.raises(ValueError, match="not a section"):
        apply_overrides(BASE, {"seed.x": 1})
    assert coerce_value("7", 1.0, "x") == 7.0 and coerce_value(2.0, 1, "x") == 2
    assert parse_overrides(["a.b=1", "c = x=y"]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["novalue"])


def test_deep_update_strict():
    base = {"a": {"b": 1}}
    assert deep_update(base, {"a": {"b": "2"}}) == {"a": {"b": 2}}
    with pytest.raises(ValueError, match="Unknown config key `a.c`"):
        deep_update(base, {"a": {"c": 1}})
