"""Multi-process training: what the stage runner and `HfSignTrainer` need beyond what `transformers.Trainer` does.

A run started by `torchrun`, `accelerate launch` (they set `WORLD_SIZE` and `RANK`) or `mpirun` (accelerate's launcher
for several CPU processes, `accelerate launch --cpu --num_processes N --mpirun_hostfile FILE`) trains with
`DistributedDataParallel`: every process loads the data, builds the same models and trains on its shard of each
epoch's batches; the Trainer all-reduces the gradients, gathers the logged loss and saves checkpoints from the main
process. What remains is here:

* `init_distributed`: starts the process group before anything is written (gloo on CPU), so that the stage runner can
  let the main process alone write the output folder while the others wait; it refuses the one launch that would
  silently train alone (`accelerate launch --cpu --num_processes N` without MPI starts a single process);
* `is_main_process`, `wait_for_everyone`, `main_process_first`: the guards around those writes;
* `SeededLengthGroupedSampler`: length-grouped batches in an order that depends only on the seed and the epoch, the
  same on every process, so that accelerate's batch sharding gives each process disjoint batches that together
  cover the epoch (the global random generator, which `LengthGroupedSampler` draws from, drifts apart between
  processes as soon as they see batches of different shapes);
* `reduce_mean`: the mean of a few scalars over the processes (the logged loss terms).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Dict, Iterator, List, Mapping, Optional

import torch
import torch.distributed as dist
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices

logger = logging.getLogger(__name__)

__all__ = [
    "world_size",
    "init_distributed",
    "is_main_process",
    "wait_for_everyone",
    "main_process_first",
    "SeededLengthGroupedSampler",
    "reduce_mean",
]


# Where the launchers put the number of processes and this process's rank: torchrun (and accelerate's launchers
# built on it) set WORLD_SIZE and RANK; Intel MPI / MPICH, Open MPI and MVAPICH set their own, which accelerate reads.
_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARIABLES = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")


def _launcher_value(names, default: int) -> int:
    for name in names:
        if os.environ.get(name):
            return int(os.environ[name])
    return default


def world_size() -> int:
    """The number of training processes: the process group's size, else the launcher's (1 without a launcher)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return _launcher_value(_SIZE_VARIABLES, 1)


def init_distributed(use_cpu: bool = False) -> bool:
    """Start the process group of a multi-process launch (a no-op otherwise); returns whether training is on CPU.

    Without an accelerator the run is on CPU whatever `use_cpu` says: accelerate only sets up a multi-process CPU run
    (gloo) when told to use the CPU, and would otherwise train every process alone on the whole data.
    """
    if world_size() == 1 and _single_process_cpu_launch():
        raise ValueError(
            "`accelerate launch --cpu --num_processes N` started this single process: accelerate starts several CPU "
            "processes only through MPI (add `--mpirun_hostfile FILE`, with Open MPI or Intel MPI installed). Without "
            "MPI, `accelerate launch --multi_gpu --num_processes N -m hf_sign.cli ...` or `torchrun "
            "--nproc_per_node N -m hf_sign.cli ...` runs N processes over gloo on a machine without GPUs; "
            "`--num_processes 1` trains in one process."
        )
    if world_size() > 1 and not torch.accelerator.is_available():
        use_cpu = True
        sharded = _sharded_launch()
        if sharded is not None and is_main_process():
            logger.warning(
                "accelerate was configured for %s, which shards over GPUs; without an accelerator every process "
                "keeps the whole model and trains with DistributedDataParallel over gloo on CPU.",
                sharded,
            )
    if world_size() > 1 and not dist.is_initialized():
        from accelerate import PartialState

        PartialState(cpu=use_cpu)  # what `TrainingArguments` sets up too; the group it starts is reused
    return use_cpu


def _sharded_launch() -> Optional[str]:
    """`"FSDP"` or `"DeepSpeed"` when `accelerate launch` was configured for it (else `None`)."""
    for name, variable in (("FSDP", "ACCELERATE_USE_FSDP"), ("DeepSpeed", "ACCELERATE_USE_DEEPSPEED")):
        if os.environ.get(variable, "").lower() == "true":
            return name
    return None


def _single_process_cpu_launch() -> bool:
    """Whether `accelerate launch --cpu` was asked for several processes and started one: it sets `MASTER_ADDR` only
    for several processes, and a process started by MPI or torchrun carries the launcher's size as well."""
    return os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true") and bool(os.environ.get("MASTER_ADDR"))


def is_main_process() -> bool:
    """Whether this process writes the output folder and prints (rank 0; always true in a single-process run)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return _launcher_value(_RANK_VARIABLES, 0) == 0


def wait_for_everyone() -> None:
    """A barrier across the training processes (a no-op in a single-process run)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Run the block on the main process first, then on the others: what the main process writes in it (a fitted
    normaliser, a pose bank) the others then read instead of writing it again at the same time."""
    if not is_main_process():
        wait_for_everyone()
    try:
        yield
    finally:
        if is_main_process():
            wait_for_everyone()


class SeededLengthGroupedSampler(Sampler):
    """Indices in groups of similar length (`transformers`' `get_length_grouped_indices`), shuffled by a generator
    seeded with `seed + epoch`: the same order on every process and for a resumed epoch.

    Args:
        batch_size (`int`): the per-process batch size (times the gradient accumulation steps).
        lengths (`List[int]`): the length of every item.
        seed (`int`, *optional*, defaults to 0): the run's seed.
    """

    def __init__(self, batch_size: int, lengths: List[int], seed: int = 0):
        self.batch_size, self.lengths, self.seed = batch_size, list(lengths), seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer (through accelerate's data loader) before each epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


def reduce_mean(values: Mapping[str, float]) -> Dict[str, float]:
    """`values` averaged over the training processes (unchanged in a single-process run); every process must call
    it with the same keys."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1) or not values:
        return dict(values)
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return {k: float(v) / dist.get_world_size() for k, v in zip(keys, tensor.tolist())}
