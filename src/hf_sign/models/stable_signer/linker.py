"""Stable Signer's Sign Language Understanding Linker (SLUL): a T5 that maps prompts and texts to glosses.

Section 2.2 of the paper: a prompt or text `X`, prefixed by a language tag `l`, is encoded by a T5 encoder into
`H = f_enc([l; X])`; the decoder generates the gloss sequence autoregressively. The linker is a plain
`T5ForConditionalGeneration` with three additions:

* its own config class (`model_type = "hf_sign_slul"`, registered with `AutoConfig`, `AutoModel` and
  `AutoModelForSeq2SeqLM`) carrying the supported language tags and the gloss vocabulary;
* glosses are *atomic* tokens of the shared vocabulary when the tokenizer was built by
  [`build_linker_tokenizer`]: a gloss is one token, spelled as the lower-cased gloss, so a text word and the gloss
  that signs it (`"daughter"`, `DAUGHTER`) share one embedding (T5 ties the input embeddings and the output layer).
  `encode_glosses` / `decode_glosses` translate between gloss lists and token ids; with a pretrained T5 folder
  (a SentencePiece vocabulary, `gloss_token_ids` empty) glosses are spelled out as text instead;
* mean pooling of the encoder states (`h_x = Pool(H)`, the prompt embedding of the contrastive term and the MoE
  query) and of the decoder states (`h_g`, the gloss embedding).

The losses (CE, SAGM, KL consistency, contrastive linking) live in `hf_sign.training.stable_signer_losses`.

```python
>>> linker = SignLinkerForConditionalGeneration.from_pretrained("outputs/stable-signer/linker")
>>> tokenizer = AutoTokenizer.from_pretrained("outputs/stable-signer/tokenizer")
>>> batch = tokenizer([linker.format_input("where was the brother yesterday?")], return_tensors="pt")
>>> linker.decode_glosses(tokenizer, linker.generate(**batch, max_new_tokens=16))
[['YESTERDAY', 'BROTHER', 'WHERE']]
```
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSeq2SeqLM,
    PreTrainedModel,  # noqa: F401  (diffusers looks up the loading class by name in the defining module)
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

__all__ = [
    "SignLinkerConfig",
    "SignLinkerForConditionalGeneration",
    "build_linker_tokenizer",
    "gloss_token",
    "masked_mean",
]

LINKER_SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>", "<mask>")


def gloss_token(gloss: str) -> str:
    """The vocabulary entry of a gloss: the lower-cased gloss (shared with the text word spelled the same)."""
    return gloss.lower()


def language_token(language: str) -> str:
    """The tag token prepended to every input, e.g. `<asl>`."""
    return f"<{language}>"


def masked_mean(states: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean over the sequence axis of `states` `(B, L, D)` where `mask` `(B, L)` is 1 (all positions if None)."""
    if mask is None:
        return states.mean(dim=1)
    m = mask.to(states.dtype).unsqueeze(-1)
    return (states * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


class SignLinkerConfig(T5Config):
    r"""Configuration of [`SignLinkerForConditionalGeneration`]: a `T5Config` plus the linker's vocabulary facts.

    Args:
        language_tags (`List[str]`, *optional*, defaults to `["synth"]`): languages the linker was trained on; each
            input is prefixed by its tag token `<tag>`, and any other language is refused.
        gloss_vocabulary (`List[str]`, *optional*): the glosses the linker can emit, in their original spelling.
        gloss_token_ids (`List[int]`, *optional*): the token id of each gloss (parallel to `gloss_vocabulary`); empty
            when glosses are spelled out as text (a pretrained SentencePiece T5).
        mask_token_id (`int`, *optional*): the `<mask>` token that replaces masked gloss tokens in SAGM training.
        max_gloss_length (`int`, *optional*, defaults to 32): the most gloss tokens `generate` produces by default.
        kwargs: every `T5Config` argument (`d_model`, `num_layers`, `num_decoder_layers`, `num_heads`, `d_kv`,
            `d_ff`, `dropout_rate`, `vocab_size`, ...).
    """

    model_type = "hf_sign_slul"

    def __init__(
        self,
        language_tags: Optional[List[str]] = None,
        gloss_vocabulary: Optional[List[str]] = None,
        gloss_token_ids: Optional[List[int]] = None,
        mask_token_id: Optional[int] = None,
        max_gloss_length: int = 32,
        **kwargs,
    ):
        self.language_tags = list(language_tags) if language_tags is not None else ["synth"]
        self.gloss_vocabulary = list(gloss_vocabulary or [])
        self.gloss_token_ids = [int(i) for i in (gloss_token_ids or [])]
        if self.gloss_token_ids and len(self.gloss_token_ids) != len(self.gloss_vocabulary):
            raise ValueError(
                f"`gloss_token_ids` has {len(self.gloss_token_ids)} ids for {len(self.gloss_vocabulary)} glosses in "
                "`gloss_vocabulary`; they must be parallel (or `gloss_token_ids` empty)."
            )
        self.mask_token_id = mask_token_id
        self.max_gloss_length = int(max_gloss_length)
        super().__init__(**kwargs)


class SignLinkerForConditionalGeneration(T5ForConditionalGeneration):
    """T5 prompt/text -> gloss linker (Stable Signer's SLUL). `forward` and `generate` are T5's own."""

    config_class = SignLinkerConfig

    def __init__(self, config: SignLinkerConfig):
        super().__init__(config)
        self._gloss_of_id: Dict[int, str] = dict(zip(config.gloss_token_ids, config.gloss_vocabulary))

    # ------------------------------------------------------------------------------------------- inputs
    def check_language(self, language: str) -> str:
        """`language` if the linker was trained on it, else a `ValueError` naming the supported tags."""
        if not isinstance(language, str) or language not in self.config.language_tags:
            raise ValueError(
                f"`language` must be one of the linker's language tags {self.config.language_tags}; got {language!r}."
            )
        return language

    def format_input(self, text: str, language: Optional[str] = None) -> str:
        """The encoder input `"<tag> text"` (the paper's `[l; X]`); `language` defaults to the first tag."""
        language = self.check_language(language if language is not None else self.config.language_tags[0])
        return f"{language_token(language)} {text}"

    # ------------------------------------------------------------------------------------------- glosses
    @property
    def atomic_glosses(self) -> bool:
        """Whether every gloss is one token (a tokenizer from `build_linker_tokenizer`)."""
        return bool(self.config.gloss_token_ids)

    def encode_glosses(
        self, tokenizer: PreTrainedTokenizerFast, glosses: Sequence[str]
    ) -> Tuple[List[int], List[int]]:
        """Token ids of a gloss sequence (eos appended) and, per id, the index of the gloss it spells (-1 for eos).

        Atomic glosses must be in `gloss_vocabulary` (a `ValueError` names the first unknown one); spelled-out
        glosses are tokenised one by one, so each token knows its gloss.
        """
        ids: List[int] = []
        owner: List[int] = []
        if self.atomic_glosses:
            index = {g: i for g, i in zip(self.config.gloss_vocabulary, self.config.gloss_token_ids)}
            for k, g in enumerate(glosses):
                if g not in index:
                    raise ValueError(f"`glosses[{k}]` = {g!r} is not in the linker's gloss vocabulary.")
                ids.append(index[g])
                owner.append(k)
        else:
            for k, g in enumerate(glosses):
                piece = tokenizer(g, add_special_tokens=False)["input_ids"]
                ids += piece
                owner += [k] * len(piece)
        ids.append(self.config.eos_token_id)
        owner.append(-1)
        return ids, owner

    def decode_glosses(self, tokenizer: PreTrainedTokenizerFast, sequences: torch.Tensor) -> List[List[str]]:
        """Gloss lists from generated ids `(B, L)`: decoding stops at eos; pad and the start token are skipped.

        Atomic mode maps each id back to its gloss (an id that is not a gloss, e.g. a plain text word, is kept as
        its token spelled in upper case, so the pose bank reports it as unknown instead of it vanishing); text mode
        splits the decoded string on whitespace.
        """
        special = {self.config.pad_token_id, self.config.decoder_start_token_id}
        out: List[List[str]] = []
        for row in sequences.tolist():
            ids: List[int] = []
            for i in row:
                if i == self.config.eos_token_id:
                    break
                if i not in special:
                    ids.append(int(i))
            if self.atomic_glosses:
                out.append([self._gloss_of_id.get(i, tokenizer.convert_ids_to_tokens(i).upper()) for i in ids])
            else:
                out.append(tokenizer.decode(ids, skip_special_tokens=True).split())
        return out

    @torch.no_grad()
    def link(
        self,
        tokenizer: PreTrainedTokenizerFast,
        texts: Sequence[str],
        languages: Sequence[Optional[str]],
        num_beams: Optional[int] = None,
    ) -> List[List[str]]:
        """Text (or prompts) to glosses: `format_input` per text, `generate` (at least one gloss, at most
        `config.max_gloss_length`; `num_beams` defaults to the `generation_config`'s), then `decode_glosses`."""
        enc = tokenizer(
            [self.format_input(t, lang) for t, lang in zip(texts, languages)], padding=True, return_tensors="pt"
        ).to(self.device)
        beams = {} if num_beams is None else {"num_beams": num_beams}
        ids = self.generate(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            **beams,
            min_new_tokens=1,  # every prompt signs at least one gloss
            max_new_tokens=self.config.max_gloss_length + 1,
        )
        return self.decode_glosses(tokenizer, ids)

    # ------------------------------------------------------------------------------------------- pooling
    def pool_encoder(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """`(h_x, H)`: the mean-pooled encoder states `(B, d_model)` and the states `(B, L, d_model)`."""
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return masked_mean(states, attention_mask), states

    def gloss_queries(
        self,
        tokenizer: PreTrainedTokenizerFast,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        gloss_sequences: Sequence[Sequence[str]],
    ) -> List[torch.Tensor]:
        """The SLP-MoE query of every gloss, `[Pool(H); d_i]`: one `(num_glosses, 2 * d_model)` tensor per input.

        `d_i` is the mean of the last decoder states whose *input* token spells gloss `i` (teacher forcing on the
        given glosses), so it has seen gloss `i` and the glosses before it.
        """
        encoded = [self.encode_glosses(tokenizer, g) for g in gloss_sequences]
        width = max(len(ids) for ids, _ in encoded)
        labels = torch.full((len(encoded), width), -100, dtype=torch.long, device=input_ids.device)
        owners = torch.full((len(encoded), width), -1, dtype=torch.long, device=input_ids.device)
        for j, (ids, owner) in enumerate(encoded):
            labels[j, : len(ids)] = torch.tensor(ids)
            owners[j, : len(owner)] = torch.tensor(owner)
        pooled, states = self.pool_encoder(input_ids, attention_mask)
        dec = self.decoder(
            input_ids=self._shift_right(labels), encoder_hidden_states=states, encoder_attention_mask=attention_mask
        ).last_hidden_state
        # the decoder input at position t + 1 is the token at t: its state belongs to that token's gloss
        input_owner = torch.cat([torch.full_like(owners[:, :1], -1), owners[:, :-1]], dim=1)
        out = []
        for j, glosses in enumerate(gloss_sequences):
            n = len(glosses)
            member = input_owner[j][None, :] == torch.arange(n, device=owners.device)[:, None]  # (n, width)
            d = masked_mean(dec[j : j + 1].expand(n, -1, -1), member)
            out.append(torch.cat([pooled[j : j + 1].expand(n, -1), d], dim=-1))
        return out


def build_linker_tokenizer(
    texts: Iterable[str],
    gloss_sequences: Iterable[Sequence[str]],
    language_tags: Sequence[str],
    max_length: int = 128,
) -> Tuple[PreTrainedTokenizerFast, Dict[str, int]]:
    """A word-level tokenizer whose vocabulary holds the corpus' words, its glosses (one token each) and the tags.

    Text is NFKC-normalised and lower-cased, split on whitespace, and punctuation other than `' + -` becomes its
    own token (so `"yesterday?"` is `yesterday ?` while a gloss such as `BAG+` or `NEXT-YEAR` stays whole). Each
    gloss is added as the token `gloss_token(gloss)`; a text word spelled the same shares it. Two glosses that only
    differ in case would collide, so they are refused. Ids: `<pad>` 0 (also T5's decoder start), `</s>` 1,
    `<unk>` 2, `<mask>` 3, the language tags, then tokens by decreasing frequency (ties alphabetically): the same
    corpus always gives the same ids.

    Returns:
        `(tokenizer, gloss_ids)`: the `PreTrainedTokenizerFast` (encodings end with `</s>`) and each gloss's id.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

    texts = list(texts)
    gloss_sequences = [list(g) for g in gloss_sequences]
    if not texts:
        raise ValueError("`texts` is empty; the linker's tokenizer is built from the training texts.")
    normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    pre = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[^\w'+\-]"), behavior="isolated")]
    )
    counts: Dict[str, int] = {}
    for k, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"`texts[{k}]` must be a string; got {type(t).__name__}.")
        for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(t)):
            counts[w] = counts.get(w, 0) + 1
    spelled: Dict[str, str] = {}
    for seq in gloss_sequences:
        for g in seq:
            tok = gloss_token(g)
            if spelled.setdefault(tok, g) != g:
                raise ValueError(
                    f"Glosses {spelled[tok]!r} and {g!r} differ only in case; the linker cannot tell them apart."
                )
            counts[tok] = counts.get(tok, 0) + 1
    tags = [language_token(t) for t in language_tags]
    vocab = {t: i for i, t in enumerate(list(LINKER_SPECIAL_TOKENS) + tags)}
    for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.add_special_tokens(list(LINKER_SPECIAL_TOKENS) + tags)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        additional_special_tokens=tags,
        model_max_length=max_length,
        padding_side="right",
    )
    return tokenizer, {g: vocab[tok_] for tok_, g in spelled.items()}


AutoConfig.register(SignLinkerConfig.model_type, SignLinkerConfig)
AutoModel.register(SignLinkerConfig, SignLinkerForConditionalGeneration)
AutoModelForSeq2SeqLM.register(SignLinkerConfig, SignLinkerForConditionalGeneration)
