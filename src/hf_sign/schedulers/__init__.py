"""Schedulers of the sign-language systems."""

from .scheduling_masked_diffusion import (
    MaskedDiffusionScheduler,
    MaskedDiffusionSchedulerOutput,
    log10_unmasking_orders,
)

__all__ = ["MaskedDiffusionScheduler", "MaskedDiffusionSchedulerOutput", "log10_unmasking_orders"]
