"""Sign-MExD (Shen et al.): the gloss-conditioned pose diffusion transformer with expert-choice MoE, its gloss
encoder and tokenizer, and the Table I configurations with their parameter counts."""

from .gloss_encoder import GLOSS_SPECIAL_TOKENS, build_gloss_encoder, build_gloss_tokenizer, unknown_glosses
from .parameters import TABLE_I, TABLE_I_GLOSS_ENCODER, count_parameters, table_i_parameter_counts, table_i_shapes
from .transformer import SignMExDTransformer, SignMExDTransformerOutput

__all__ = [
    "GLOSS_SPECIAL_TOKENS",
    "SignMExDTransformer",
    "SignMExDTransformerOutput",
    "TABLE_I",
    "TABLE_I_GLOSS_ENCODER",
    "build_gloss_encoder",
    "build_gloss_tokenizer",
    "count_parameters",
    "table_i_parameter_counts",
    "table_i_shapes",
    "unknown_glosses",
]
