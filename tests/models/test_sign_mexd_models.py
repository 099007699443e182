"""Sign-MExD models: `SignMExDTransformer`, the gloss tokenizer and encoder, Table I parameter counts."""

from __future__ import annotations

import pytest
import torch
from model_tester_mixin import ModelTesterMixin
from transformers import CLIPTextModel, PreTrainedTokenizerFast

from hf_sign.models.sign_mexd import (
    GLOSS_SPECIAL_TOKENS,
    TABLE_I,
    SignMExDTransformer,
    SignMExDTransformerOutput,
    build_gloss_encoder,
    build_gloss_tokenizer,
    count_parameters,
    table_i_parameter_counts,
    table_i_shapes,
    unknown_glosses,
)

POSE, CROSS = 133, 16
TINY = dict(
    pose_dim=POSE, hidden_dim=32, num_layers=2, num_heads=2, ffn_dim=48, cross_attention_dim=CROSS, num_experts=4,
    max_frames=64,
)  # fmt: skip


def poses(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, frames, POSE, generator=torch.Generator().manual_seed(seed))


def glosses(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, length, CROSS, generator=torch.Generator().manual_seed(seed + 100))


# =============================================================================================== transformer
class TestSignMExDTransformer(ModelTesterMixin):
    model_class = SignMExDTransformer

    def get_init_kwargs(self):
        return dict(TINY)

    def get_inputs(self, seed=0):
        gloss_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
        return {
            "sample": poses(2, 12, seed),
            "timestep": torch.tensor([10, 700]),
            "encoder_hidden_states": glosses(2, 4, seed),
            "encoder_attention_mask": gloss_mask,
        }

    def get_batch_and_singles(self):
        # padded frames (and padded glosses) hold large junk: the routing and attention must ignore them
        x, g = poses(2, 12, seed=1), glosses(2, 4, seed=1)
        frames = torch.ones(2, 12, dtype=torch.bool)
        frames[0, 8:] = False
        x[0, 8:] = 50.0
        tokens = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
        g[1, 3] = 50.0
        t = torch.tensor([5, 400])
        batch = dict(
            sample=x, timestep=t, encoder_hidden_states=g, encoder_attention_mask=tokens, attention_mask=frames
        )
        singles = [
            dict(sample=x[:1, :8], timestep=t[:1], encoder_hidden_states=g[:1]),
            dict(sample=x[1:], timestep=t[1:], encoder_hidden_states=g[1:, :3]),
        ]
        return batch, singles, [8, 12]


class TestSignMExDTransformerDense(TestSignMExDTransformer):
    def get_init_kwargs(self):
        return {**TINY, "num_experts": 0}


class TestSignMExDTransformerTokenChoice(TestSignMExDTransformer):
    def get_init_kwargs(self):
        return {**TINY, "routing": "token_choice", "top_k": 2, "moe_layers": [1]}


def test_output_shape_and_routing_statistics():
    model = SignMExDTransformer(**TINY).eval()
    frames = torch.ones(2, 12, dtype=torch.bool)
    frames[1, 6:] = False
    with torch.no_grad():
        out = model(poses(2, 12), 3, glosses(2, 4), attention_mask=frames, return_routing=True)
        plain = model(poses(2, 12), 3, glosses(2, 4), attention_mask=frames)
        as_tuple = model(poses(2, 12), 3, glosses(2, 4), attention_mask=frames, return_routing=True, return_dict=False)
    assert isinstance(out, SignMExDTransformerOutput) and out.sample.shape == (2, 12, POSE)
    assert plain.routing is None and len(as_tuple) == 2 and len(as_tuple[1]) == 2
    assert len(out.routing) == 2  # every block is MoE when moe_layers is None
    for info in out.routing:
        assert info.router_probs.shape == (2, 12, 4) and info.dispatch.shape == (2, 12, 4)
        # C = floor(12 * 2 / 4) = 6 and floor(6 * 2 / 4) = 3 frames per expert
        assert info.tokens_per_expert.tolist() == [[6] * 4, [3] * 4]
        assert torch.equal(info.dispatch.sum(1), info.tokens_per_expert)
        assert not info.dispatch[1, 6:].any()


