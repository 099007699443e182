"""Multi-process training pieces that need no second process: the length-grouped sampler's order and its sharding
over two ranks, the main-process-only writes of the stage runner, the loss-term reduction."""

from __future__ import annotations

import json

import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import BatchSampler

from hf_sign.training import distributed, stages as stages_module
from hf_sign.training.distributed import (
    SeededLengthGroupedSampler,
    init_distributed,
    is_main_process,
    main_process_first,
    reduce_mean,
    world_size,
)
from hf_sign.training.stages import Stage, check_output_dir, run_stages

LENGTHS = [int(n) for n in torch.randint(10, 200, (64,), generator=torch.Generator().manual_seed(0))]


def _shards(sampler, batch_size: int, num_processes: int = 2):
    """What accelerate gives each rank of the sampler's batches (as `accelerator.prepare` shards a data loader)."""
    batches = BatchSampler(sampler, batch_size, drop_last=False)
    return [[i for b in BatchSamplerShard(batches, num_processes, rank) for i in b] for rank in range(num_processes)]


def _spread(order, batch_size: int = 4) -> int:
    """Sum over the batches of `order` of their longest minus shortest length."""
    batches = [[LENGTHS[i] for i in order[k : k + batch_size]] for k in range(0, len(order), batch_size)]
    return sum(max(b) - min(b) for b in batches)


def test_sampler_order_depends_on_seed_and_epoch_only():
    a, b = SeededLengthGroupedSampler(4, LENGTHS, seed=3), SeededLengthGroupedSampler(4, LENGTHS, seed=3)
    torch.manual_seed(1)  # the global generator (which drifts between ranks) plays no part
    first = list(a)
    torch.manual_seed(2)
    assert list(b) == first and sorted(first) == list(range(64))
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == list(range(64))
    assert list(SeededLengthGroupedSampler(4, LENGTHS, seed=4)) != first
    # length-grouped: the longest item leads, and batches hold similar lengths (less padding than random batches)
    assert LENGTHS[first[0]] == max(LENGTHS)
    assert _spread(first) < _spread(torch.randperm(64, generator=torch.Generator().manual_seed(0)).tolist()) / 2


def test_two_ranks_get_disjoint_shards_that_cover_the_epoch():
    for epoch in range(3):
        ranks = []
        for _ in range(2):  # one sampler per process, as each rank builds its own
            sampler = SeededLengthGroupedSampler(4, LENGTHS, seed=0)
            sampler.set_epoch(epoch)
            ranks.append(sampler)
        rank0, rank1 = _shards(ranks[0], 4)[0], _shards(ranks[1], 4)[1]
        assert len(rank0) == len(rank1) == 32
        assert not set(rank0) & set(rank1) and sorted(rank0 + rank1) == list(range(64))


def test_uneven_split_covers_every_item():
    # 62 items in batches of 4 on 2 ranks: accelerate completes the last round with items from the start
    sampler = SeededLengthGroupedSampler(4, LENGTHS[:62], seed=0)
    rank0, rank1 = _shards(sampler, 4)
    assert set(rank0) | set(rank1) == set(range(62)) and len(rank0) == len(rank1)


