"""`hf-sign convert madis-checkpoint`: a release written here with the authors' key names and tiny shapes (a Qwen3
folder with a tokenizer and `map_ids.pkl`, a tokenizer `.ckpt` and a Lightning LM `.ckpt` with non-tensor
hyper-parameters) is converted, and the result is checked against the sources: tensors, the VQ-VAEs against a
functional forward of the release's layout, the part-head logits against the release's formula, the tokenizer ids
against `map_ids.pkl`; then the folder loads both ways, bad checkpoints fail clearly, and the CLI runs."""

from __future__ import annotations

import pickle
import random
import sys
import types

import diffusers
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3Model

from hf_sign.cli import main
from hf_sign.convert import convert_madis_checkpoint
from hf_sign.pipelines.pipeline_madis import MaDiSPipeline

TEXTS = ["the weather tomorrow will be rainy", "do you like coffee", "my sister is tall", "where is the store"] * 3
SIZES = (6, 8, 8)  # codes per part: upper body + face, left hand, right hand
NFEATS = (43, 45, 45)
WIDTH, CODE_DIM, DEPTH, DOWN = 16, 8, 2, 2
HIDDEN, INTER = 32, 64
EXTRA = 3  # ids after each part's codes in the release's vocabulary
LM = "lm.language_model."
WV_MODULE = "mGPT.data.humanml.utils.word_vectorizer"


class WordVectorizer:
    """A non-tensor object in the hyper-parameters, pickled under the release's module name."""

    def __init__(self):
        self.word2vec = {"sign": np.ones(4, np.float32)}


WordVectorizer.__module__ = WV_MODULE


class Payload:
    """A global outside the converter's allowlist."""


Payload.__module__ = "evil_module"


def _register(name: str, obj=None) -> None:
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    if obj is not None:
        setattr(sys.modules[name], obj.__name__, obj)


_register(WV_MODULE, WordVectorizer)
_register("evil_module", Payload)


# ------------------------------------------------------------------------------------------------ the release
def their_vq(nfeats: int, codes: int, g: torch.Generator) -> dict:
    """One part VQ-VAE in the release's key layout (T2M-GPT encoder/decoder, EMA quantiser buffer)."""

    def t(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    sd = {"encoder.model.0.weight": t(WIDTH, nfeats, 3), "encoder.model.0.bias": t(WIDTH)}
    for i in range(2, 2 + DOWN):
        sd[f"encoder.model.{i}.0.weight"], sd[f"encoder.model.{i}.0.bias"] = t(WIDTH, WIDTH, 4), t(WIDTH)
        sd[f"decoder.model.{i}.2.weight"], sd[f"decoder.model.{i}.2.bias"] = t(WIDTH, WIDTH, 3), t(WIDTH)
        for side, stack in (("encoder", 1), ("decoder", 0)):
            for j in range(DEPTH):
                p = f"{side}.model.{i}.{stack}.model.{j}."
                sd[p + "conv1.weight"], sd[p + "conv1.bias"] = t(WIDTH, WIDTH, 3), t(WIDTH)
                sd[p + "conv2.weight"], sd[p + "conv2.bias"] = t(WIDTH, WIDTH, 1), t(WIDTH)
    sd[f"encoder.model.{2 + DOWN}.weight"], sd[f"encoder.model.{2 + DOWN}.bias"] = t(CODE_DIM, WIDTH, 3), t(CODE_DIM)
    sd["decoder.model.0.weight"], sd["decoder.model.0.bias"] = t(WIDTH, CODE_DIM, 3), t(WIDTH)
    sd[f"decoder.model.{2 + DOWN}.weight"], sd[f"decoder.model.{2 + DOWN}.bias"] = t(WIDTH, WIDTH, 3), t(WIDTH)
    sd[f"decoder.model.{4 + DOWN}.weight"], sd[f"decoder.model.{4 + DOWN}.bias"] = t(nfeats, WIDTH, 3), t(nfeats)
    sd["quantizer.codebook"] = torch.randn(codes, CODE_DIM, generator=g)
    return sd


def backbone_config(vocab_size: int) -> Qwen3Config:
    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=INTER,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=512,
        eos_token_id=0,
        pad_token_id=0,
    )


