"""Sign-MExD's configs and length model: sections read off the signatures, YAMLs that list only what differs, Table
I's shapes in the paper configs, the CPU pair's equal active parameters, bad overrides, and the per-gloss durations
by hand."""

from __future__ import annotations

import inspect

import pytest

from hf_sign.models.sign_mexd import TABLE_I_GLOSS_ENCODER, SignMExDTransformer, table_i_shapes
from hf_sign.training.config_utils import CONFIGS_DIR, load_config
from hf_sign.training.sign_mexd_data import estimate_gloss_durations
from hf_sign.training.sign_mexd_trainer import CONFIG_SCHEMA, full_config, sign_mexd_param_counts

NAMES = sorted(p.stem for p in (CONFIGS_DIR / "sign-mexd").glob("*.yaml"))


def test_sections_follow_the_signatures_and_the_paper():
    cfg = CONFIG_SCHEMA.defaults()
    args = set(inspect.signature(SignMExDTransformer.__init__).parameters) - {"self"}
    assert set(cfg["transformer"]) == args - {"pose_dim", "cross_attention_dim"}  # the dataset's, the encoder's
    assert cfg["transformer"]["routing"] == "expert_choice" and cfg["transformer"]["capacity_factor"] == 2.0
    training = cfg["training"]
    assert (training["joint_loss_weight"], training["bone_loss_weight"], training["sample_loss_weight"]) == (1, 0.1, 0)
    assert training["pose_noise_rate"] == 0.05 and training["learning_rate"] == 1e-3  # Sec. III-C
    assert cfg["scheduler"]["clip_sample"] is False and cfg["scheduler"]["num_train_timesteps"] == 1000


def _keys(name):
    raw = load_config("sign-mexd", name)
    return [f"{s}.{k}" if isinstance(v, dict) else s
            for s, v in raw.items() for k in (v if isinstance(v, dict) else [s])]


def _get(cfg, dotted):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


@pytest.mark.parametrize("name", NAMES)
def test_configs_list_only_what_differs_from_the_defaults(name):
    defaults, resolved = CONFIG_SCHEMA.defaults(), full_config(name)
    keys = _keys(name)
    assert keys, name
    assert not [k for k in keys if _get(resolved, k) == _get(defaults, k)], f"{name}.yaml restates defaults"


@pytest.mark.parametrize("size", ["xl", "xxl", "3xl"])
@pytest.mark.parametrize("experts", [0, 4, 8, 16])
def test_paper_configs_are_table_i(size, experts):
    cfg = full_config(f"paper-{size}", {"transformer.num_experts": experts})
    row = table_i_shapes()[f"{size}-{experts}e" if experts else f"{size}-dense"]
    ours = dict(cfg["transformer"], cross_attention_dim=cfg["gloss_encoder"]["hidden_size"])
    assert {k: v for k, v in ours.items() if k in row} == {k: v for k, v in row.items() if k != "pose_dim"}
    encoder = cfg["gloss_encoder"]
    assert {k: encoder[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                                    "max_position_embeddings")} == {
        k: TABLE_I_GLOSS_ENCODER[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                              "intermediate_size", "max_position_embeddings")}
    assert cfg["training"]["sample_loss_weight"] == 0.0  # the paper's eq. 11 alone


def test_small_pair_has_equal_active_parameters():
    dense, moe = sign_mexd_param_counts("small-dense"), sign_mexd_param_counts("small-moe")
    assert dense["transformer_total"] == dense["transformer_active_per_token"]
    gap = abs(moe["transformer_active_per_token"] - dense["transformer_active_per_token"])
    assert gap / dense["transformer_active_per_token"] < 0.002  # the router and one output bias
    assert moe["transformer_total"] > 1.4 * dense["transformer_total"]  # 8 experts of half the width
    assert full_config("small") == full_config("small-moe") and full_config("small-moe")["transformer"]["num_experts"]
    tiny = sign_mexd_param_counts("tiny")
    assert tiny["transformer_total"] < dense["transformer_total"] < sign_mexd_param_counts("paper-xl")["total"]


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"transformer.num_expert": 4}, r"Unknown .* key `transformer.num_expert`.*num_experts"),
        ({"transformer.pose_dim": 150}, "Unknown"),  # follows the dataset
        ({"training.pose_noise_rate": -0.1}, "pose_noise_rate"),
        ({"training.joint_loss_weight": 0, "training.bone_loss_weight": 0, "training.sample_loss_weight": 0},
         "every loss term weight 0"),
        ({"data.max_frames": 600}, r"`data.max_frames` \(600\) exceeds `transformer.max_frames` \(512\)"),
        ({"gloss_encoder.num_attention_heads": 3}, "divisible"),
        ({"gloss_encoder.max_position_embeddings": 2}, "max_position_embeddings"),
    ],
)
def test_bad_overrides(overrides, match):
    with pytest.raises(ValueError, match=match):
        full_config("tiny", overrides)
    with pytest.raises(ValueError, match="Unknown sign-mexd config 'huge'"):
        full_config("huge")


def test_gloss_durations_by_hand():
    rows = [
        {"gloss": ["A", "B"], "gloss_spans": [[2, 6], [8, 11]], "num_frames": 14},  # outside the spans: 7, 1 gap
        {"gloss": ["A", "C", "B"], "gloss_spans": [[1, 5], [6, 12], [14, 16]], "num_frames": 20},  # 8, 2 gaps
        {"gloss": ["C"], "gloss_spans": [[3, 7]], "num_frames": 10},  # 6, no gap
        {"gloss": [], "gloss_spans": [], "num_frames": 50},  # no gloss: not counted
    ]
    d = estimate_gloss_durations(rows)
    assert d.gloss_durations == {"A": 4.0, "B": 2.5, "C": 5.0}
    assert d.length_offset == pytest.approx(6.0) and d.transition_frames == pytest.approx(1.0)  # 6 + 1 per gap
    assert d.default_gloss_duration == pytest.approx(23 / 6, abs=1e-3)
    # one row without alignment: every gloss gets its share of its sentence, and nothing outside the glosses
    shares = estimate_gloss_durations([*rows[:2], {**rows[2], "gloss_spans": []}])
    assert shares.gloss_durations == {"A": pytest.approx(6.833, abs=1e-3), "B": pytest.approx(6.833, abs=1e-3),
                                      "C": pytest.approx(8.333, abs=1e-3)}
    assert shares.length_offset == 0.0 and shares.transition_frames == 0.0
    # more glosses, fewer frames outside them: no negative pause, all of it in the offset
    shrinking = [{**rows[0], "num_frames": 9}, rows[1], {**rows[2], "num_frames": 14}]
    fitted = estimate_gloss_durations(shrinking)
    assert fitted.transition_frames == 0.0 and fitted.length_offset == pytest.approx((2 + 8 + 10) / 3, abs=1e-3)
    with pytest.raises(ValueError, match="No row has a `gloss`"):
        estimate_gloss_durations(rows[3:])
