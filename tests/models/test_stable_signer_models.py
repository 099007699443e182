"""Stable Signer's linker (a T5 with its own config and tokenizer) and the SLP-MoE gate."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

from hf_sign.models.stable_signer import PoseExpertGate, SignLinkerForConditionalGeneration
from hf_sign.models.stable_signer.linker import build_linker_tokenizer
from hf_sign.training.stable_signer_linker import LinkerSettings, build_linker

ROWS = [
    {
        "text": "where was the brother yesterday?",
        "prompt": 'How do you sign "where was the brother yesterday?"?',
        "gloss": ["YESTERDAY", "BROTHER", "WHERE"],
    },
    {"text": "my bags are heavy next year", "gloss": ["NEXT-YEAR", "MY", "BAG+", "HEAVY"]},
]


def tiny():
    torch.manual_seed(0)
    settings = LinkerSettings(
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        dropout_rate=0.0,
        max_gloss_length=5,
    )
    return build_linker(settings, ROWS, ["synth", "asl"])


def test_tokenizer_keeps_glosses_whole_and_shares_words():
    tok, ids = build_linker_tokenizer([r["text"] for r in ROWS], [r["gloss"] for r in ROWS], ["synth"])
    assert tok.convert_ids_to_tokens(tok("yesterday?")["input_ids"]) == ["yesterday", "?", "</s>"]
    assert tok.convert_ids_to_tokens([ids["BAG+"], ids["NEXT-YEAR"]]) == ["bag+", "next-year"]
    assert ids["YESTERDAY"] == tok("yesterday", add_special_tokens=False)["input_ids"][0]  # one shared id
    assert tok("<synth> hi")["input_ids"][0] == tok.convert_tokens_to_ids("<synth>")
    again, _ = build_linker_tokenizer([r["text"] for r in ROWS], [r["gloss"] for r in ROWS], ["synth"])
    assert again.get_vocab() == tok.get_vocab()
    with pytest.raises(ValueError, match="differ only in case"):
        build_linker_tokenizer(["a"], [["Bag", "BAG"]], ["synth"])


def test_glosses_round_trip_and_language_tags(tmp_path):
    linker, tok = tiny()
    ids, owner = linker.encode_glosses(tok, ["NEXT-YEAR", "BAG+"])
    assert owner == [0, 1, -1] and ids[-1] == tok.eos_token_id
    seq = torch.tensor([[0] + ids + [0, 0]])
    assert linker.decode_glosses(tok, seq) == [["NEXT-YEAR", "BAG+"]]
    with pytest.raises(ValueError, match="not in the linker's gloss vocabulary"):
        linker.encode_glosses(tok, ["ZEPPELIN"])
    assert linker.format_input("hi", "asl") == "<asl> hi"
    with pytest.raises(ValueError, match="language"):
        linker.format_input("hi", "dgs")
    linker.save_pretrained(tmp_path / "linker")
    tok.save_pretrained(tmp_path / "tok")
    config = AutoConfig.from_pretrained(tmp_path / "linker")
    assert config.model_type == "hf_sign_slul" and config.gloss_vocabulary == linker.config.gloss_vocabulary
    for auto in (AutoModel, AutoModelForSeq2SeqLM):
        loaded = auto.from_pretrained(tmp_path / "linker")
        assert isinstance(loaded, SignLinkerForConditionalGeneration)
    loaded_tok = AutoTokenizer.from_pretrained(tmp_path / "tok")
    enc = loaded_tok([linker.format_input(ROWS[0]["text"])], return_tensors="pt")
    a = linker.generate(**enc, max_new_tokens=4)
    b = loaded.generate(**enc, max_new_tokens=4)
    assert torch.equal(a, b)
    # generation is restricted to glosses and eos
    allowed = set(linker.config.gloss_token_ids) | {tok.eos_token_id, tok.pad_token_id}
    assert set(a.flatten().tolist()) <= allowed


def test_gloss_queries_see_their_gloss():
    linker, tok = tiny()
    enc = tok([linker.format_input(ROWS[0]["text"])] * 2, return_tensors="pt")
    q1, q2 = linker.gloss_queries(
        tok, enc["input_ids"], enc["attention_mask"], [["YESTERDAY", "BROTHER"], ["YESTERDAY", "WHERE"]]
    )
    assert q1.shape == (2, 2 * 16)
    torch.testing.assert_close(q1[0], q2[0])  # same prefix, same query
    assert not torch.allclose(q1[1], q2[1])  # another gloss, another query
    torch.testing.assert_close(q1[:, :16], q2[:, :16])  # Pool(H) is the sentence's


def test_gate_weights_and_mask(tmp_path):
    torch.manual_seed(0)
    gate = PoseExpertGate(query_dim=6, num_experts=3, hidden_dim=4)
    q = torch.randn(5, 6)
    w = gate(q).weights
    torch.testing.assert_close(w.sum(-1), torch.ones(5))
    mask = torch.tensor([[True, False, True]] * 5)
    wm = gate(q, expert_mask=mask).weights
    assert torch.all(wm[:, 1] == 0) and torch.allclose(wm.sum(-1), torch.ones(5))
    with pytest.raises(ValueError, match="without any expert"):
        gate(q, expert_mask=torch.zeros(5, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="query"):
        gate(torch.randn(5, 7))
    gate.save_pretrained(tmp_path)
    torch.testing.assert_close(PoseExpertGate.from_pretrained(tmp_path)(q).weights, w)
    with pytest.raises(ValueError, match="num_experts"):
        PoseExpertGate(query_dim=6, num_experts=0)
