"""The stage runner and the Trainer base on a toy two-stage system (no Sign-SALD): stage order and selection, the
metrics and config files, `prepare`, the pipeline-folder check, loss-term logging, length-grouped batches and
pickle-free checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from hf_sign.training.arguments import StageTrainingArguments
from hf_sign.training.stages import Stage, StageContext, run_stages
from hf_sign.training.trainer_utils import HfSignTrainer, PoseRows


class ToyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(()))


class ToyTrainer(HfSignTrainer):
    """Fits `y = 2 x` with one parameter; logs the step number and its double as loss terms."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = ((model.scale * inputs["x"] - 2.0 * inputs["x"]) ** 2).mean()
        step = torch.tensor(float(self.state.global_step))
        self.log_loss_terms({"loss": loss, "loss_step": step, "loss_double_step": 2 * step})
        return loss


def _collate(samples):
    return {"x": torch.stack([s["x"] for s in samples]), "lengths": torch.tensor([s["n"] for s in samples])}


def _rows(n=16):
    """`n` rows with lengths 1..n in a shuffled order."""
    return [{"x": torch.tensor(float(i % 16 + 1)), "n": i * 7 % n + 1} for i in range(n)]


def _stage(name, writes_pipeline=False, epochs=2, logging_steps=1, group_by_length=True):
    def build(ctx: StageContext):
        args = StageTrainingArguments(num_train_epochs=epochs, per_device_train_batch_size=4, learning_rate=0.05,
                                      logging_steps=logging_steps, group_by_length=group_by_length)
        return ToyTrainer(model=ToyModel(), args=ctx.training_arguments(name, args), data_collator=_collate,
                          train_dataset=PoseRows(ctx.data, "n"), group_by_length=args.group_by_length)

    def finish(ctx: StageContext, trainer):
        (ctx.output_dir / f"{name}.pt.json").write_text(json.dumps(trainer.model.scale.item()))
        if writes_pipeline:
            (ctx.output_dir / "model_index.json").write_text("{}")
        return {f"{name}_scale": trainer.model.scale.item()}

    return Stage(name, build, finish)


STAGES = (_stage("first"), _stage("second", writes_pipeline=True))
CONFIG = {"seed": 3, "num_threads": 0, "toy": {"width": 3}}


def _metrics(out: Path):
    return json.loads((out / "toy_metrics.json").read_text())


def test_runs_every_stage_in_order_and_records_each(tmp_path):
    order = []
    stages = tuple(Stage(s.name, lambda ctx, s=s: order.append(s.name) or s.build_trainer(ctx), s.finish)
                   for s in STAGES)
    out = run_stages(stages, dict(CONFIG), tmp_path, load_data=_rows, prefix="toy",
                     prepare=lambda ctx, names: {"num_train": len(ctx.data), "stages": list(names)})
    assert order == ["first", "second"]
    metrics = _metrics(out)
    assert metrics["num_train"] == 16 and metrics["stages"] == ["first", "second"]
    for name in ("first", "second"):
        assert metrics[f"{name}_global_step"] == 8 and metrics[f"{name}_resumed_from"] is None
        assert metrics[f"{name}_seconds"] >= 0 and metrics[f"{name}_first_logged_loss"] > 0
        assert metrics[f"{name}_scale"] == json.loads((out / f"{name}.pt.json").read_text())
        assert (out / "checkpoints" / name / "checkpoint-8").is_dir()
    assert json.loads((out / "toy_config.json").read_text()) == CONFIG


def test_one_stage_keeps_the_earlier_metrics_and_prepare_completes_the_config(tmp_path):
    run_stages(STAGES, dict(CONFIG), tmp_path, load_data=_rows, stage="first", prefix="toy")
    first = _metrics(tmp_path)
    assert "second_global_step" not in first and not (tmp_path / "model_index.json").exists()

    def prepare(ctx, names):
        assert names == ["second"]
        ctx.config["toy"]["width"] = len(ctx.data)  # a field that follows the data
        return {}

    run_stages(STAGES, {**CONFIG, "toy": {"width": None}}, tmp_path, load_data=_rows, stage="second", prefix="toy",
               prepare=prepare)
    metrics = _metrics(tmp_path)
    assert metrics["first_scale"] == first["first_scale"] and metrics["second_global_step"] == 8
    assert json.loads((tmp_path / "toy_config.json").read_text())["toy"]["width"] == 16


