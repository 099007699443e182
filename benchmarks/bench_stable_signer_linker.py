"""Stable Signer's linker (SLUL) on a corpus split: gloss BLEU-4, ROUGE-L and exact match from plain text and from
request-style prompts, beside a rule-based glosser.

The rule-based glosser is spoken-to-signed's simple glosser (`spoken_to_signed.text_to_gloss.simple`: simplemma
lemmas, lower case, the words in their spoken order) with function words and punctuation dropped, upper-cased; for
a prompt it glosses the quoted sentence. Each `--model NAME=DIR` is a trained Stable Signer folder (its `linker/`
and `tokenizer/`); every model and the glosser are scored on the same split with the same code
(`hf_sign.training.stable_signer_stages.gloss_scores`: corpus BLEU-4 over whitespace tokens, mean ROUGE-L F1, exact
sequence match).

    python benchmarks/bench_stable_signer_linker.py --dataset DATA --split test \
        --model "T5 base=RUN_BASE" --model "+SAGM=RUN_SAGM" --model "+KL, contrastive=RUN_FULL" --out linker.md
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Dict, List

from transformers import AutoTokenizer

from hf_sign.data.io import load_corpus, split_rows
from hf_sign.models.stable_signer.linker import SignLinkerForConditionalGeneration
from hf_sign.training.stable_signer_linker import gloss_scores, predict_glosses

# English function words a gloss transcription leaves out (articles, auxiliaries, copulas, infinitive "to",
# common prepositions and conjunctions)
FUNCTION_WORDS = {
    "a",
    "an",
    "the",
    "be",
    "do",
    "have",
    "to",
    "of",
    "for",
    "at",
    "in",
    "on",
    "with",
    "by",
    "from",
    "and",
    "or",
    "will",
    "would",
    "can",
    "could",
    "shall",
    "should",
    "may",
    "might",
    "must",
    "that",
    "this",
    "there",
    "it",
}
_QUOTED = re.compile(r'"(.*)"')


def rule_glosser(text: str) -> List[str]:
    """Lemmas of `text` (quoted part of a prompt) without function words or punctuation, upper-cased."""
    from spoken_to_signed.text_to_gloss.simple import text_to_gloss

    quoted = _QUOTED.search(text)
    items = text_to_gloss(quoted.group(1) if quoted else text, "en")[0]
    return [it.gloss.upper() for it in items if re.search(r"\w", it.gloss) and it.gloss.lower() not in FUNCTION_WORDS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", action="append", default=[], help="NAME=DIR of a trained Stable Signer folder")
    parser.add_argument("--num-beams", type=int, default=None, help="default: each linker's generation_config")
    parser.add_argument("--out", default=None, help="markdown file for the table (a .json beside it)")
    args = parser.parse_args()

    rows = [r for r in split_rows(load_corpus(args.dataset)[args.split], args.split) if r["gloss"]]
    refs = [r["gloss"] for r in rows]
    fields = [f for f in ("text", "prompt") if all(isinstance(r.get(f), str) for r in rows)]
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    results["Rule-based glosser"] = {f: gloss_scores([rule_glosser(r[f]) for r in rows], refs) for f in fields}
    for spec in args.model:
        name, folder = spec.split("=", 1)
        linker = SignLinkerForConditionalGeneration.from_pretrained(Path(folder) / "linker")
        tokenizer = AutoTokenizer.from_pretrained(Path(folder) / "tokenizer")
        langs = [r.get("language") or linker.config.language_tags[0] for r in rows]
        results[name] = {
            f: gloss_scores(predict_glosses(linker, tokenizer, [r[f] for r in rows], langs, args.num_beams), refs)
            for f in fields
        }

    head = " | ".join(f"{f} {m}" for f in fields for m in ("BLEU-4 ↑", "ROUGE-L ↑", "exact ↑ (%)"))
    lines = [
        f"Gloss prediction on {Path(args.dataset).name} ({args.split}, {len(rows)} sentences); "
        + (f"{args.num_beams} beam(s) for every linker." if args.num_beams else "each linker's own beam size."),
        "",
        f"| Linker | {head} |",
        "|---|" + "---:|" * (3 * len(fields)),
    ]
    for name, by_field in results.items():
        cells = [f"{by_field[f][m]:.2f}" for f in fields for m in ("bleu4", "rouge_l", "exact_match")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")
        Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
