"""Shared skeleton of every real-corpus converter: validate each item, fail loudly or skip with a report.

A converter yields `(item_name, split, build)` triples where `build()` returns one schema row
(`hf_sign.data.schema.make_sample`) or raises. `run_conversion` then either stops at the first bad
item with an error naming the file and frame, or (with `skip_invalid=True`) records it in
`skipped.jsonl` next to the dataset and goes on. Nothing is dropped silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Tuple

from tqdm.auto import tqdm

from ..io import SPLITS, render_card, save_corpus
from ..schema import sign_features


class ConversionError(ValueError):
    """A source item cannot be converted. The message names the file (and frame where relevant)."""


BuildItem = Tuple[str, str, Callable[[], Dict[str, Any]]]


def run_conversion(
    items: Iterable[BuildItem],
    *,
    out_dir: str | Path,
    feature_dim: int,
    format_name: str,
    source: str,
    skip_invalid: bool = False,
    description: str = "",
):
    """Convert `items` into a `DatasetDict` under `out_dir` and return `(dataset_dict, skipped)`.

    `skipped` is a list of `{"item", "split", "error"}` dicts, also written to `skipped.jsonl`.
    """
    splits: Dict[str, List[Dict[str, Any]]] = {s: [] for s in SPLITS}
    skipped: List[Dict[str, str]] = []
    for name, split, build in tqdm(list(items), desc=f"convert {format_name}", unit="item"):
        if split not in splits:
            raise ConversionError(f"{name}: unknown split {split!r}; expected one of {SPLITS}.")
        try:
            row = build()
        except (ValueError, EOFError, OSError, KeyError, IndexError, TypeError) as err:
            # EOFError/OSError cover truncated gzip/pickle/.pose files; KeyError missing keys.
            message = f"{name}: {err}" if name not in str(err) else str(err)
            if not skip_invalid:
                raise ConversionError(message + " (use --skip-invalid to skip bad items with a report)") from err
            skipped.append({"item": name, "split": split, "error": message})
            continue
        splits[split].append(row)
    counts = {s: len(r) for s, r in splits.items()}
    if not any(counts.values()):
        # nothing to save: no dataset is written (an empty `data/` would load as a corpus without rows), but the
        # reasons are, so the user sees why every item failed
        if not skipped:
            raise ConversionError(f"{format_name}: the source holds no items to convert.")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        report = out / "skipped.jsonl"
        with report.open("w", encoding="utf-8") as fh:
            for item in skipped:
                fh.write(json.dumps(item) + "\n")
        raise ConversionError(
            f"{format_name}: every item was invalid ({len(skipped)} skipped, e.g. {skipped[0]['error']}); no dataset "
            f"was written. The reasons are in {report}."
        )
    card = render_card(
        "converted_dataset_card.md",
        format_name=format_name,
        source=source,
        num_train=counts["train"],
        num_validation=counts["validation"],
        num_test=counts["test"],
        num_skipped=len(skipped),
        feature_dim=feature_dim,
        description=description,
    )
    dd = save_corpus(splits, sign_features(feature_dim), out_dir, card, skipped=skipped)
    return dd, skipped
