"""Evaluator models of the evaluation harness (DESIGN.md, "Evaluation contract").

- [`PoseRecognizerModel`] (`model_type="hf_sign_pose_recognizer"`): pose -> gloss/word back-translation
  recogniser with a CTC head; its output on generated poses is scored with BLEU / ROUGE-L.
- [`SignTextContrastiveModel`] (`model_type="hf_sign_sign_text_clip"`): CLIP-style pose/text encoders;
  sign-to-text retrieval R@1/R@5 (SiCLIP) and the embedding space of FID.

Both are trained once, with fixed seeds, on ground-truth training poses only
(`hf_sign.training.evaluator_trainer.train_evaluators`), read poses in the dataset's units and carry
their normalisation statistics. Importing this package registers both with `AutoConfig` / `AutoModel`.
"""

from .contrastive import SignTextContrastiveConfig, SignTextContrastiveModel, SignTextContrastiveOutput
from .recognizer import PoseRecognizerConfig, PoseRecognizerModel, PoseRecognizerOutput, ctc_greedy_decode

__all__ = [
    "PoseRecognizerConfig",
    "PoseRecognizerModel",
    "PoseRecognizerOutput",
    "SignTextContrastiveConfig",
    "SignTextContrastiveModel",
    "SignTextContrastiveOutput",
    "ctc_greedy_decode",
]