def test_config_train_stages_pick_the_stages_of_a_full_run(tmp_path):
    # a config may leave out a stage (e.g. a long optional one) from a run without `stage`; `stage` still runs it
    config = {**CONFIG, "train_stages": ["second"]}
    run_stages(STAGES, dict(config), tmp_path, load_data=_rows, prefix="toy")
    metrics = _metrics(tmp_path)
    assert "first_global_step" not in metrics and metrics["second_global_step"] == 8
    run_stages(STAGES, dict(config), tmp_path, load_data=_rows, stage="first", prefix="toy")
    assert _metrics(tmp_path)["first_global_step"] == 8
    with pytest.raises(ValueError, match=r"`train_stages` must name stages of \('first', 'second'\); got \['thrid'\]"):
        run_stages(STAGES, {**CONFIG, "train_stages": ["thrid"]}, tmp_path, load_data=_rows)


def test_bad_stage_failed_prepare_and_missing_pipeline_folder(tmp_path):
    with pytest.raises(ValueError, match=r"`stage` must be one of \('first', 'second'\)"):
        run_stages(STAGES, dict(CONFIG), tmp_path, load_data=_rows, stage="third")

    def refuse(ctx, names):
        raise ValueError("config and data disagree")

    threads = torch.get_num_threads()
    with pytest.raises(ValueError, match="disagree"):
        run_stages(STAGES, {**CONFIG, "num_threads": threads + 1}, tmp_path / "refused", load_data=_rows,
                   prepare=refuse)
    assert not (tmp_path / "refused" / "checkpoints").exists() and torch.get_num_threads() == threads
    with pytest.raises(RuntimeError, match="without writing a pipeline folder"):
        run_stages((_stage("only"),), dict(CONFIG), tmp_path / "nopipe", load_data=_rows)
    # the last stage alone in a new folder leaves its own modules; once the earlier stage has run there too, the
    # folder must be a pipeline
    lone = (_stage("first"), _stage("second"))
    run_stages(lone, dict(CONFIG), tmp_path / "lone", load_data=_rows, stage="second")
    with pytest.raises(RuntimeError, match="'second' finished without writing a pipeline folder"):
        run_stages(lone, dict(CONFIG), tmp_path / "lone", load_data=_rows, stage="first")
    with pytest.raises(RuntimeError, match="'first' finished without writing a pipeline folder"):
        run_stages(lone, {**CONFIG, "train_stages": ["first"]}, tmp_path / "short", load_data=_rows)
    # systems that train something other than a generator (the evaluators) opt out of the check
    out = run_stages((_stage("only"),), dict(CONFIG), tmp_path / "models", load_data=_rows, pipeline_folder=False)
    assert (out / "training_metrics.json").is_file() and not (out / "model_index.json").exists()


def test_loss_terms_are_logged_as_running_means(tmp_path):
    run_stages((_stage("fit", writes_pipeline=True, logging_steps=2),), dict(CONFIG), tmp_path, load_data=_rows)
    state = json.loads((tmp_path / "checkpoints" / "fit" / "checkpoint-8" / "trainer_state.json").read_text())
    logged = [(h["step"], h["loss_step"], h["loss_double_step"]) for h in state["log_history"] if "loss" in h]
    # compute_loss runs at global steps 0..7; each log averages the steps since the previous one
    assert logged == [(2, 0.5, 1.0), (4, 2.5, 5.0), (6, 4.5, 9.0), (8, 6.5, 13.0)]


def test_length_grouped_batches(tmp_path):
    rows = _rows(256)  # lengths 1..256

    def spreads(group_by_length, folder):
        stage = _stage("fit", group_by_length=group_by_length)
        trainer = stage.build_trainer(StageContext(dict(CONFIG), rows, folder))
        batches = [b["lengths"] for b in trainer.get_train_dataloader()]
        assert sorted(torch.cat(batches).tolist()) == list(range(1, 257))  # every row once
        return batches, [float(b.max() - b.min()) for b in batches]

    grouped, grouped_spread = spreads(True, tmp_path / "a")
    _, random_spread = spreads(False, tmp_path / "b")
    # sorted within megabatches of 64 rows: a batch spans about 4 / 64 of the range, a random one most of it
    assert sum(grouped_spread) / len(grouped_spread) < 0.25 * sum(random_spread) / len(random_spread)
    assert int(grouped[0].max()) == 256  # the longest batch first (an out-of-memory error shows at once)


def test_checkpoints_hold_no_pickled_arguments(tmp_path):
    run_stages((_stage("fit", writes_pipeline=True),), dict(CONFIG), tmp_path, load_data=_rows)
    ckpt = tmp_path / "checkpoints" / "fit" / "checkpoint-8"
    assert (ckpt / "model.safetensors").is_file() and not (ckpt / "training_args.bin").exists()
    saved = json.loads((ckpt / "training_args.json").read_text())
    assert saved["learning_rate"] == 0.05 and saved["num_train_epochs"] == 2 and saved["seed"] == 3
