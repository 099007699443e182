"""PartVQVAE (MaDiS / SOKE part-wise sign tokenizer): shapes, part split, EMA codebooks, dead codes, learning."""

import pytest
import torch
from model_tester_mixin import ModelTesterMixin

from hf_sign.models.madis import PartVQVAE
from hf_sign.models.madis.part_vqvae import EMAQuantizer, part_feature_indices
from hf_sign.skeletons.spec import get_skeleton

TINY = dict(codebook_sizes=(8, 16, 16), code_dim=8, hidden_dim=16, num_res_blocks=1)


def tiny_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    return PartVQVAE(**{**TINY, **kwargs}).eval()


class TestPartVQVAE(ModelTesterMixin):
    model_class = PartVQVAE
    # a bfloat16 copy may pick a neighbouring code at a few positions, so its reconstruction differs more than
    # a continuous model's would
    low_precision_rtol = 0.2

    def get_init_kwargs(self):
        return dict(TINY)

    def get_inputs(self, seed=0):
        g = torch.Generator().manual_seed(seed)
        mask = torch.ones(2, 12, dtype=torch.bool)
        mask[1, 9:] = False
        return {"poses": torch.randn(2, 12, 133, generator=g), "mask": mask}

    def compute_loss(self, model, inputs):
        return model(**inputs).loss


def test_encode_decode_shapes_and_lengths():
    torch.set_num_threads(1)
    model = tiny_model()
    for t, t_codes in [(16, 4), (10, 3), (1, 1)]:
        poses = torch.randn(2, t, 133)
        ids = model.encode(poses)
        assert len(ids) == 3
        assert all(i.shape == (2, t_codes) and i.dtype == torch.long for i in ids)
        assert [int(i.max()) < k for i, k in zip(ids, TINY["codebook_sizes"])] == [True] * 3
        # decode returns T rounded up to the downsampling rate; forward cuts back to T
        assert model.decode(ids).shape == (2, 4 * t_codes, 133)
        out = model(poses)
        assert out.sample.shape == (2, t, 133)
        assert [tuple(i.shape) for i in out.ids] == [(2, t_codes)] * 3
        assert out.perplexity.shape == (3,)
        # forward's ids are encode's ids (in eval mode nothing updates the codebooks)
        assert all(torch.equal(a, b) for a, b in zip(out.ids, ids))


def test_part_split_matches_skeleton_layout():
    parts = part_feature_indices("smplx133")
    assert [len(p) for p in parts] == [43, 45, 45]
    assert sorted(i for p in parts for i in p) == list(range(133))
    # upper body [0:30] + jaw [120:123] + expression [123:133]; hands [30:75] and [75:120] (smplx133 docstring)
    assert parts[0] == list(range(30)) + list(range(120, 133))
    assert parts[1] == list(range(30, 75)) and parts[2] == list(range(75, 120))
    model = tiny_model()
    assert [model.part_index(p).tolist() for p in range(3)] == parts
    # another skeleton: the parts follow its SkeletonSpec
    spec = get_skeleton("pt50")
    pt = part_feature_indices("pt50")
    assert sorted(i for p in pt for i in p) == list(range(spec.feature_dim))
    assert [len(p) for p in pt] == [
        sum(spec.joint_dims[j] for j in spec.parts[n]) for n in ("body", "left_hand", "right_hand")
    ]
    assert PartVQVAE(skeleton="pt50", **TINY).decode([torch.zeros(1, 2, dtype=torch.long)] * 3).shape == (1, 8, 150)


def test_each_part_is_decoded_only_from_its_own_ids():
    model = tiny_model()
    ids = [torch.zeros(1, 3, dtype=torch.long) for _ in range(3)]
    base = model.decode(ids)
    changed = list(ids)
    changed[1] = torch.full((1, 3), 5, dtype=torch.long)
    diff = (model.decode(changed) - base).abs().amax(dim=(0, 1))
    left = torch.tensor(part_feature_indices("smplx133")[1])
    others = torch.ones(133, dtype=torch.bool)
    others[left] = False
    assert diff[left].max() > 0 and diff[others].max() == 0


