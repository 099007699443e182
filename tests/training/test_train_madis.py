"""MaDiS's training on a toy SynthSign corpus, through the system registry. The `tokenizer` stage: the saved part
VQ-VAE and text tokenizer, the validation metrics, learning (and none at learning rate 0), resume, the CLI and bad
configs. The LM stages (`pretrain`, `sft`) are in `test_train_madis_lm.py`."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from hf_sign.cli import main
from hf_sign.data.io import load_corpus
from hf_sign.models.madis import PartVQVAE
from hf_sign.systems import get_system
from hf_sign.training.madis_stages import TEXT_SPECIAL_TOKENS
from hf_sign.training.madis_trainer import full_config, madis_param_counts

SYSTEM = get_system("madis")
STEPS_PER_EPOCH = 3  # 12 train sentences at batch 4


def _recon_losses(out):
    """The logged reconstruction losses of the run in `out` (from its checkpoint's trainer state)."""
    (checkpoint,) = (out / "checkpoints" / "tokenizer").glob("checkpoint-*")
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return [h["recon_loss"] for h in state["log_history"] if "recon_loss" in h]


@pytest.fixture(scope="module")
def trained(tiny_synthsign, tmp_path_factory):
    out = tmp_path_factory.mktemp("madis")
    metrics = SYSTEM.run_training(tiny_synthsign, out, config="tiny", stage="tokenizer", seed=0)
    return out, metrics


# ------------------------------------------------------------------------------------------------ the registry
def test_registered_with_its_three_stages():
    assert SYSTEM.stages == ("tokenizer", "pretrain", "sft")
    assert SYSTEM.generates
    counts = madis_param_counts("tiny")
    assert counts["part_vqvae"] == sum(counts[f"part_vqvae_{p}"] for p in ("body", "left_hand", "right_hand")) > 0
    assert set(SYSTEM.parameter_report()["configs"]) == {"tiny", "small", "paper", "mdlm-baseline", "ar-baseline"}


def test_the_paper_config_keeps_the_paper_sampler():
    """Options the paper lacks stay off in `paper`; `small` reads the length on the fully masked canvas and pretrains
    at Table 2's `+latent` level (its choices on validation)."""
    paper, small = full_config("paper"), full_config("small")
    assert paper["scheduler"]["length_mode"] == "eos"
    assert paper["scheduler"]["pivot_mode"] == "uniform"
    assert (paper["pretraining"]["latent_loss_weight"], paper["pretraining"]["physical_loss_weight"]) == (1.0, 1.0)
    assert small["scheduler"]["length_mode"] == "first_step"
    assert (small["pretraining"]["latent_loss_weight"], small["pretraining"]["physical_loss_weight"]) == (1.0, 0.0)


# ------------------------------------------------------------------------------------------------ the run
def test_saves_the_part_vqvae_and_the_metrics(trained, tiny_synthsign):
    out, metrics = trained
    assert (out / "part_vqvae" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list((out / "part_vqvae").glob("*.bin"))
    vqvae = PartVQVAE.from_pretrained(str(out / "part_vqvae"))
    assert vqvae.config.skeleton == "smplx133" and list(vqvae.config.codebook_sizes) == [16, 16, 16]
    # the codebooks were trained: the saved ones are the EMA means, not the random initialisation
    fresh = PartVQVAE(**full_config("tiny")["part_vqvae"])
    assert not torch.allclose(vqvae.codebook(1), fresh.codebook(1))
    ids = vqvae.encode(torch.zeros(1, 10, 133))
    assert [tuple(i.shape) for i in ids] == [(1, 3)] * 3
    assert metrics["tokenizer_global_step"] == 20 * STEPS_PER_EPOCH
    assert 10 < metrics["tokenizer_val_mpjpe_mm"] < 1000  # millimetres: an arm-scale error, not metres
    assert len(metrics["tokenizer_codebook_usage"]) == 3
    assert all(0 < u <= 1 for u in metrics["tokenizer_codebook_usage"])
    assert all(1 <= p <= 16 for p in metrics["tokenizer_val_perplexity"])
    saved = json.loads((out / "madis_metrics.json").read_text())
    assert saved["tokenizer_val_mpjpe_mm"] == metrics["tokenizer_val_mpjpe_mm"]
    assert (out / "normalizer" / "config.json").is_file()
    assert not (out / "model_index.json").exists()  # the pipeline folder is written by the last stage, `sft`


def test_logs_the_loss_terms(trained):
    out, _ = trained
    (checkpoint,) = (out / "checkpoints" / "tokenizer").glob("checkpoint-*")
    logs = [h for h in json.loads((checkpoint / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    for key in ("recon_loss", "commit_loss", "perplexity_body", "perplexity_left_hand", "perplexity_right_hand"):
        assert key in logs[0], key
    assert all(1 <= h["perplexity_left_hand"] <= 16 for h in logs)


def test_text_tokenizer_round_trips(trained, tiny_synthsign):
    out, metrics = trained
    tokenizer = AutoTokenizer.from_pretrained(str(out / "text_tokenizer"))
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert (tokenizer.pad_token, tokenizer.mask_token, tokenizer.eos_token) == ("<pad>", "<mask>", "<eos>")
    special = [tokenizer.convert_tokens_to_ids(t) for t in TEXT_SPECIAL_TOKENS]
    assert len(set(special)) == len(TEXT_SPECIAL_TOKENS) and tokenizer.pad_token_id == 0
    assert len(tokenizer) == metrics["text_tokenizer_vocab_size"] <= 300
    sentence = load_corpus(str(tiny_synthsign))["train"][0]["text"]
    for text in (sentence, "Unseen WORDS, digits 42 & ünïcode!"):
        ids = tokenizer(text)["input_ids"]
        assert ids[-1] == tokenizer.eos_token_id and tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    # BPE learnt the corpus: a training sentence takes fewer tokens than its bytes
    assert len(tokenizer(sentence)["input_ids"]) < 0.75 * len(sentence.encode())


# ------------------------------------------------------------------------------------------------ learning
def test_reconstruction_loss_drops_and_not_at_learning_rate_zero(trained, tiny_synthsign, tmp_path):
    out, _ = trained
    losses = _recon_losses(out)
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:5]) / 5
    lr0 = {"tokenizer_training.learning_rate": 0.0}
    SYSTEM.run_training(tiny_synthsign, tmp_path, config="tiny", stage="tokenizer", overrides=lr0)
    frozen = _recon_losses(tmp_path)
    assert sum(frozen[-5:]) / 5 > 0.95 * sum(frozen[:5]) / 5


def test_resume_from_checkpoint(tiny_synthsign, tmp_path):
    one = {"tokenizer_training.num_train_epochs": 1}
    first = SYSTEM.run_training(tiny_synthsign, tmp_path, config="tiny", stage="tokenizer", overrides=one)
    assert first["tokenizer_global_step"] == STEPS_PER_EPOCH and first["tokenizer_resumed_from"] is None
    two = {"tokenizer_training.num_train_epochs": 2}
    second = SYSTEM.run_training(
        tiny_synthsign, tmp_path, config="tiny", stage="tokenizer", overrides=two, resume_from_checkpoint=True
    )
    assert second["tokenizer_resumed_from"].endswith(f"checkpoint-{STEPS_PER_EPOCH}")
    assert second["tokenizer_global_step"] == 2 * STEPS_PER_EPOCH
    assert PartVQVAE.from_pretrained(str(tmp_path / "part_vqvae")) is not None


def test_cli_trains_the_tokenizer_stage(tiny_synthsign, tmp_path):
    args = f"train madis --stage tokenizer --config tiny --dataset {tiny_synthsign} --output-dir {tmp_path}"
    code = main(args.split() + ["--set", "tokenizer_training.num_train_epochs=1"])
    assert code == 0
    assert (tmp_path / "part_vqvae" / "config.json").is_file()
    assert (tmp_path / "text_tokenizer" / "tokenizer.json").is_file()


# ------------------------------------------------------------------------------------------------ bad configs
@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"part_vqvae.bogus": 1}, "bogus"),
        ({"tokenizer_training.windows": 32}, "windows"),
        ({"tokenizer_training.window_frames": 30}, "window_frames"),
        ({"text_tokenizer.vocab_size": 100}, "vocab_size"),
        ({"part_vqvae.skeleton": "smplx133"}, "skeleton"),  # follows the dataset
    ],
)
def test_bad_config_is_refused(overrides, field, tiny_synthsign, tmp_path):
    with pytest.raises(ValueError, match=field):
        SYSTEM.run_training(tiny_synthsign, tmp_path, config="tiny", overrides=overrides)
    assert not (tmp_path / "madis_config.json").exists()


def test_unknown_stage_is_refused(tiny_synthsign, tmp_path):
    with pytest.raises(ValueError, match="pretrain"):
        SYSTEM.run_training(tiny_synthsign, tmp_path, config="tiny", stage="finetune")