def test_single_process_helpers(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert world_size() == 1 and is_main_process() and init_distributed(False) is False
    assert reduce_mean({"a": 1.5, "b": 2.0}) == {"a": 1.5, "b": 2.0}
    with main_process_first():
        pass
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process()


LAUNCHER_VARIABLES = ["WORLD_SIZE", "RANK", "PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
                      "MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK", "ACCELERATE_USE_CPU", "MASTER_ADDR",
                      "ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"]


@pytest.fixture
def no_launcher(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_mpi_launch_is_read_from_the_mpi_variables(no_launcher):
    """`accelerate launch --cpu --mpirun_hostfile ...` starts its processes with `mpirun`, which sets no WORLD_SIZE."""
    no_launcher.setenv("OMPI_COMM_WORLD_SIZE", "2")
    no_launcher.setenv("OMPI_COMM_WORLD_RANK", "1")
    assert world_size() == 2 and not is_main_process()
    no_launcher.delenv("OMPI_COMM_WORLD_SIZE")
    no_launcher.delenv("OMPI_COMM_WORLD_RANK")
    no_launcher.setenv("PMI_SIZE", "4")
    no_launcher.setenv("PMI_RANK", "0")
    assert world_size() == 4 and is_main_process()


def test_accelerate_cpu_launch_that_started_one_process_is_refused(no_launcher):
    # what `accelerate launch --cpu --num_processes 2 ...` gives its only process without MPI
    no_launcher.setenv("ACCELERATE_USE_CPU", "True")
    no_launcher.setenv("MASTER_ADDR", "127.0.0.1")
    with pytest.raises(ValueError, match=r"--multi_gpu --num_processes N.*torchrun"):
        init_distributed(True)
    no_launcher.delenv("MASTER_ADDR")  # `accelerate launch --cpu` with one process: trains alone, as asked
    assert init_distributed(True) is True


def test_fsdp_or_deepspeed_launch_is_recognised(no_launcher):
    """On CPU such a run trains with DDP: `init_distributed` warns, naming what was configured."""
    assert distributed._sharded_launch() is None
    no_launcher.setenv("ACCELERATE_USE_FSDP", "true")
    assert distributed._sharded_launch() == "FSDP"
    no_launcher.delenv("ACCELERATE_USE_FSDP")
    no_launcher.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert distributed._sharded_launch() == "DeepSpeed"


def _stage(calls):
    def build(ctx):
        class Trainer:  # what `train_with_resume` and `finish` see of a trained stage
            pass

        return Trainer()

    def finish(ctx, trainer):
        calls.append("finish")
        (ctx.output_dir / "model_index.json").write_text("{}")
        return {"s_val": 1.0}

    return Stage("s", build, finish)


@pytest.fixture
def fake_training(monkeypatch):
    monkeypatch.setattr(stages_module, "train_with_resume", lambda trainer, resume: {"global_step": 2})


def test_only_the_main_process_writes_the_output_folder(tmp_path, monkeypatch, fake_training):
    calls = []
    config = {"seed": 0}
    # the main process: config, finish, metrics
    run_stages([_stage(calls)], config, tmp_path / "main", load_data=lambda: {}, prefix="t")
    assert calls == ["finish"] and (tmp_path / "main" / "t_config.json").is_file()
    assert json.loads((tmp_path / "main" / "t_metrics.json").read_text()) == {"s_global_step": 2, "s_val": 1.0}
    # another rank of the same run (the main one has written the metrics): writes nothing, reads the metrics
    other = tmp_path / "other"
    other.mkdir()
    (other / "t_metrics.json").write_text(json.dumps({"s_global_step": 2, "s_val": 1.0}))
    (other / "model_index.json").write_text("{}")
    monkeypatch.setenv("RANK", "1")
    calls.clear()
    run_stages([_stage(calls)], config, other, load_data=lambda: {}, prefix="t")
    assert calls == [] and not (other / "t_config.json").exists()
    assert json.loads((other / "t_metrics.json").read_text()) == {"s_global_step": 2, "s_val": 1.0}


def test_overwrite_removes_checkpoints_on_the_main_process_only(tmp_path, monkeypatch):
    (tmp_path / "checkpoints" / "vae" / "checkpoint-2").mkdir(parents=True)
    monkeypatch.setenv("RANK", "1")
    check_output_dir(tmp_path, ["vae"], overwrite=True)
    assert (tmp_path / "checkpoints" / "vae" / "checkpoint-2").is_dir()
    monkeypatch.setenv("RANK", "0")
    check_output_dir(tmp_path, ["vae"], overwrite=True)
    assert not (tmp_path / "checkpoints" / "vae").exists()
