"""Converters from other projects' released checkpoints to hf-sign pipelines (explicit, weights-only loading)."""

from .convert_madis_checkpoint import MaDiSConversion, convert_madis_checkpoint

__all__ = ["MaDiSConversion", "convert_madis_checkpoint"]