def write_qwen_folder(path, leaf_out: bool = False):
    """Tokenizer (byte-level BPE, eos = pad = <|endoftext|>), config.json and a shuffled map_ids.pkl.

    `leaf_out` leaves one merged token that no other merge uses out of the map."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|im_start|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TEXTS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(path)
    kept = [i for i in range(len(fast)) if i != fast.convert_tokens_to_ids("<|im_start|>")]
    leaf = None
    if leaf_out:
        vocab = tok.get_vocab()
        merges = [m for m in __import__("json").loads(tok.to_str())["model"]["merges"]]
        parts = {x for m in merges for x in m}
        leaf = next(a + b for a, b in reversed(merges) if a + b not in parts)
        kept.remove(vocab[leaf])
    emb = list(range(len(kept)))
    random.Random(0).shuffle(emb)
    id_map = dict(zip(kept, emb))
    (path / "map_ids.pkl").write_bytes(pickle.dumps(id_map))
    backbone_config(len(id_map)).save_pretrained(path)
    return fast, id_map, leaf


def their_lm_state(num_text: int, vq: list, g: torch.Generator, mop: bool = True) -> dict:
    rows = num_text + 1 + sum(n + EXTRA for n in SIZES)
    torch.manual_seed(int(torch.randint(0, 10**6, (1,), generator=g)))
    main_lm = Qwen3Model(backbone_config(rows))
    sd = {f"{LM}main_lm.{k}": v.clone() for k, v in main_lm.state_dict().items()}
    sd[f"{LM}main_lm.embed_tokens.weight"] = torch.randn(rows, HIDDEN, generator=g)
    sd[f"{LM}main_lm.rotary_emb.inv_freq"] = main_lm.rotary_emb.inv_freq.clone()
    names = ("body", "lhand", "rhand")
    if mop:
        for p, name in enumerate(names):
            sd[f"{LM}{name}_codebook"] = vq[p]["quantizer.codebook"].clone()
            sd[f"{LM}{name}_emb_mapper.weight"] = torch.randn(HIDDEN, CODE_DIM, generator=g) * 0.3
        sd[f"{LM}gate_net.linear1.weight"] = torch.randn(HIDDEN, 3 * CODE_DIM, generator=g) * 0.3
        sd[f"{LM}gate_net.linear1.bias"] = torch.randn(HIDDEN, generator=g) * 0.1
        sd[f"{LM}gate_net.linear2.weight"] = torch.randn(3, HIDDEN, generator=g) * 0.3
        sd[f"{LM}gate_net.linear2.bias"] = torch.randn(3, generator=g) * 0.1
    for name in names:
        sd[f"mlp_{name}.linear1.weight"] = torch.randn(INTER, HIDDEN, generator=g) * 0.2
        sd[f"mlp_{name}.linear1.bias"] = torch.randn(INTER, generator=g) * 0.1
        sd[f"mlp_{name}.linear2.weight"] = torch.randn(CODE_DIM, INTER, generator=g) * 0.2
        sd[f"mlp_{name}.linear2.bias"] = torch.randn(CODE_DIM, generator=g) * 0.1
    return sd


def lightning(state: dict, **extra) -> dict:
    """A Lightning checkpoint around `state`, with optimizer state and non-tensor hyper-parameters."""
    losses = {f"_losses.losses_train.{k}": torch.tensor(0.5) for k in ("gpt_loss", "total", "count")}
    return {
        "epoch": 3,
        "global_step": 40,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": {**state, **losses},
        "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(2)}}, "param_groups": [{"lr": 2e-4}]}],
        "hyper_parameters": {"stage": "lm_instruct", "w_vectorizer": WordVectorizer(), "metrics_dict": ["Gen"]},
        **extra,
    }


def write_release(root, mop: bool = True, leaf_out: bool = False, seed: int = 0) -> dict:
    """The release layout under `root`; returns its sources for the checks."""
    g = torch.Generator().manual_seed(seed)
    qwen = root / "deps" / "Qwen3-0.6B-Base-en-zh-de"
    qwen.mkdir(parents=True)
    source_tok, id_map, leaf = write_qwen_folder(qwen, leaf_out=leaf_out)
    vq = [their_vq(n, k, g) for n, k in zip(NFEATS, SIZES)]
    vq_state = {f"{prefix}.{k}": v for prefix, sd in zip(("vae", "hand_vae", "rhand_vae"), vq) for k, v in sd.items()}
    lm_state = their_lm_state(len(id_map), vq, g, mop=mop)
    ckpts = root / "experiments" / "madis"
    ckpts.mkdir(parents=True)
    tokenizer_stage_lm = {"lm.language_model.shared.weight": torch.zeros(2, 2)}  # the tokenizer stage's idle LM
    torch.save(lightning({**vq_state, **tokenizer_stage_lm}), ckpts / "tokenizer.ckpt")
    name = "sft_csl.ckpt" if mop else "pretrained.ckpt"
    torch.save(lightning({**vq_state, **lm_state}), ckpts / name)
    mean, std = torch.randn(179, generator=g), torch.rand(179, generator=g) + 0.5
    torch.save(mean, root / "mean.pt")
    torch.save(std, root / "std.pt")
    return dict(tok=source_tok, id_map=id_map, vq=vq, lm=lm_state, mean=mean, std=std, ckpt=ckpts / name, leaf=leaf)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("madis-release")
    sources = write_release(root)
    out = root / "converted"
    result = convert_madis_checkpoint(root, out)
    return dict(root=root, out=out, result=result, **sources)


# ------------------------------------------------------------------------------------------------ references
def their_resnet(x, sd, prefix):
    """Residual blocks as the release runs them: dilations wide to narrow in the encoder and the decoder."""
    for j, d in enumerate([3**i for i in range(DEPTH)][::-1]):
        h = F.conv1d(F.relu(x), sd[f"{prefix}{j}.conv1.weight"], sd[f"{prefix}{j}.conv1.bias"], padding=d, dilation=d)
        x = x + F.conv1d(F.relu(h), sd[f"{prefix}{j}.conv2.weight"], sd[f"{prefix}{j}.conv2.bias"])
    return x


def their_encode(sd, x):  # (B, T, F) -> code ids (B, T / 4)
    h = F.relu(F.conv1d(x.transpose(1, 2), sd["encoder.model.0.weight"], sd["encoder.model.0.bias"], padding=1))
    for i in range(2, 2 + DOWN):
        h = F.conv1d(h, sd[f"encoder.model.{i}.0.weight"], sd[f"encoder.model.{i}.0.bias"], stride=2, padding=1)
        h = their_resnet(h, sd, f"encoder.model.{i}.1.model.")
    z = F.conv1d(h, sd[f"encoder.model.{2 + DOWN}.weight"], sd[f"encoder.model.{2 + DOWN}.bias"], padding=1)
    return torch.cdist(z.transpose(1, 2), sd["quantizer.codebook"][None]).argmin(-1)


def their_decode(sd, ids):  # (B, T') -> (B, 4 T', F)
    z = sd["quantizer.codebook"][ids].transpose(1, 2)
    h = F.relu(F.conv1d(z, sd["decoder.model.0.weight"], sd["decoder.model.0.bias"], padding=1))
    for i in range(2, 2 + DOWN):
        h = their_resnet(h, sd, f"decoder.model.{i}.0.model.")
        h = F.conv1d(
            F.interpolate(h, scale_factor=2),
            sd[f"decoder.model.{i}.2.weight"],
            sd[f"decoder.model.{i}.2.bias"],
            padding=1,
        )
    h = F.relu(F.conv1d(h, sd[f"decoder.model.{2 + DOWN}.weight"], sd[f"decoder.model.{2 + DOWN}.bias"], padding=1))
    out = F.conv1d(h, sd[f"decoder.model.{4 + DOWN}.weight"], sd[f"decoder.model.{4 + DOWN}.bias"], padding=1)
    return out.transpose(1, 2)


def their_part_start(num_text: int, part: int) -> int:
    return num_text + 1 + sum(n + EXTRA for n in SIZES[:part])


def their_part_logits(src: dict, prompt: torch.Tensor, canvas: torch.Tensor) -> torch.Tensor:
    """The release's `_get_logits` written out: prompt embeddings, MoP at sign positions (average elsewhere), the
    Qwen3 decoder under an all-zero additive 4D mask (no causal triangle), tied output layer, per-part allowed ids
    (the part's codes and 3 extra ids, eos, pad). prompt (P,) and canvas (M, 3) hold the release's ids."""
    sd, num_text = src["lm"], len(src["id_map"])
    embed = sd[f"{LM}main_lm.embed_tokens.weight"]
    ref = Qwen3Model(backbone_config(embed.shape[0])).eval()
    prefix = f"{LM}main_lm."
    ref.load_state_dict({k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix) and "inv_freq" not in k})
    sign = embed[canvas].mean(-2)
    codes = torch.stack([canvas[:, p] - their_part_start(num_text, p) for p in range(3)], -1)
    valid = ((codes >= 0) & (codes < torch.tensor(SIZES))).all(-1)
    names = ("body", "lhand", "rhand")
    vectors = [sd[f"{LM}{n}_codebook"][codes[valid, p]] for p, n in enumerate(names)]
    projected = torch.stack([v @ sd[f"{LM}{n}_emb_mapper.weight"].T for v, n in zip(vectors, names)], -2)
    gate_hidden = F.silu(
        F.linear(torch.cat(vectors, -1), sd[f"{LM}gate_net.linear1.weight"], sd[f"{LM}gate_net.linear1.bias"])
    )
    gate = torch.softmax(
        F.linear(gate_hidden, sd[f"{LM}gate_net.linear2.weight"], sd[f"{LM}gate_net.linear2.bias"]), -1
    )
    sign[valid] = (gate.unsqueeze(-1) * projected).sum(-2)
    x = torch.cat([embed[prompt], sign])[None]
    hidden = ref(inputs_embeds=x, attention_mask=torch.zeros(1, 1, x.shape[1], x.shape[1])).last_hidden_state[0]
    logits = hidden @ embed.T + 0.0  # final_logits_bias is a zero
    eos = pad = src["id_map"][src["tok"].eos_token_id]
    heads = []
    for p, n in enumerate(SIZES):
        allowed = torch.zeros(embed.shape[0], dtype=torch.bool)
        start = their_part_start(num_text, p)
        allowed[start : start + n + EXTRA] = True
        allowed[[eos, pad]] = True
        heads.append(logits.masked_fill(~allowed, -float("inf")))
    return torch.stack(heads, 1)


def our_rows(num_text: int) -> torch.Tensor:
    """For each id of the converted vocabulary, the release's embedding row (written independently of the code)."""
    rows = list(range(num_text + 1))
    for p, n in enumerate(SIZES):
        rows += [their_part_start(num_text, p) + c for c in range(n)]
    return torch.tensor(rows)


# ------------------------------------------------------------------------------------------------ tests
def test_mapped_tensors_equal_the_sources(release):
    pipe, src = release["result"].pipeline, release
    num_text = len(src["id_map"])
    vq, lm = pipe.part_vqvae, pipe.lm
    assert vq.config.reverse_encoder_dilations and vq.config.codebook_sizes == SIZES
    for p, sd in enumerate(src["vq"]):
        ours = vq.state_dict()
        for key, value in sd.items():
            mapped = key.replace("encoder.", f"encoders.{p}.").replace("decoder.", f"decoders.{p}.")
            mapped = mapped.replace("quantizer.", f"quantizers.{p}.")
            assert torch.equal(ours[mapped], value), key
        assert torch.equal(vq.quantizers[p].ema_embed_sum, sd["quantizer.codebook"])
    ours = lm.state_dict()
    assert lm.config.text_vocab_size == num_text + 1 and lm.config.mask_token_id == num_text
    assert lm.config.sign_embedding == "mop" and lm.config.part_codebook_sizes == list(SIZES)
    embed = src["lm"][f"{LM}main_lm.embed_tokens.weight"]
    assert torch.equal(ours["model.embed_tokens.weight"], embed[our_rows(num_text)])
    for key, value in src["lm"].items():
        if key.startswith(f"{LM}main_lm.") and "embed_tokens" not in key and "inv_freq" not in key:
            assert torch.equal(ours["model." + key[len(f"{LM}main_lm.") :]], value), key
    for p, name in enumerate(("body", "lhand", "rhand")):
        assert torch.equal(ours[f"codebook_{p}"], src["lm"][f"{LM}{name}_codebook"])
        assert torch.equal(ours[f"mop.projections.{p}.weight"], src["lm"][f"{LM}{name}_emb_mapper.weight"])
        for layer in ("linear1", "linear2"):
            assert torch.equal(ours[f"latent_heads.{p}.{layer}.weight"], src["lm"][f"mlp_{name}.{layer}.weight"])
            assert torch.equal(ours[f"mop.gate.{layer}.bias"], src["lm"][f"{LM}gate_net.{layer}.bias"])
    norm = pipe.normalizer
    raw_mean, raw_std = src["mean"][36:], src["std"][36:]
    assert torch.equal(norm.mean, torch.cat([raw_mean[:-20], raw_mean[-10:]]))
    torch.testing.assert_close(norm.std, torch.cat([raw_std[:-20], raw_std[-10:]]) + 1e-10)
    assert pipe.scheduler.config.mask_token_id == num_text and pipe.scheduler.config.temperature == 0.0
    dropped = release["result"].dropped
    assert f"{LM}main_lm.rotary_emb.inv_freq" in dropped and "_losses.losses_train.total" in dropped
    assert "tokenizer.ckpt: lm.language_model.shared.weight" in dropped
    assert len(release["result"].mapped) == sum(map(len, src["vq"])) + len(src["lm"]) - 1


def test_text_tokenizer_ids_are_the_embedding_ids(release):
    pipe, src = release["result"].pipeline, release
    for text in ("the weather tomorrow", "do you like my sister"):
        theirs = src["tok"](text, add_special_tokens=False)["input_ids"]
        ours = pipe.text_tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ours == [src["id_map"][i] for i in theirs]
    assert pipe.text_tokenizer.convert_tokens_to_ids("<mask>") == len(src["id_map"])
    assert pipe.text_tokenizer.eos_token_id == pipe.lm.config.eos_token_id == src["id_map"][src["tok"].eos_token_id]


def test_part_vqvae_matches_the_release_forward(release):
    vq, src = release["result"].pipeline.part_vqvae, release["vq"]
    x = torch.randn(2, 16, 133, generator=torch.Generator().manual_seed(1))
    parts = [torch.cat([x[..., :30], x[..., 120:]], -1), x[..., 30:75], x[..., 75:120]]
    their_ids = [their_encode(sd, xp) for sd, xp in zip(src, parts)]
    with torch.no_grad():
        ids = vq.encode(x)
        for ours, theirs in zip(ids, their_ids):
            assert torch.equal(ours, theirs)
        decoded = vq.decode(their_ids)
    body, left, right = (their_decode(sd, i) for sd, i in zip(src, their_ids))
    torch.testing.assert_close(decoded, torch.cat([body[..., :30], left, right, body[..., 30:]], -1))


def test_part_head_logits_match_the_release_formula(release):
    lm, src = release["result"].pipeline.lm, release
    num_text = len(src["id_map"])
    prompt = torch.tensor([src["id_map"][i] for i in src["tok"]("my sister is tall")["input_ids"]])
    codes = torch.tensor([[0, 1, 2], [5, 7, 7], [3, 0, 4], [1, 6, 0]])
    ours_canvas = torch.full((6, 3), lm.config.mask_token_id)
    theirs_canvas = torch.full((6, 3), num_text)  # <mask>
    for pos, row in zip((0, 2, 3, 5), codes):
        ours_canvas[pos] = torch.tensor([lm.config.part_token_offset(p) + int(c) for p, c in enumerate(row)])
        theirs_canvas[pos] = torch.tensor([their_part_start(num_text, p) + int(c) for p, c in enumerate(row)])
    theirs = their_part_logits(src, prompt, theirs_canvas)  # (L, 3, their rows)
    with torch.no_grad():
        ours = lm(torch.cat([prompt[:, None].expand(-1, 3), ours_canvas])[None]).logits[0]  # (L, 3, our vocab)
    rows = our_rows(num_text)
    finite = torch.isfinite(ours)
    torch.testing.assert_close(ours[finite], theirs[..., rows][finite], atol=1e-4, rtol=1e-4)
    # ours allows exactly their allowed ids minus the 3 extra ids per part (pad is eos here)
    assert torch.equal(finite, torch.isfinite(theirs[..., rows]))
    for p, n in enumerate(SIZES):
        extras = their_part_start(num_text, p) + n + torch.arange(EXTRA)
        assert torch.isfinite(theirs[:, p, extras]).all() and not bool(torch.isin(rows, extras).any())


def test_folder_loads_with_the_pipeline_class_and_remote_code(release):
    kwargs = dict(prompt=["where is the store", "my sister is tall"], num_tokens=8, num_inference_steps=4)
    a = MaDiSPipeline.from_pretrained(release["out"])
    b = diffusers.DiffusionPipeline.from_pretrained(release["out"], trust_remote_code=True)
    assert type(b).__name__ == "MaDiSPipeline" and a.fps == 25.0
    for pipe in (a, b):
        pipe.set_progress_bar_config(disable=True)
    out_a, out_b = a(**kwargs), b(**kwargs)
    assert out_a.sign_tokens == out_b.sign_tokens
    for poses, n in zip(out_a.poses, out_a.num_frames):
        assert poses.shape == (n, 133) and n % 4 == 0
    np.testing.assert_allclose(out_a.poses[0], out_b.poses[0], atol=1e-6)


def test_pretrained_checkpoint_converts_with_the_average_embedding(tmp_path):
    src = write_release(tmp_path, mop=False)
    result = convert_madis_checkpoint(tmp_path, tmp_path / "out", lm_checkpoint="pretrained.ckpt")
    lm = result.pipeline.lm
    assert result.stage == "pretrained" and lm.config.sign_embedding == "average"
    for p in range(3):
        assert torch.equal(lm.codebook(p), src["vq"][p]["quantizer.codebook"])


def test_tokens_outside_the_map_are_reported(tmp_path):
    src = write_release(tmp_path, leaf_out=True)
    result = convert_madis_checkpoint(tmp_path, tmp_path / "out")
    assert result.notes and "map_ids.pkl" in result.notes[0]
    tok = result.pipeline.text_tokenizer
    ids = tok(src["leaf"], add_special_tokens=False)["input_ids"]
    assert len(ids) > 1 and all(0 <= i < len(src["id_map"]) for i in ids)  # smaller kept pieces


def _convert_with(tmp_path, edit, match, **kwargs):
    """Write a release, rewrite its LM checkpoint with `edit(checkpoint)`, and expect a ValueError."""
    write_release(tmp_path)
    path = tmp_path / "experiments" / "madis" / "sft_csl.ckpt"
    ckpt = torch.load(path, weights_only=False)
    edit(ckpt)
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match=match):
        convert_madis_checkpoint(tmp_path, tmp_path / "out", **kwargs)


