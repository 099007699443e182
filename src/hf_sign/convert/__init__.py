"""Converters from other projects' released checkpoints to hf-sign pipelines (explicit, weights-only loading).

The converters import torch and the pipelines; they load on first use, so that the command line (which registers
`hf-sign convert` from `hf_sign.convert.command`) stays fast to start.
"""

__all__ = ["MaDiSConversion", "convert_madis_checkpoint"]


def __getattr__(name):
    if name in __all__:
        from . import madis_checkpoint

        return getattr(madis_checkpoint, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
