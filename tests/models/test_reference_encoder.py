"""`ReferenceImageEncoder`: the model tester mixin, token shape, and that the tokens follow the image's colours."""

from __future__ import annotations

import pytest
import torch
from model_tester_mixin import ModelTesterMixin

from hf_sign.models.stable_signer import ReferenceImageEncoder


class TestReferenceImageEncoder(ModelTesterMixin):
    model_class = ReferenceImageEncoder
    output_key = "last_hidden_state"

    def get_init_kwargs(self):
        return {"block_out_channels": (8, 16), "token_grid_size": 2, "cross_attention_dim": 16, "norm_num_groups": 4}

    def get_inputs(self, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        return {"reference_image": torch.rand(2, 3, 16, 16, generator=g) * 2 - 1}

    def get_batch_and_singles(self):
        batch = self.get_inputs(1)
        singles = [{"reference_image": batch["reference_image"][i : i + 1]} for i in range(2)]
        return batch, singles, [5, 5]

    def test_token_shape(self):
        model = self.make_model()
        with torch.no_grad():
            out = model(torch.zeros(3, 3, 24, 20)).last_hidden_state
        assert out.shape == (3, model.num_tokens, 16) and model.num_tokens == 5

    def test_tokens_follow_the_colours(self):
        model = self.make_model()
        red, blue = torch.full((1, 3, 16, 16), -1.0), torch.full((1, 3, 16, 16), -1.0)
        red[:, 0], blue[:, 2] = 1.0, 1.0
        with torch.no_grad():
            a, b = model(red).last_hidden_state, model(blue).last_hidden_state
            again = model(red.clone()).last_hidden_state
        assert (a - b).abs().mean() > 1e-2
        torch.testing.assert_close(a, again, atol=0, rtol=0)

    def test_bad_inputs(self):
        model = self.make_model()
        with pytest.raises(ValueError, match="reference_image"):
            model(torch.zeros(1, 1, 16, 16))
        with pytest.raises(ValueError, match="norm_num_groups"):
            ReferenceImageEncoder(block_out_channels=(6,), norm_num_groups=4)