def test_unexpected_key_fails(tmp_path):
    _convert_with(tmp_path, lambda c: c["state_dict"].update(surprise=torch.zeros(1)), "Unexpected key.*surprise")


def test_unexpected_key_inside_the_language_model_fails(tmp_path):
    _convert_with(tmp_path, lambda c: c["state_dict"].update({f"{LM}lm_head.weight": torch.zeros(1)}), "lm_head")


def test_wrong_shape_fails(tmp_path):
    key = f"{LM}main_lm.layers.0.mlp.up_proj.weight"
    _convert_with(tmp_path, lambda c: c["state_dict"].update({key: torch.zeros(3, 3)}), rf"`{key}` has shape \(3, 3\)")


def test_embedding_rows_of_another_layout_fail(tmp_path):
    key = f"{LM}main_lm.embed_tokens.weight"
    _convert_with(tmp_path, lambda c: c["state_dict"].update({key: c["state_dict"][key][:-3]}), "needs .* rows|rows")


def test_partial_mop_fails(tmp_path):
    _convert_with(tmp_path, lambda c: c["state_dict"].pop(f"{LM}gate_net.linear2.bias"), "part of the MoP")


def test_global_outside_the_allowlist_fails_before_loading(tmp_path):
    _convert_with(tmp_path, lambda c: c["hyper_parameters"].update(x=Payload()), "evil_module.Payload.*allowlist")
    # trusted explicitly, it becomes an inert placeholder and the conversion goes through
    result = convert_madis_checkpoint(tmp_path, tmp_path / "out", allow_globals=["evil_module.Payload"])
    assert result.stage == "sft"


