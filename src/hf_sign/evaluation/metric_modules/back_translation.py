"""Back-translation BLEU-1..4 and ROUGE-L as an `evaluate` metric; a thin wrapper of
`hf_sign.evaluation.metrics.back_translation`.

Load it offline with `evaluate.load("<path>/back_translation.py")`.
"""

import datasets
import evaluate

from hf_sign.evaluation.metrics import back_translation

_CITATION = """\
@inproceedings{saunders2020progressive,
  title={Progressive Transformers for End-to-End Sign Language Production},
  author={Saunders, Ben and Camgoz, Necati Cihan and Bowden, Richard},
  booktitle={ECCV},
  year={2020}
}
"""

_DESCRIPTION = """\
Back-translation scores of sign language production: a recogniser trained on ground-truth poses
translates generated poses back to text or glosses, scored against the references with cumulative corpus
BLEU-1..4 (sacrebleu, no smoothing by default) and sentence-averaged ROUGE-L F1 (rouge-score, on
sacrebleu's tokens), all on a 0-100 scale.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list` of `str`): recogniser outputs (may be empty strings).
    references (`list` of `str`): reference text or glosses (non-empty).
    max_order (`int`, *optional*, defaults to 4): report BLEU-1 .. BLEU-max_order.
    tokenize (`str`, *optional*, defaults to `"13a"`): sacrebleu tokenizer (`"none"`, `"zh"`, ...), also
        used for ROUGE-L.
    lowercase (`bool`, *optional*, defaults to `False`): lowercase before scoring.
    smooth_method (`str`, *optional*, defaults to `"none"`): sacrebleu BLEU smoothing.
Returns:
    `bleu1` ... `bleu4`, `rouge_l` (0-100).
Examples:
    >>> metric = evaluate.load("src/hf_sign/evaluation/metric_modules/back_translation.py")
    >>> metric.compute(predictions=["the cat sat"], references=["the cat sat"])["bleu1"]
    100.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BackTranslation(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/mjpost/sacrebleu", "https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(self, predictions, references, **kwargs):
        return back_translation(predictions, references, **kwargs)