def test_moe_layers_selects_the_blocks():
    model = SignMExDTransformer(**{**TINY, "num_layers": 3, "moe_layers": [2], "moe_ffn_dim": 64}).eval()
    assert [block.is_moe for block in model.blocks] == [False, False, True]
    assert model.blocks[2].ffn.w1.shape == (4, 32, 64) and model.blocks[0].ffn.net[0].proj.out_features == 48
    with torch.no_grad():
        out = model(poses(1, 8), 1, glosses(1, 3), return_routing=True)
    assert len(out.routing) == 1
    dense = SignMExDTransformer(**{**TINY, "num_experts": 0, "num_layers": 3, "moe_layers": [2], "moe_ffn_dim": 64})
    assert not any(block.is_moe for block in dense.blocks)
    assert dense.blocks[2].ffn.net[0].proj.out_features == 64
    with torch.no_grad():
        assert dense(poses(1, 8), 1, glosses(1, 3), return_routing=True).routing == []


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(moe_layers=[0, 2]), "moe_layers"),
        (dict(moe_layers=[1, 1]), "moe_layers"),
        (dict(num_heads=5), "num_heads"),
        (dict(routing="switch"), "routing"),
        (dict(capacity_factor=0.0), "capacity_factor"),
        (dict(num_experts=-1), "num_experts"),
        (dict(routing="token_choice", top_k=5), "top_k"),
    ],
)
def test_bad_config_is_refused(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SignMExDTransformer(**{**TINY, **kwargs})


def test_bad_input_is_refused():
    model = SignMExDTransformer(**TINY).eval()
    with pytest.raises(ValueError, match="pose_dim"):
        model(torch.randn(1, 8, 10), 1, glosses(1, 3))
    with pytest.raises(ValueError, match="max_frames"):
        model(poses(1, 65), 1, glosses(1, 3))
    with pytest.raises(ValueError, match="cross_attention_dim"):
        model(poses(1, 8), 1, torch.randn(1, 3, 7))
    with pytest.raises(ValueError, match="attention_mask"):
        model(poses(1, 8), 1, glosses(1, 3), attention_mask=torch.zeros(1, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="timestep"):
        model(poses(2, 8), torch.tensor([1, 2, 3]), glosses(2, 3))
    with pytest.raises(ValueError, match="num_experts"):  # 1 frame, 4 experts: C = floor(2 / 4) = 0
        model(poses(1, 1), 1, glosses(1, 3))


# =============================================================================================== parameters
def test_count_parameters_of_a_tiny_model():
    model = SignMExDTransformer(**TINY)
    counts = count_parameters(model)
    assert counts["total"] == sum(p.numel() for p in model.parameters()) == count_parameters(TINY)["total"]
    per_expert = 2 * 32 * 48 + 48 + 32
    # 2 MoE layers of 4 experts, f_c = 2 experts per frame: 2 of the 4 experts' parameters are idle per frame
    assert counts["active_per_token"] == counts["total"] - 2 * (4 - 2) * per_expert
    assert count_parameters(model, experts_per_token=1)["active_per_token"] == counts["total"] - 2 * 3 * per_expert
    dense = count_parameters({**TINY, "num_experts": 0})
    assert dense["total"] == dense["active_per_token"]
    # one expert per frame: the dense model plus the routers
    assert count_parameters(model, experts_per_token=1)["active_per_token"] == dense["total"] + 2 * 4 * 32
    assert count_parameters(model, gloss_encoder=1000)["total"] == counts["total"] + 1000
    token_choice = count_parameters({**TINY, "routing": "token_choice", "top_k": 1})
    assert token_choice["active_per_token"] == counts["total"] - 2 * 3 * per_expert


def test_table_i_totals_match_the_paper():
    shapes = table_i_shapes()
    assert set(shapes) == set(TABLE_I) and len(shapes) == 12
    assert {k: v["num_layers"] for k, v in shapes.items() if k.endswith("dense")} == {
        "xl-dense": 2,
        "xxl-dense": 4,
        "3xl-dense": 8,
    }
    rows = table_i_parameter_counts()
    for name, row in rows.items():
        assert abs(row["total"] / row["paper_total"] - 1) < 5e-4, f"{name}: {row['total']} vs {row['paper_total']}"
    # the paper's single MoE layer: expert parameters grow the same at every depth
    for size in ("xl", "xxl", "3xl"):
        assert rows[f"{size}-8e"]["total"] - rows[f"{size}-4e"]["total"] == 4 * (2 * 512 * 4096 + 4096 + 512 + 512)
    # expert choice with f_c = 2: dense + one expert + the router per frame
    xl = rows["xl-4e"]["active_per_token"] - rows["xl-dense"]["total"]
    assert xl == 2 * 512 * 4096 + 4096 + 512 + 4 * 512


# =============================================================================================== gloss encoder
CORPUS = ["WEATHER TOMORROW RAIN", "rain sun", "NEXT-YEAR BAG+ RAIN"]


def test_gloss_tokenizer_vocabulary_and_unknown_glosses():
    tok = build_gloss_tokenizer(CORPUS)
    assert isinstance(tok, PreTrainedTokenizerFast)
    vocab = tok.get_vocab()
    assert [vocab[t] for t in ("[PAD]", "[UNK]", "[BOS]", "[EOS]")] == [0, 1, 2, 3]
    assert vocab["RAIN"] == 4  # most frequent first
    assert set(vocab) == set(GLOSS_SPECIAL_TOKENS) | {"WEATHER", "TOMORROW", "RAIN", "SUN", "NEXT-YEAR", "BAG+"}
    ids = tok("weather Snow RAIN bag+").input_ids
    assert ids == [2, vocab["WEATHER"], tok.unk_token_id, vocab["RAIN"], vocab["BAG+"], 3]
    assert tok.unk_token_id == 1
    assert unknown_glosses(tok, "weather Snow RAIN [PAD]") == ["SNOW", "[PAD]"]
    assert unknown_glosses(tok, ["rain", "sun next-year"]) == []


def test_gloss_tokenizer_save_load_round_trip(tmp_path):
    tok = build_gloss_tokenizer(CORPUS, model_max_length=16)
    tok.save_pretrained(tmp_path)
    loaded = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    assert loaded.get_vocab() == tok.get_vocab() and loaded.model_max_length == 16
    for text in ("WEATHER tomorrow snow", "next-year BAG+"):
        assert loaded(text).input_ids == tok(text).input_ids
    specials = (loaded.pad_token, loaded.unk_token, loaded.bos_token, loaded.eos_token)
    assert specials == GLOSS_SPECIAL_TOKENS


def test_gloss_tokenizer_bad_input():
    with pytest.raises(ValueError, match="no gloss"):
        build_gloss_tokenizer([])
    with pytest.raises(ValueError, match="no gloss"):
        build_gloss_tokenizer(["", "  "])
    with pytest.raises(ValueError, match=r"glosses\[1\]"):
        build_gloss_tokenizer(["RAIN", ["SUN"]])
    with pytest.raises(ValueError, match="model_max_length"):
        build_gloss_tokenizer(CORPUS, model_max_length=2)


def test_gloss_encoder_config_and_padding():
    tok = build_gloss_tokenizer(CORPUS, model_max_length=16)
    torch.manual_seed(0)
    encoder = build_gloss_encoder(tok, 16, 2, 2, 32, 16).eval()
    assert isinstance(encoder, CLIPTextModel)
    cfg = encoder.config
    assert (cfg.vocab_size, cfg.pad_token_id, cfg.bos_token_id, cfg.eos_token_id) == (len(tok), 0, 2, 3)
    batch = tok(["WEATHER TOMORROW RAIN", "SUN"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = encoder(**batch)
        alone = encoder(**tok(["SUN"], return_tensors="pt"))
    # causal mask + right padding: padding never changes a real token's state; pooled = the [EOS] state
    torch.testing.assert_close(out.last_hidden_state[1, :3], alone.last_hidden_state[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.pooler_output[1], out.last_hidden_state[1, 2])
    with pytest.raises(ValueError, match="max_position_embeddings"):
        build_gloss_encoder(tok, 16, 1, 2, 32, 8)
    with pytest.raises(ValueError, match="num_attention_heads"):
        build_gloss_encoder(tok, 16, 1, 3, 32, 16)
