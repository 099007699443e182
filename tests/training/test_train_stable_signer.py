"""Training Stable Signer through the registry: the tiny run leaves a loadable pipeline folder, the linker and the
gate learn (and do not at learning rate 0), resume works, and bad data or configs are refused."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from transformers import AutoTokenizer

from hf_sign.data.pose_bank import PoseBank
from hf_sign.data.synthsign import build_synthsign
from hf_sign.models.stable_signer import PoseExpertGate, SignLinkerForConditionalGeneration
from hf_sign.skeletons import get_skeleton
from hf_sign.systems import get_system
from hf_sign.training.stable_signer_data import (
    LinkerCollator,
    MoECollator,
    linker_examples,
    linker_queries,
    moe_instances,
)
from hf_sign.training.stable_signer_losses import expert_nll, gloss_cross_entropy
from hf_sign.training.stable_signer_trainer import full_config, stable_signer_param_counts, train_stable_signer
from hf_sign.training.trainer_utils import load_pose_splits


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthsign")
    build_synthsign(path, seed=0, num_train=24, num_validation=4, num_test=4, show_progress=False)
    return path


LEARN = {
    "linker_training.num_train_epochs": 12,
    "moe_training.num_train_epochs": 8,
    "moe_training.learning_rate": 0.01,
}


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("stable-signer")
    get_system("stable-signer").run_training(corpus, out, config="tiny", overrides=dict(LEARN))
    return out


@pytest.fixture(scope="module")
def frozen(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("stable-signer-lr0")
    overrides = dict(LEARN, **{"linker_training.learning_rate": 0.0, "moe_training.learning_rate": 0.0})
    train_stable_signer(corpus, out, config="tiny", overrides=overrides)
    return out


def test_run_leaves_a_pipeline_folder(trained, corpus):
    system = get_system("stable-signer")
    assert system.stages == ("linker", "moe", "renderer")
    metrics = json.loads((trained / system.metrics_file).read_text())
    for key in ("linker_val_text_bleu4", "linker_val_prompt_exact_match", "moe_val_gate_accuracy", "moe_bank_glosses"):
        assert key in metrics
    pipe = DiffusionPipeline.from_pretrained(trained, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe).__name__ == system.pipeline.rsplit(":", 1)[1]
    out = pipe("where was the brother yesterday?")
    assert out.poses[0].shape[1] == 133 and np.isfinite(out.poses[0]).all()
    bank = datasets.load_dataset("parquet", data_dir=str(trained / "pose_bank" / "data"), split="train")
    assert len(bank) == metrics["moe_bank_glosses"] * full_config("tiny")["gate"]["num_experts"]


def _train_ce(folder, corpus):
    linker = SignLinkerForConditionalGeneration.from_pretrained(folder / "linker").eval()
    tok = AutoTokenizer.from_pretrained(folder / "tokenizer")
    data = load_pose_splits(str(corpus), 1000)
    examples = linker_examples(data["train"], ["text", "prompt"], "synth")
    batch = LinkerCollator(tok, linker)([examples[i] for i in range(len(examples))])
    with torch.no_grad():
        out = linker(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
            decoder_attention_mask=batch["decoder_attention_mask"],
        )
    return gloss_cross_entropy(out.logits, batch["labels"]).item()


def _gate_nll(folder, corpus):
    linker = SignLinkerForConditionalGeneration.from_pretrained(folder / "linker").eval()
    tok = AutoTokenizer.from_pretrained(folder / "tokenizer")
    bank = PoseBank.from_pretrained(folder / "pose_bank")
    gate = PoseExpertGate.from_pretrained(folder / "gate")
    rows = load_pose_splits(str(corpus), 1000)["train"]
    queries = linker_queries(linker, tok, [r["text"] for r in rows], [r["gloss"] for r in rows], ["synth"] * len(rows))
    inst = moe_instances(rows, queries, bank, get_skeleton("smplx133"))
    batch = MoECollator()([inst[i] for i in range(len(inst))])
    with torch.no_grad():
        w = gate(batch["query"], expert_mask=batch["expert_mask"]).weights
    return expert_nll(w, batch["expert"]).item()


def test_linker_learns(trained, frozen, corpus):
    learned, untouched = _train_ce(trained, corpus), _train_ce(frozen, corpus)
    assert learned < 0.6 * untouched


def test_gate_learns(trained, frozen, corpus):
    assert _gate_nll(trained, corpus) < 0.9 * _gate_nll(frozen, corpus)


def test_resume_continues_from_the_checkpoint(trained, corpus):
    train_stable_signer(
        corpus, trained, config="tiny", stage="moe", overrides=dict(LEARN), resume_from_checkpoint=True
    )
    metrics = json.loads((trained / "stable_signer_metrics.json").read_text())
    assert metrics["moe_resumed_from"] is not None


def test_param_counts_express_the_paper_shape():
    counts = stable_signer_param_counts("paper")
    # t5-base has 222,903,552 parameters with its 32,128-token vocabulary; counted here with 1,000 tokens
    assert counts["linker"] == 222_903_552 - (32_128 - 1_000) * 768
    assert counts["gate"] == 2 * 768 * 4 + 4


def test_bad_data_and_configs(corpus, tmp_path):
    with pytest.raises(ValueError, match="stage"):
        train_stable_signer(corpus, tmp_path / "a", config="tiny", stage="vae")
    with pytest.raises(ValueError, match="inputs"):
        full_config("tiny", {"linker_training.inputs": ["gloss"]})
    with pytest.raises(ValueError, match="mask_rate"):
        full_config("tiny", {"linker_training.mask_rate": 2.0})
    with pytest.raises(ValueError, match="run stage 'linker' first"):
        train_stable_signer(corpus, tmp_path / "b", config="tiny", stage="moe")
    ds = datasets.load_from_disk(str(corpus)) if (corpus / "dataset_dict.json").is_file() else None
    no_prompt = tmp_path / "no_prompt"
    dd = datasets.load_dataset(str(corpus)) if ds is None else ds
    dd.remove_columns(["prompt"]).save_to_disk(str(no_prompt))
    with pytest.raises(ValueError, match="prompt"):
        train_stable_signer(no_prompt, tmp_path / "c", config="tiny")
    no_spans = tmp_path / "no_spans"
    dd.map(lambda r: {"gloss_spans": []}).save_to_disk(str(no_spans))
    with pytest.raises(ValueError, match="gloss_spans"):
        train_stable_signer(no_spans, tmp_path / "d", config="tiny")