def _hand_made_quantizer(threshold=0.0):
    q = EMAQuantizer(codebook_size=2, code_dim=2, decay=0.75, dead_code_threshold=threshold)
    q.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    q.ema_cluster_size.fill_(1.0)
    q.ema_embed_sum.copy_(q.codebook)
    return q


def test_ema_moves_assigned_code_toward_encodings_and_eval_does_nothing():
    q = _hand_made_quantizer().train()
    z = torch.tensor([[[1.0, 1.0], [1.0, 1.0]]])
    valid = torch.ones(1, 2, dtype=torch.bool)
    _, ids, _, _ = q(z, valid)
    assert ids.tolist() == [[0, 0]]
    # code 0: size 0.75 * 1 + 0.25 * 2 = 1.25, sum 0.75 * 0 + 0.25 * (2, 2) = (0.5, 0.5) -> about (0.4, 0.4)
    torch.testing.assert_close(q.codebook[0], torch.tensor([0.4, 0.4]), atol=1e-3, rtol=0)
    torch.testing.assert_close(q.codebook[1], torch.tensor([10.0, 10.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(q.ema_cluster_size, torch.tensor([1.25, 0.75]))
    # padded positions are not assigned to anything
    before = q.ema_cluster_size.clone()
    q(z, torch.tensor([[True, False]]))
    torch.testing.assert_close(q.ema_cluster_size, before * 0.75 + torch.tensor([0.25, 0.0]))

    q_eval = _hand_made_quantizer().eval()
    state = {k: v.clone() for k, v in q_eval.state_dict().items()}
    q_eval(z, valid)
    assert all(torch.equal(state[k], v) for k, v in q_eval.state_dict().items())


def test_dead_code_is_reset_to_a_batch_encoding():
    q = _hand_made_quantizer(threshold=0.9).train()
    z = torch.tensor([[[1.0, 1.0], [1.5, 0.5], [0.5, 1.5]]])
    q(z, torch.ones(1, 3, dtype=torch.bool))
    # code 1 got nothing, its usage fell to 0.75 < 0.9: it now sits on one of the encodings
    assert any(torch.equal(q.codebook[1], e) for e in z[0])
    assert float(q.ema_cluster_size[1]) == 1.0
    # code 0 was used (usage 0.75 + 0.25 * 3 = 1.5, sum 0.25 * (3, 3)) and is kept as its EMA mean
    torch.testing.assert_close(q.codebook[0], torch.tensor([0.5, 0.5]), atol=1e-3, rtol=0)


def test_straight_through_gradient_reaches_encoders():
    model = tiny_model().train()
    out = model(torch.randn(2, 8, 133))
    out.recon_loss.backward()  # no commitment term: only the straight-through path links decoder and encoder
    for p in range(3):
        grads = [w.grad for w in model.encoders[p].parameters()]
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    # codebooks are buffers, never trained by gradient
    assert all(not n.startswith("quantizers") for n, _ in model.named_parameters())


def _train(lr, steps=60):
    torch.set_num_threads(1)
    model = tiny_model(seed=1, ema_decay=0.8).train()
    g = torch.Generator().manual_seed(0)
    # smooth, low-rank motion so a tiny model can fit it
    t = torch.linspace(0, 1, 16)
    basis = torch.stack([torch.sin(2 * torch.pi * f * t) for f in (1, 2)], -1)  # (16, 2)
    poses = 0.3 * torch.einsum("tk,bkf->btf", basis, torch.randn(4, 2, 133, generator=g))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    first = None
    for _ in range(steps):
        out = model(poses)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = float(out.recon_loss.detach()) if first is None else first
    model.eval()
    with torch.no_grad():
        return first, float(model(poses).recon_loss)


def test_learning_reduces_reconstruction_loss():
    first, last = _train(lr=1e-2)
    assert last < 0.5 * first, (first, last)


def test_no_learning_at_lr_zero():
    first, last = _train(lr=0.0)
    assert last > 0.8 * first, (first, last)


def test_save_load_gives_identical_ids(tmp_path):
    model = tiny_model().train()
    poses = torch.randn(2, 12, 133)
    model(poses)  # one training step moves the codebooks away from their initial values
    model.eval()
    model.save_pretrained(tmp_path)
    loaded = PartVQVAE.from_pretrained(tmp_path).eval()
    assert list(loaded.config.codebook_sizes) == list(model.config.codebook_sizes)
    for q, ql in zip(model.quantizers, loaded.quantizers):
        assert torch.equal(q.codebook, ql.codebook)
    assert all(torch.equal(a, b) for a, b in zip(model.encode(poses), loaded.encode(poses)))


def test_bad_input_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match="poses"):
        model.encode(torch.randn(1, 8, 132))
    with pytest.raises(ValueError, match="mask"):
        model(torch.randn(1, 8, 133), mask=torch.ones(1, 7, dtype=torch.bool))
    ids = model.encode(torch.randn(1, 8, 133))
    with pytest.raises(ValueError, match="ids"):
        model.decode(ids[:2])
    with pytest.raises(ValueError, match=r"ids\[1\]"):
        model.decode([ids[0], torch.full_like(ids[1], 16), ids[2]])
    with pytest.raises(ValueError, match=r"ids\[2\]"):
        model.decode([ids[0], ids[1], torch.full_like(ids[2], -1)])
    with pytest.raises(ValueError, match="codebook_sizes"):
        PartVQVAE(**{**TINY, "codebook_sizes": (8, 16)})
    with pytest.raises(ValueError, match="part_dims"):
        PartVQVAE(**TINY, part_dims=[list(range(40)), list(range(40, 90)), list(range(89, 133))])
    with pytest.raises(ValueError, match="downsample_rate"):
        PartVQVAE(**TINY, downsample_rate=3)


def test_module_names_follow_the_released_vq_layout():
    # released part VQ-VAEs (T2M-GPT / SOKE / MaDiS `VQVae`) name their weights encoder.model.<stage>.0 (stride conv),
    # encoder.model.<stage>.1.model.<j>.conv1 (Resnet1D), decoder.model.<stage>.2 (conv after upsampling) and
    # quantizer.codebook; a converter maps them onto ours by the part prefix alone
    keys = set(tiny_model(num_res_blocks=2).state_dict())
    for name in [
        "encoders.0.model.0.weight",
        "encoders.1.model.2.0.weight",
        "encoders.1.model.3.1.model.1.conv1.weight",
        "encoders.2.model.4.weight",
        "decoders.0.model.2.0.model.0.conv2.bias",
        "decoders.1.model.3.2.weight",
        "decoders.2.model.6.weight",
        "quantizers.2.codebook",
    ]:
        assert name in keys, name


def test_decode_latents_of_code_vectors_equals_decode():
    model = tiny_model()
    ids = model.encode(torch.randn(2, 8, 133))
    assert [tuple(model.codebook(p).shape) for p in range(3)] == [(8, 8), (16, 8), (16, 8)]
    latents = [model.codebook(p)[ids[p]] for p in range(3)]
    with torch.no_grad():
        torch.testing.assert_close(model.decode_latents(latents), model.decode(ids), atol=0, rtol=0)
    with pytest.raises(ValueError, match="latents"):
        model.decode_latents([latents[0], latents[1], latents[2][..., :4]])
    with pytest.raises(ValueError, match="part"):
        model.codebook(3)


def test_reverse_encoder_dilations_keeps_the_weights_and_reverses_the_encoder_order():
    """The released T2M-GPT / SOKE / MaDiS encoders run their residual dilations wide to narrow: the option holds the
    same weights, changes only the encoder's dilation order, and is off by default."""
    torch.set_num_threads(1)
    plain = tiny_model(num_res_blocks=2)
    reverse = tiny_model(num_res_blocks=2, reverse_encoder_dilations=True)
    assert not plain.config.reverse_encoder_dilations
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in reverse.state_dict().items()}
    reverse.load_state_dict(plain.state_dict())

    def dilations(stack):
        return [block.conv1.dilation[0] for block in stack.model]

    assert dilations(plain.encoders[0].model[2][1]) == [1, 3]
    assert dilations(reverse.encoders[0].model[2][1]) == [3, 1]
    assert dilations(plain.decoders[0].model[2][0]) == dilations(reverse.decoders[0].model[2][0]) == [3, 1]
    x = torch.randn(1, 16, 133, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.allclose(plain(x).sample, reverse(x).sample)
        ids = plain.encode(x)
        assert torch.equal(plain.decode(ids), reverse.decode(ids))  # the decoders are the same
