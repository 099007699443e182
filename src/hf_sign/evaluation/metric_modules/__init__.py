"""`evaluate` metric modules of hf-sign, one metric per file, each a thin wrapper of a plain function in
`hf_sign.evaluation.metrics`. Load one offline by path::

    evaluate.load(metric_module_path("dtw_jpe"))

The files are never imported as part of this package: `evaluate` copies and imports them itself.
"""

from pathlib import Path

METRIC_MODULES_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("dtw_jpe", "mpjpe", "fid", "back_translation", "sibleu", "siclip")


def metric_module_path(name: str) -> str:
    """Path of the `evaluate` module file for metric `name` (one of `METRIC_NAMES`)."""
    if name not in METRIC_NAMES:
        raise ValueError(f"Unknown metric module {name!r}; expected one of {METRIC_NAMES}.")
    return str(METRIC_MODULES_DIR / f"{name}.py")
