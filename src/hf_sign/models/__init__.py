"""hf-sign models: one folder per system (each model one file), and the blocks the systems share.

Shared blocks (diffusers' own `FeedForward`, `Timesteps` and `TimestepEmbedding` are used directly where they fit):

* `attention`: `MaskedAttention`, self- and cross-attention with boolean masks that can return its probabilities.
* `embeddings`: `sinusoidal_embedding`, `relative_position_embedding`, `FiLM`.
* `moe`: `MoEFeedForward` (expert-choice and token-choice mixture-of-experts FFN), `RoutingInfo`.
* `length_regulator`: `LengthPredictor`, `TokenTiming`, `align_frames_to_tokens`, `DurationPredictor`,
  `DurationConditioning`.
* `utils`: `masked_mean`, `rename_state_dict_keys` (loading checkpoints saved under older weight names).
"""
