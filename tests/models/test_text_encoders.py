"""Text encoders built offline: corpus word tokenizer + random CLIP (frozen or trainable), pretrained MiniLM."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPTextModel, PreTrainedTokenizerFast

from hf_sign.models.text_encoders import (
    TextEncoderSettings,
    build_text_encoder,
    build_word_tokenizer,
    check_prompts,
    count_text_encoder_parameters,
    encode_prompts,
)

TEXTS = ["Where was the brother yesterday?", "the brother is tall.", "I do not wash three computers today"]
TINY = dict(
    hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=12
)


def test_word_tokenizer_round_trip(tmp_path):
    tok = build_word_tokenizer(TEXTS, max_length=12)
    assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<pad>", "<unk>", "<bos>", "<eos>"]
    ids = tok("WHERE was the sister?")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert tok.convert_ids_to_tokens(ids)[1:-1] == ["where", "was", "the", "<unk>", "?"]
    assert build_word_tokenizer(TEXTS).get_vocab() == tok.get_vocab()  # deterministic
    tok.save_pretrained(tmp_path)
    loaded = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    assert loaded("the brother")["input_ids"] == tok("the brother")["input_ids"]
    with pytest.raises(ValueError, match="empty"):
        build_word_tokenizer([])


def test_clip_frozen_and_trainable():
    torch.manual_seed(0)
    model, tok = build_text_encoder(TextEncoderSettings(**TINY), texts=TEXTS)
    assert isinstance(model, CLIPTextModel) and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    states, mask = encode_prompts(model, tok, ["the brother is tall.", "hello"])
    assert states.shape == (2, 7, 16) and mask.tolist()[1] == [True, True, True] + [False] * 4
    counted = count_text_encoder_parameters(TextEncoderSettings(**TINY), vocab_size=len(tok))
    assert counted == sum(p.numel() for p in model.parameters())
    trainable, _ = build_text_encoder({**TINY, "trainable": True}, texts=TEXTS)
    assert all(p.requires_grad for p in trainable.parameters())
    with pytest.raises(ValueError, match="texts"):
        build_text_encoder(TextEncoderSettings(**TINY))


def test_check_prompts_errors():
    tok = build_word_tokenizer(TEXTS, max_length=6)
    assert check_prompts("the brother", tok) == ["the brother"]
    with pytest.raises(ValueError, match="empty"):
        check_prompts(" ", tok)
    with pytest.raises(ValueError, match=r"prompt\[0\]` is 9 tokens long .* at most 6"):
        check_prompts("the brother is the brother is tall", tok)
    with pytest.raises(ValueError, match="must be a string"):
        check_prompts(["ok", None], tok)
    with pytest.raises(ValueError, match="text_encoder.type"):
        TextEncoderSettings(type="t5")
    with pytest.raises(ValueError, match="frozen"):
        TextEncoderSettings(type="minilm", trainable=True)


def test_minilm_pretrained(tmp_path):
    model, tok = build_text_encoder({"type": "minilm", "cache_dir": str(tmp_path)})
    assert (tmp_path / "all-MiniLM-L6-v2" / "model.safetensors").is_file()
    assert model.config.hidden_size == 384 and not any(p.requires_grad for p in model.parameters())
    states, mask = encode_prompts(model, tok, ["the brother is tall.", "the sister is tall."])
    assert states.shape[0] == 2 and states.shape[-1] == 384 and mask.all()
    # pretrained: related sentences are close, unrelated ones less so
    a, b = states[:, 0]
    c = encode_prompts(model, tok, ["I do not wash three computers today"])[0][0, 0]
    cos = torch.nn.functional.cosine_similarity
    assert cos(a, b, dim=0) > cos(a, c, dim=0)
    assert count_text_encoder_parameters({"type": "minilm"}) == sum(p.numel() for p in model.parameters())
