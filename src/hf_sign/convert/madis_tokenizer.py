"""The release's text tokenizer, re-indexed so that its ids are the language model's embedding ids.

The release tokenizes with the Qwen3 tokenizer of its language-model folder, adds `<mask>`, and maps every tokenizer
id to an embedding row with `map_ids.pkl` (a pickled `dict` tokenizer id -> embedding id over the tokens kept for
English, Chinese and German); `<mask>` gets the next row. A token outside the map becomes `pad`.

`build_text_tokenizer` writes the same byte-level BPE (normalizer, pre-tokenizer, decoder and post-processor
unchanged) with a vocabulary of the kept tokens at their embedding ids plus `<mask>`, as a `PreTrainedTokenizerFast`,
so that the pipeline's `text_tokenizer(text)["input_ids"]` are the model's ids directly. What cannot be the same:

* a BPE merge survives only when both halves and the result are kept tokens; a kept token that the original
  tokenizer reaches only through a dropped intermediate token is unreachable here (counted in `unreachable`), so a
  text using it splits into smaller kept tokens where the release would have emitted it;
* a token that the original tokenizer would emit but the map dropped is not produced either (its pieces are, or
  `pad` for a character outside the map, set as the unknown token), where the release feeds `pad`.

Both only affect texts with tokens outside `map_ids.pkl`; `unreachable` says how many kept tokens are concerned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from transformers import AutoTokenizer, PreTrainedTokenizerFast

__all__ = ["MASK_TOKEN", "TextTokenizerConversion", "build_text_tokenizer"]

MASK_TOKEN = "<mask>"


@dataclass
class TextTokenizerConversion:
    """Result of `build_text_tokenizer`.

    Args:
        tokenizer (`PreTrainedTokenizerFast`): ids = the release's embedding ids; `<mask>` = `num_text`.
        num_text (`int`): number of text embedding rows (the size of `map_ids.pkl`).
        eos_token_id (`int`), pad_token_id (`int`): embedding ids of the release's eos and pad tokens.
        dropped_merges (`int`): BPE merges removed because a token of theirs is outside the map.
        unreachable (`List[str]`): kept tokens that no kept merge produces (see the module docstring).
    """

    tokenizer: PreTrainedTokenizerFast
    num_text: int
    eos_token_id: int
    pad_token_id: int
    dropped_merges: int
    unreachable: List[str]


def _remap_post_processor(spec, id_map: Dict[int, int]):
    """Re-index the special-token ids of a TemplateProcessing post-processor (recursing into a Sequence)."""
    if not isinstance(spec, dict):
        return spec
    if spec.get("type") == "Sequence":
        spec["processors"] = [_remap_post_processor(p, id_map) for p in spec.get("processors", [])]
    elif spec.get("type") == "TemplateProcessing":
        for name, token in spec.get("special_tokens", {}).items():
            if any(i not in id_map for i in token["ids"]):
                raise ValueError(f"The tokenizer's post-processor adds {name!r}, which map_ids.pkl does not map.")
            token["ids"] = [id_map[i] for i in token["ids"]]
    return spec


def build_text_tokenizer(language_model_dir: Path, id_map: Dict[int, int], model_max_length: int = 256):
    """The release's tokenizer (from `language_model_dir`) with the ids of `id_map` (tokenizer id -> embedding id).

    Raises:
        `ValueError`: the folder has no fast BPE tokenizer, the map is not a bijection onto `[0, len(map))`, or the
        eos / pad token is not mapped.
    """
    source = AutoTokenizer.from_pretrained(str(language_model_dir), local_files_only=True)
    if not getattr(source, "is_fast", False):
        raise ValueError(f"{language_model_dir} has no fast (tokenizer.json) tokenizer; the converter needs one.")
    spec = json.loads(source.backend_tokenizer.to_str())
    model = spec["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"The tokenizer in {language_model_dir} is {model.get('type')}; the converter reads BPE.")
    num_text = len(id_map)
    if sorted(id_map.values()) != list(range(num_text)):
        raise ValueError(
            f"map_ids.pkl must map tokenizer ids one-to-one onto the embedding ids 0..{num_text - 1}; its values are "
            "not that range."
        )
    vocab_size = len(source)
    outside = sorted(k for k in id_map if k >= vocab_size)
    if outside:
        raise ValueError(f"map_ids.pkl maps tokenizer ids {outside[:5]} that the tokenizer ({vocab_size} ids) lacks.")
    if source.eos_token_id not in id_map:
        raise ValueError(f"map_ids.pkl does not map the eos token {source.eos_token!r} (id {source.eos_token_id}).")
    pad_token = source.pad_token if source.pad_token_id is not None else source.eos_token
    pad_id = source.convert_tokens_to_ids(pad_token)
    if pad_id not in id_map:
        raise ValueError(f"map_ids.pkl does not map the pad token {pad_token!r} (id {pad_id}).")

    # 1. the BPE vocabulary: kept tokens at their embedding ids; pad in it too, as the unknown token
    vocab = {tok: id_map[i] for tok, i in model["vocab"].items() if i in id_map}
    vocab[pad_token] = id_map[pad_id]
    # 2. merges whose halves and result are all kept, in their order (rank)
    merges, dropped = [], 0
    for merge in model["merges"]:
        a, b = merge.split(" ", 1) if isinstance(merge, str) else merge
        if a in vocab and b in vocab and a + b in vocab:
            merges.append([a, b])
        else:
            dropped += 1
    produced = {a + b for a, b in merges}
    alphabet = {tok for tok in vocab if len(tok) == 1}
    unreachable = sorted(t for t in vocab if t not in produced and t not in alphabet and t != pad_token)
    added_contents = {t["content"] for t in spec.get("added_tokens", [])}
    unreachable = [t for t in unreachable if t not in added_contents]
    model.update(vocab=vocab, merges=merges, unk_token=pad_token)
    # 3. added (special) tokens that are kept, re-indexed, then <mask> on the row after the text
    added = []
    for token in spec.get("added_tokens", []):
        if token["id"] in id_map:
            added.append({**token, "id": id_map[token["id"]]})
    added.append(
        {
            "id": num_text,
            "content": MASK_TOKEN,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
    )
    spec["added_tokens"] = added
    spec["post_processor"] = _remap_post_processor(spec.get("post_processor"), id_map)

    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(json.dumps(spec))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=source.eos_token,
        pad_token=pad_token,
        unk_token=pad_token,
        mask_token=MASK_TOKEN,
        model_max_length=model_max_length,
        padding_side="left",
    )
    if len(tokenizer) != num_text + 1:
        raise ValueError(
            f"The re-indexed tokenizer has {len(tokenizer)} ids; expected {num_text + 1} (text + <mask>)."
        )
    return TextTokenizerConversion(
        tokenizer=tokenizer,
        num_text=num_text,
        eos_token_id=id_map[source.eos_token_id],
        pad_token_id=id_map[pad_id],
        dropped_merges=dropped,
        unreachable=unreachable,
    )