def test_map_ids_with_a_pickled_global_fails(tmp_path):
    write_release(tmp_path)
    path = tmp_path / "deps" / "Qwen3-0.6B-Base-en-zh-de" / "map_ids.pkl"
    path.write_bytes(pickle.dumps({0: np.int64(0)}))
    with pytest.raises(ValueError, match="map_ids.pkl refuses the pickled global numpy"):
        convert_madis_checkpoint(tmp_path, tmp_path / "out")


def test_tokenizer_checkpoint_of_another_training_fails(tmp_path):
    write_release(tmp_path)
    path = tmp_path / "experiments" / "madis" / "tokenizer.ckpt"
    ckpt = torch.load(path, weights_only=False)
    ckpt["state_dict"]["hand_vae.quantizer.codebook"] += 1
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match="hand_vae.*quantizer.codebook. differs"):
        convert_madis_checkpoint(tmp_path, tmp_path / "out")
    assert (
        main(
            [
                "convert",
                "madis-checkpoint",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
                "--tokenizer-checkpoint",
                "none",
            ]
        )
        == 0
    )


def test_siclip_checkpoint_is_refused(tmp_path):
    write_release(tmp_path)
    siclip = {"lm.model.embed_tokens.weight": torch.zeros(4, 2), "text_proj.linear1.weight": torch.zeros(2, 2)}
    siclip.update({"vae.encoder.model.0.weight": torch.zeros(2, 43, 3), "logit_scale": torch.zeros(1)})
    torch.save(lightning(siclip), tmp_path / "siclip.ckpt")
    with pytest.raises(ValueError, match="SiCLIP"):
        convert_madis_checkpoint(
            tmp_path / "siclip.ckpt",
            tmp_path / "out",
            language_model_dir=tmp_path / "deps" / "Qwen3-0.6B-Base-en-zh-de",
        )


def test_cli_converts_and_reports_errors_on_one_line(tmp_path, capsys):
    write_release(tmp_path)
    assert main(["convert", "madis-checkpoint", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "out" / "model_index.json").is_file()
    (tmp_path / "mean.pt").unlink()
    assert main(["convert", "madis-checkpoint", str(tmp_path), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hf-sign: error:") and "--mean" in err and "\n" not in err
