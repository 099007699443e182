"""Shared checks for hf-sign diffusers models (`ModelMixin, ConfigMixin`).

A test class mixes `ModelTesterMixin` in and defines:

* `model_class`: the model class;
* `get_init_kwargs()`: a tiny config (<= 2 layers, hidden <= 32);
* `get_inputs(seed=0)`: fresh forward kwargs (new tensors and generators on every call, so two calls with the same
  seed give identical inputs);
* optionally `get_batch_and_singles()` -> `(batch_kwargs, [single_kwargs, ...], [valid_length, ...])` for the
  batch-vs-single check: the padded batch output, cut to each sample's valid length along axis 1, must equal that
  sample run alone;
* optionally `compute_loss(model, inputs)` (default: mean square of the output) and `unused_parameters` (names
  the forward pass does not touch, e.g. heads trained by a separate loss).

Every test runs the model in eval mode unless it trains, on one intra-op thread; tolerances are `atol`/`rtol`
(`low_precision_rtol` bounds the relative error of a bfloat16 copy against float32).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Sequence, Tuple

import pytest
import torch


def plain_config(model) -> Dict[str, Any]:
    """The model's config as JSON would store it (tuples -> lists), without private `_` entries."""
    return json.loads(json.dumps({k: v for k, v in dict(model.config).items() if not k.startswith("_")}))


class ModelTesterMixin:
    model_class = None
    output_key: str = "sample"
    atol: float = 1e-5
    rtol: float = 1e-4
    unused_parameters: Sequence[str] = ()
    low_precision_rtol: float = 0.05

    # ------------------------------------------------------------------ hooks
    def get_init_kwargs(self) -> Dict[str, Any]:
        raise NotImplementedError

    def get_inputs(self, seed: int = 0) -> Dict[str, Any]:
        raise NotImplementedError

    def get_batch_and_singles(self) -> Tuple[Dict[str, Any], List[Dict[str, Any]], List[int]]:
        raise NotImplementedError

    def compute_loss(self, model, inputs) -> torch.Tensor:
        return getattr(model(**inputs), self.output_key).pow(2).mean()

    # ------------------------------------------------------------------ helpers
    def make_model(self, seed: int = 0):
        torch.manual_seed(seed)
        return self.model_class(**self.get_init_kwargs()).eval()

    def output_of(self, model, inputs) -> torch.Tensor:
        return getattr(model(**inputs), self.output_key)

    def assert_close(self, a, b, msg=""):
        torch.testing.assert_close(a, b, atol=self.atol, rtol=self.rtol, msg=msg or None)

    @staticmethod
    def cast_inputs(inputs: Dict[str, Any], dtype: torch.dtype) -> Dict[str, Any]:
        """Floating-point tensors of `inputs` in `dtype` (masks, timesteps and generators unchanged)."""
        return {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}

    # ------------------------------------------------------------------ tests
    def test_save_load_safetensors(self, tmp_path):
        model = self.make_model()
        with torch.no_grad():
            expected = self.output_of(model, self.get_inputs())
        model.save_pretrained(tmp_path)
        assert os.path.isfile(tmp_path / "diffusion_pytorch_model.safetensors")
        assert os.path.isfile(tmp_path / "config.json")
        loaded = self.model_class.from_pretrained(tmp_path).eval()
        assert plain_config(loaded) == plain_config(model)
        with torch.no_grad():
            got = self.output_of(loaded, self.get_inputs())
        torch.testing.assert_close(got, expected, atol=0, rtol=0)

    def test_from_pretrained_torch_dtype(self, tmp_path):
        # `from_pretrained(torch_dtype=...)` builds the model under that default dtype and loads only the state dict:
        # every floating parameter *and buffer* must end up in it, and the forward pass must run in it
        model = self.make_model()
        with torch.no_grad():
            expected = self.output_of(model, self.get_inputs())
        model.save_pretrained(tmp_path)
        loaded = self.model_class.from_pretrained(tmp_path, torch_dtype=torch.bfloat16).eval()
        tensors = list(loaded.named_parameters()) + list(loaded.named_buffers())
        wrong = [name for name, t in tensors if t.is_floating_point() and t.dtype != torch.bfloat16]
        assert not wrong, f"not in bfloat16 after from_pretrained(torch_dtype=torch.bfloat16): {wrong}"
        with torch.no_grad():
            got = self.output_of(loaded, self.cast_inputs(self.get_inputs(), torch.bfloat16))
        assert got.dtype == torch.bfloat16 and torch.isfinite(got).all()
        error = (got.float() - expected).norm() / expected.norm()
        assert error < self.low_precision_rtol, f"bfloat16 differs from float32 by {float(error):.3f} (relative)"

    def test_dict_vs_tuple(self):
        model = self.make_model()
        with torch.no_grad():
            as_dict = model(**self.get_inputs())
            as_tuple = model(**self.get_inputs(), return_dict=False)
        assert isinstance(as_tuple, tuple)
        torch.testing.assert_close(as_tuple[0], getattr(as_dict, self.output_key), atol=0, rtol=0)
        torch.testing.assert_close(as_dict[0], as_tuple[0], atol=0, rtol=0)

    def test_determinism(self):
        model = self.make_model()
        with torch.no_grad():
            first = self.output_of(model, self.get_inputs(seed=3))
            second = self.output_of(model, self.get_inputs(seed=3))
        assert torch.isfinite(first).all()
        torch.testing.assert_close(first, second, atol=0, rtol=0)

    def test_batch_vs_single(self):
        try:
            batch, singles, lengths = self.get_batch_and_singles()
        except NotImplementedError:
            pytest.skip("no batch-vs-single case for this model")
        model = self.make_model()
        with torch.no_grad():
            out = self.output_of(model, batch)
            for i, (single, n) in enumerate(zip(singles, lengths)):
                alone = self.output_of(model, single)
                self.assert_close(out[i, :n], alone[0, :n], msg=f"sample {i} differs between batch and single")

    def test_loss_backward(self):
        model = self.make_model().train()
        loss = self.compute_loss(model, self.get_inputs())
        assert loss.ndim == 0 and torch.isfinite(loss)
        loss.backward()
        for name, p in model.named_parameters():
            if any(name.startswith(u) for u in self.unused_parameters):
                continue
            assert p.grad is not None, f"parameter {name} got no gradient"
            assert torch.isfinite(p.grad).all(), f"parameter {name} has a non-finite gradient"

    def test_gradient_checkpointing(self):
        if not self.model_class._supports_gradient_checkpointing:
            pytest.skip("model does not support gradient checkpointing")
        model = self.make_model().train()
        loss = self.compute_loss(model, self.get_inputs())
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        model.enable_gradient_checkpointing()
        assert model.is_gradient_checkpointing
        loss_ckpt = self.compute_loss(model, self.get_inputs())
        loss_ckpt.backward()
        self.assert_close(loss_ckpt, loss)
        for name, g in grads.items():
            self.assert_close(dict(model.named_parameters())[name].grad, g, msg=f"gradient of {name} differs")
        model.disable_gradient_checkpointing()
        assert not model.is_gradient_checkpointing
