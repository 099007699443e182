"""`MaDiSConfig` / `MaDiSForMaskedDiffusion` on tiny shapes: the vocabulary layout, bidirectional vs causal attention,
the part heads, the MoP and average sign embeddings, the token loss of eq. 3 against a hand computation, learning,
save/load, and `from_causal_lm`."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModel, Qwen3Config, Qwen3ForCausalLM

from hf_sign.models.madis import MaDiSConfig, MaDiSForMaskedDiffusion

SIZES = [5, 7, 7]


def tiny_config(**kwargs) -> MaDiSConfig:
    base = dict(
        text_vocab_size=20,
        part_codebook_sizes=SIZES,
        code_dim=8,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        connector_dropout=0.0,
        max_sign_tokens=12,
        max_text_tokens=8,
    )
    return MaDiSConfig(**{**base, **kwargs})


def tiny_model(seed: int = 0, **kwargs) -> MaDiSForMaskedDiffusion:
    torch.manual_seed(seed)
    model = MaDiSForMaskedDiffusion(tiny_config(**kwargs)).eval()
    model.set_codebooks([torch.randn(n, 8) for n in SIZES])
    return model


def sequence(model, batch: int = 2, text: int = 4, sign: int = 6, seed: int = 0) -> torch.LongTensor:
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    words = torch.randint(4, cfg.text_vocab_size, (batch, text), generator=g)
    words = torch.cat([words, torch.full((batch, 1), cfg.eos_token_id)], 1).unsqueeze(-1).expand(-1, -1, 3)
    codes = torch.stack(
        [torch.randint(r.start, r.stop, (batch, sign), generator=g) for r in cfg.part_token_ranges()], -1
    )
    return torch.cat([words, codes], 1)


def test_vocabulary_layout_and_config_errors():
    cfg = tiny_config()
    assert cfg.vocab_size == 20 + sum(SIZES) and cfg.part_token_offset(1) == 25
    assert [(r.start, r.stop) for r in cfg.part_token_ranges()] == [(20, 25), (25, 32), (32, 39)]
    assert isinstance(AutoConfig.for_model("hf_sign_madis"), MaDiSConfig)
    for kwargs, match in [
        (dict(part_codebook_sizes=[0, 3]), "part_codebook_sizes"),
        (dict(sign_embedding="concat"), "sign_embedding"),
        (dict(mask_token_id=20), "mask_token_id"),
        (dict(eos_token_id=-1), "eos_token_id"),
        (dict(vocab_size=99), "vocab_size"),
        (dict(max_sign_tokens=1), "max_sign_tokens"),
    ]:
        with pytest.raises(ValueError, match=match):
            tiny_config(**kwargs)


def test_future_token_changes_earlier_output_only_when_bidirectional():
    for bidirectional in (True, False):
        model = tiny_model(bidirectional=bidirectional)
        x = sequence(model)
        y = x.clone()
        y[:, -1] = model.config.mask_token_id
        a, b = model(x).text_logits[:, 3], model(y).text_logits[:, 3]
        changed = (a - b).nan_to_num().abs().max() > 1e-4
        assert changed == bidirectional


def test_part_heads_emit_only_their_codes_and_eos():
    model = tiny_model()
    out = model(sequence(model))
    cfg = model.config
    assert out.logits.shape == (2, 11, 3, cfg.vocab_size)
    for p, ids in enumerate(cfg.part_token_ranges()):
        finite = torch.isfinite(out.logits[0, 0, p]).nonzero().flatten().tolist()
        assert finite == sorted([*ids, cfg.eos_token_id])
    assert torch.isinf(out.text_logits[..., cfg.mask_token_id]).all()
    torch.testing.assert_close(out.logits[..., 0, 20:25], out.text_logits[..., 20:25])


def test_mixture_of_parts_gate_and_average_embedding():
    model = tiny_model()
    x = sequence(model)
    out = model(x)
    assert torch.allclose(out.gate_weights[:, 5:].sum(-1), torch.ones(2, 6))
    assert (out.gate_weights[:, :5] == 0).all()  # text and <eos> positions are not sign tokens
    # MoP reads the frozen codebook: another code vector changes the embedding, not the token embedding table
    embeds, _ = model.embed(x)
    with torch.no_grad():
        model.codebook_1.mul_(2.0)
    assert not torch.allclose(model.embed(x)[0][:, 5:], embeds[:, 5:])
    torch.testing.assert_close(model.embed(x)[0][:, :5], embeds[:, :5])
    avg = tiny_model(sign_embedding="average")
    e, gates = avg.embed(x)
    assert gates is None
    torch.testing.assert_close(e, avg.model.embed_tokens(x).mean(-2))


def test_token_loss_matches_hand_computation():
    model = tiny_model()
    cfg = model.config
    x = sequence(model)
    labels = x.clone()
    labels[:, :5, 1:] = -100  # a text position is labelled on part 0 only
    noisy = x.clone()
    masked = torch.tensor([1, 3, 6, 8, 10])
    noisy[:, masked] = cfg.mask_token_id
    t = torch.tensor([0.5, 0.25])
    out = model(noisy, labels=labels, mask_ratio=t)
    expected = torch.zeros(())
    for b in range(2):
        for i in masked.tolist():
            if i < 5 and x[b, i, 0] != cfg.eos_token_id:  # text: the unrestricted layer
                expected -= out.text_logits[b, i].log_softmax(-1)[x[b, i, 0]] / t[b]
            else:
                for p in range(3):
                    expected -= out.logits[b, i, p].log_softmax(-1)[x[b, i, p]] / t[b]
    torch.testing.assert_close(out.loss, expected / (2 * 11))
    with pytest.raises(ValueError, match="labels"):
        model(noisy, labels=labels[:, :3])


@pytest.mark.parametrize("lr", [3e-3, 0.0])
def test_token_loss_falls_when_learning(lr):
    model = tiny_model().train()
    cfg = model.config
    x = sequence(model, batch=4, seed=1)
    noisy = x.clone()
    noisy[:, 5::2] = cfg.mask_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for _ in range(30):
        loss = model(noisy, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert (losses[-1] < 0.5 * losses[0]) == (lr > 0)


def test_input_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match="input_ids"):
        model(torch.zeros(2, 3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="input_ids"):
        model(torch.full((1, 3), 999))
    with pytest.raises(ValueError, match="use_cache"):
        model(torch.zeros(1, 3, dtype=torch.long), use_cache=True)
    with pytest.raises(ValueError, match=r"codebooks\[1\]"):
        model.set_codebooks([torch.zeros(5, 8), torch.zeros(6, 8), torch.zeros(7, 8)])


def test_save_load_round_trip(tmp_path):
    model = tiny_model()
    x = sequence(model)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, MaDiSForMaskedDiffusion)
    torch.testing.assert_close(loaded.codebook_2, model.codebook_2)
    torch.testing.assert_close(loaded(x).logits, model(x).logits)
    assert all(not layer.self_attn.is_causal for layer in loaded.model.layers)


def test_from_causal_lm_copies_the_backbone_and_makes_it_bidirectional(tmp_path):
    torch.manual_seed(0)
    qwen = Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=30,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            tie_word_embeddings=True,
            eos_token_id=3,
            pad_token_id=0,
        )
    ).eval()
    qwen.save_pretrained(tmp_path, safe_serialization=True)
    model = MaDiSForMaskedDiffusion.from_causal_lm(tmp_path, part_codebook_sizes=SIZES, code_dim=8).eval()
    cfg = model.config
    assert cfg.text_vocab_size == 31 and cfg.mask_token_id == 30 and cfg.vocab_size == 31 + sum(SIZES)
    torch.testing.assert_close(model.model.embed_tokens.weight[:30], qwen.model.embed_tokens.weight)
    torch.testing.assert_close(model.model.layers[1].mlp.up_proj.weight, qwen.model.layers[1].mlp.up_proj.weight)
    ids = torch.tensor([[5, 6, 7, 8]])
    # with the causal mask put back, the converted backbone computes what the causal LM computes
    for layer in model.model.layers:
        layer.self_attn.is_causal = True
    causal = model.model(input_ids=ids).last_hidden_state
    torch.testing.assert_close(causal, qwen.model(input_ids=ids).last_hidden_state)
    for layer in model.model.layers:
        layer.self_attn.is_causal = False
    a = model(ids).text_logits[0, 0]
    b = model(torch.tensor([[5, 6, 7, 9]])).text_logits[0, 0]
    assert (a - b).nan_to_num().abs().max() > 1e-4  # bidirectional


def test_logits_to_keep_gives_the_last_positions_logits():
    model = tiny_model()
    x = sequence(model)
    full, last = model(x).logits, model(x, logits_to_keep=6).logits
    assert last.shape[1] == 6
    torch.testing.assert_close(last, full[:, -6:])
    with pytest.raises(ValueError, match="logits_to_keep"):
        model(x, labels=x, logits_to_keep=6)
