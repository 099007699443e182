"""`SignMExDPipeline` on tiny untrained components (CPU, one thread): the shared pipeline tests (`PipelineTesterMixin`:
determinism, batch vs single, every scheduler that takes x0 predictions, save/load, components, dtype, output types,
shared bad inputs, the hand-written reference loop), then what only Sign-MExD has: gloss input forms, unknown and
empty glosses, the length model, routing statistics, and text through an attached Stable Signer linker."""

from __future__ import annotations

import json

import diffusers
import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from pipeline_tester_mixin import GAUSSIAN_SCHEDULERS, DiffusionPipelineTesterMixin, assert_differ, assert_same, gen

from hf_sign.data.normalization import PoseNormalizer
from hf_sign.models.sign_mexd import SignMExDTransformer, build_gloss_encoder, build_gloss_tokenizer
from hf_sign.pipelines.pipeline_sign_mexd import SignMExDPipeline, gloss_layout
from hf_sign.systems import get_system
from hf_sign.training.stable_signer_linker import LinkerSettings, build_linker

GLOSSES = ["YESTERDAY ME STORE GO", "YOU COFFEE LIKE QUESTION", "TOMORROW WEATHER RAIN", "MY SISTER TALL"]
TEXTS = ["i went to the store yesterday", "do you like coffee?", "the weather tomorrow will be rainy",
         "my sister is tall"]
DURATIONS = {"YESTERDAY": 7.0, "ME": 5.0, "STORE": 8.0, "GO": 6.0, "RAIN": 9.0}
STEPS = 2
# the diffusers schedulers that cannot step an x0 prediction
NO_SAMPLE_PREDICTION = ("PNDMScheduler", "EulerAncestralDiscreteScheduler", "KDPM2DiscreteScheduler",
                        "KDPM2AncestralDiscreteScheduler")


def make_components(seed: int = 0, **transformer_kwargs) -> dict:
    torch.manual_seed(seed)
    tokenizer = build_gloss_tokenizer(GLOSSES, model_max_length=12)
    text_encoder = build_gloss_encoder(tokenizer, 16, 1, 2, 32, 12).eval()
    kwargs = dict(hidden_dim=32, num_layers=2, num_heads=2, ffn_dim=64, num_experts=2, moe_layers=[1], max_frames=96)
    transformer = SignMExDTransformer(pose_dim=133, cross_attention_dim=16, **{**kwargs, **transformer_kwargs})
    normalizer = PoseNormalizer.fit([np.random.default_rng(seed).normal(0, 0.2, (30, 133))], representation="smplx133")
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False, steps_offset=1,
                              set_alpha_to_one=False, prediction_type="sample")
    return dict(transformer=transformer.eval(), text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
                normalizer=normalizer, gloss_durations=DURATIONS, default_gloss_duration=6.0, length_offset=4.0,
                transition_frames=1.5)


def make_pipe(**transformer_kwargs) -> SignMExDPipeline:
    pipe = SignMExDPipeline(**make_components(**transformer_kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe


class TestSignMExDPipeline(DiffusionPipelineTesterMixin):
    pipeline_class = SignMExDPipeline
    input_name = "gloss"
    input_keys = ("num_frames", "duration_s", "num_inference_steps")  # no classifier-free guidance in the paper

    def get_dummy_components(self):
        return make_components()

    def get_inputs(self, num_prompts=1, seed=0, **overrides):
        inputs = {"gloss": GLOSSES[:num_prompts] if num_prompts > 1 else GLOSSES[0], "num_inference_steps": STEPS}
        inputs.update({k: v for k, v in overrides.items() if k in self.input_keys})
        return inputs

    def reference_call(self, pipe, inputs):
        """Each gloss string alone, unpadded, tokenised as a plain string: encode, predict x0, step DDIM,
        de-standardise (there is no guidance here, so the mixin's guidance scale is not passed on)."""
        out = []
        for gloss, n, g in zip(inputs["gloss"], inputs["num_frames"], inputs["generator"]):
            states = pipe.text_encoder(**pipe.tokenizer(gloss, return_tensors="pt")).last_hidden_state
            scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
            scheduler.set_timesteps(inputs["num_inference_steps"])
            x = torch.randn((1, n, 133), generator=g) * scheduler.init_noise_sigma
            for t in scheduler.timesteps:
                x = scheduler.step(pipe.transformer(x, t, encoder_hidden_states=states).sample, t, x).prev_sample
            out.append(pipe.normalizer.denormalize(x[0]).detach().numpy())
        return out

    @pytest.mark.parametrize("scheduler_name", GAUSSIAN_SCHEDULERS)
    def test_scheduler_swap(self, scheduler_name):
        if scheduler_name not in NO_SAMPLE_PREDICTION:
            return super().test_scheduler_swap(scheduler_name)
        pipe = self.get_pipe()  # these take epsilon or v predictions only: diffusers refuses x0, naming it
        pipe.scheduler = getattr(diffusers, scheduler_name).from_config(pipe.scheduler.config)
        with pytest.raises((ValueError, NotImplementedError), match="prediction_type"):
            pipe(**self.get_inputs(1, num_frames=8, num_inference_steps=4), generator=gen(0))


@pytest.fixture(scope="module")
def pipe():
    return make_pipe()


def run(pipe, gloss=GLOSSES[0], **kw):
    kw.setdefault("num_inference_steps", STEPS)
    kw.setdefault("generator", gen(0))
    return pipe(gloss=gloss, **kw)


# ------------------------------------------------------------------------------------------------ the registry
def test_registered_as_a_gloss_system():
    system = get_system("sign-mexd")
    assert system.pipeline_class() is SignMExDPipeline and system.input_name == "gloss"
    assert system.conditioning == ("gloss",) and system.stages == ("diffusion",)
    assert system.demo_repo_id == "hf-sign/sign-mexd-synthsign" and "small" in system.list_configs()


# ------------------------------------------------------------------------------------------------ glosses
def test_gloss_input_forms_agree(pipe):
    by_string = run(pipe, GLOSSES[2], num_frames=9).poses
    assert_same(run(pipe, [GLOSSES[2]], num_frames=9).poses, by_string, atol=0)
    assert_same(run(pipe, [GLOSSES[2].split()], num_frames=9).poses, by_string, atol=0)
    assert_same(run(pipe, GLOSSES[2].lower(), num_frames=9).poses, by_string, atol=0)  # glosses are case-blind
    out = run(pipe, [GLOSSES[0], GLOSSES[2].split()], num_frames=[6, 9], generator=[gen(0), gen(1)])
    assert [i["glosses"] for i in out.info] == [GLOSSES[0].split(), GLOSSES[2].split()]


def test_unknown_glosses_become_unk_and_are_listed(pipe):
    out = run(pipe, "YESTERDAY ZEPPELIN GO [PAD]", num_frames=10)
    info = out.info[0]
    assert info["glosses"] == ["YESTERDAY", "ZEPPELIN", "GO", "[PAD]"]
    assert info["unknown_glosses"] == ["ZEPPELIN", "[PAD]"]  # a special token spelled as a gloss is no sign either
    # encoded as [UNK], not dropped: the same as spelling [UNK] out, unlike leaving the glosses away
    assert_same(run(pipe, "YESTERDAY [UNK] GO [UNK]", num_frames=10).poses, out.poses, atol=0)
    assert_differ(run(pipe, "YESTERDAY GO", num_frames=10).poses, out.poses)
    assert run(pipe, GLOSSES[0]).info[0]["unknown_glosses"] == []


@pytest.mark.parametrize(
    "gloss, match",
    [
        ("", "empty"),
        ("   ", "empty"),
        ([[]], "empty"),
        ([GLOSSES[0], ""], r"gloss\[1\]` is empty"),
        ([["RAIN", " "]], "empty gloss"),
        ([], "gloss"),
        ([3], r"gloss\[0\]` must be a string"),
        ("RAIN " * 11, "takes at most 12"),  # 11 glosses + [BOS] + [EOS] > model_max_length: never truncated
    ],
)
def test_bad_glosses(pipe, gloss, match):
    with pytest.raises(ValueError, match=match):
        run(pipe, gloss)


# ------------------------------------------------------------------------------------------------ lengths
def test_length_model_sets_frames_and_spans(pipe):
    out = run(pipe, [GLOSSES[0], "RAIN ZEPPELIN"])
    # 4 + 1.5 * 3 + (7 + 5 + 8 + 6) = 34.5 -> 34 (round half to even); 4 + 1.5 + 9 + 6 (default) = 20.5 -> 20
    assert out.num_frames == [34, 20] and [p.shape for p in out.poses] == [(34, 133), (20, 133)]
    spans = out.info[0]["gloss_spans"]
    assert spans[0][0] == 2 and spans == sorted(spans) and all(a < b <= 34 for a, b in spans)
    assert [b - a for a, b in spans] == [7, 5, 8, 6]
    n, stretched = gloss_layout([7.0, 5.0, 8.0, 6.0], 4.0, 1.5, num_frames=69)  # twice as long: spans scale
    assert n == 69 and [b - a for a, b in stretched] == [14, 10, 16, 12]
    assert run(pipe, GLOSSES[0], num_frames=69).info[0]["gloss_spans"] == stretched
    assert gloss_layout([1.0] * 5, 0.0, 0.0, num_frames=3)[1][-1] == [2, 3]  # squeezed: still inside the sequence
    long = make_pipe(max_frames=30)
    assert run(long, GLOSSES[0]).num_frames == [30]  # the prediction is capped at the transformer's max_frames
    with pytest.raises(ValueError, match="at most 30"):
        run(long, GLOSSES[0], num_frames=31)
    assert run(pipe, GLOSSES[:2], duration_s=0.5).num_frames == [12, 12]  # round(0.5 s * 24 fps)


def test_given_latents_match_the_generator(pipe):
    noise = torch.randn(1, 12, 133, generator=gen(5))
    out = run(pipe, latents=noise, generator=None)
    assert out.num_frames == [12]
    assert_same(out.poses, run(pipe, num_frames=12, generator=gen(5)).poses, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected \(1, 16, 133\)"):
        run(pipe, num_frames=16, latents=noise)


# ------------------------------------------------------------------------------------------------ routing
def test_routing_statistics_per_sequence(pipe):
    out = run(pipe, GLOSSES[:2], num_frames=[9, 16], generator=[gen(1), gen(2)], return_routing=True)
    for k, n in enumerate([9, 16]):
        routing = out.info[k]["routing"]
        (layer,) = routing["layers"]  # one MoE layer (block 1)
        counts = np.array(layer["expert_frame_counts"])
        assert routing["num_steps"] == STEPS and counts.shape == (n, 2) and layer["routing"] == "expert_choice"
        assert layer["capacity"] == n  # C = floor(n * 2.0 / 2), from the sequence's own frames, padding excluded
        assert counts.sum(0).tolist() == layer["tokens_per_expert"] == [n * STEPS] * 2
        alone = run(pipe, GLOSSES[k], num_frames=n, generator=gen(1 + k), return_routing=True)
        assert alone.info[0]["routing"] == routing  # a padded batch routes each sequence as it is routed alone
    assert "routing" not in run(pipe).info[0]


def test_routing_of_other_models():
    four = make_pipe(num_experts=4)
    layer = run(four, num_frames=10, return_routing=True).info[0]["routing"]["layers"][0]
    counts = np.array(layer["expert_frame_counts"])
    assert layer["capacity"] == 5 and layer["tokens_per_expert"] == [5 * STEPS] * 4  # C = floor(10 * 2 / 4)
    assert counts.max() <= STEPS and counts.sum() == 4 * 5 * STEPS
    token = make_pipe(num_experts=4, routing="token_choice", top_k=1)
    layer = run(token, num_frames=10, return_routing=True).info[0]["routing"]["layers"][0]
    assert (np.array(layer["expert_frame_counts"]).sum(1) == STEPS).all() and layer["capacity"] is None
    dense = make_pipe(num_experts=0)
    assert run(dense, num_frames=10, return_routing=True).info[0]["routing"]["layers"] == []
    with pytest.raises(ValueError, match="capacity"):  # 16 experts cannot split 3 frames: the model says so
        run(make_pipe(num_experts=16), num_frames=3)


# ------------------------------------------------------------------------------------------------ linker
def tiny_linker():
    """A tiny linker fitted to the four sentences (a few dozen steps), so that different prompts get different
    glosses."""
    torch.manual_seed(0)
    rows = [{"text": t, "gloss": g.split()} for t, g in zip(TEXTS, GLOSSES)]
    settings = LinkerSettings(d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2,
                              dropout_rate=0.0, max_gloss_length=6)
    linker, tokenizer = build_linker(settings, rows, ["synth"])
    enc = tokenizer([linker.format_input(t) for t in TEXTS], padding=True, return_tensors="pt")
    labels = [linker.encode_glosses(tokenizer, g.split())[0] for g in GLOSSES]
    labels = torch.tensor([ids + [-100] * (6 - len(ids)) for ids in labels])
    optimizer = torch.optim.Adam(linker.parameters(), lr=3e-2)
    for _ in range(60):
        linker(**enc, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return linker.eval(), tokenizer


def test_prompt_needs_a_linker(pipe):
    with pytest.raises(ValueError, match="conditioned on glosses.*attach_linker"):
        pipe(prompt=TEXTS[0])
    with pytest.raises(ValueError, match="conditioned on glosses"):
        pipe()
    with pytest.raises(ValueError, match="holds no text-to-gloss linker"):
        make_pipe().attach_linker("/nonexistent")


def test_prompt_through_an_attached_linker(tmp_path):
    linker, tokenizer = tiny_linker()
    pipe = make_pipe().attach_linker(linker, tokenizer)
    with pytest.raises(ValueError, match="not both"):
        pipe(prompt=TEXTS[0], gloss=GLOSSES[0])
    out = pipe(prompt=TEXTS[:2], num_frames=[8, 10], num_inference_steps=STEPS, generator=[gen(0), gen(1)])
    linked = pipe.link(TEXTS[:2], ["synth", "synth"])
    assert [i["glosses"] for i in out.info] == linked == [g.split() for g in GLOSSES[:2]]
    assert [i["prompt"] for i in out.info] == TEXTS[:2]
    by_gloss = pipe(gloss=linked, num_frames=[8, 10], num_inference_steps=STEPS, generator=[gen(0), gen(1)])
    assert_same(out.poses, by_gloss.poses, atol=0)
    with pytest.raises(ValueError, match="language"):
        pipe(prompt=TEXTS[0], language="dgs")
    # attached from a Stable Signer folder (its `linker/` and `tokenizer/`), or when loading
    linker.save_pretrained(tmp_path / "stable-signer" / "linker")
    tokenizer.save_pretrained(tmp_path / "stable-signer" / "tokenizer")
    fresh = make_pipe().attach_linker(tmp_path / "stable-signer")
    assert fresh.link(TEXTS[:2], ["synth", "synth"]) == linked
    make_pipe().save_pretrained(tmp_path / "mexd")
    loaded = SignMExDPipeline.from_pretrained(tmp_path / "mexd", linker=linker, linker_tokenizer=tokenizer)
    loaded.set_progress_bar_config(disable=True)
    again = loaded(prompt=TEXTS[:2], num_frames=[8, 10], num_inference_steps=STEPS, generator=[gen(0), gen(1)])
    assert_same(again.poses, out.poses, atol=1e-6)
    # saved with the linker, it comes back with it
    pipe.save_pretrained(tmp_path / "with-linker")
    index = json.loads((tmp_path / "with-linker" / "model_index.json").read_text())
    assert index["linker"] == ["linker", "SignLinkerForConditionalGeneration"]
    reloaded = SignMExDPipeline.from_pretrained(tmp_path / "with-linker")
    assert reloaded.link(TEXTS[:2], ["synth", "synth"]) == linked


# ------------------------------------------------------------------------------------------------ the rest
def test_saved_folder_layout(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_sign_mexd", "SignMExDPipeline"]
    assert index["transformer"] == ["transformer", "SignMExDTransformer"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert index["scheduler"][1] == "DDIMScheduler" and index["linker"] == [None, None]
    assert index["gloss_durations"] == DURATIONS and index["length_offset"] == 4.0 and index["skeleton"] == "smplx133"
    loaded = SignMExDPipeline.from_pretrained(tmp_path)
    assert loaded.config.gloss_durations == DURATIONS and loaded.config.transition_frames == 1.5


def test_num_sequences_and_callback(pipe):
    out = run(pipe, GLOSSES[:2], num_frames=[6, 9], num_sequences_per_prompt=2, generator=[gen(i) for i in range(4)])
    assert out.num_frames == [6, 6, 9, 9] and out.info[1]["glosses"] == out.info[0]["glosses"]
    assert_differ(out.poses[:1], out.poses[1:2])
    assert_same(out.poses[3:], run(pipe, GLOSSES[1], num_frames=9, generator=gen(3)).poses, atol=1e-5)
    seen = []

    def callback(p, step, t, kwargs):
        seen.append(step)
        return {"latents": torch.zeros_like(kwargs["latents"])} if step == STEPS - 1 else {}

    zeros = run(pipe, num_frames=8, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents"])
    assert seen == list(range(STEPS))
    np.testing.assert_allclose(zeros.poses[0], np.broadcast_to(pipe.normalizer.mean.numpy(), (8, 133)), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_inference_steps=0), "num_inference_steps"),
        (dict(latents=torch.zeros(1, 8, 5)), r"latents` must be a tensor \(batch, num_frames, 133\)"),
        (dict(output_type="latent"), "output_type"),
        (dict(callback_on_step_end=print, callback_on_step_end_tensor_inputs=["noise"]), "tensor_inputs"),
    ],
)
def test_bad_inputs(pipe, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run(pipe, **kwargs)


def test_scheduler_prediction_type_must_be_sample():
    bad = make_pipe()
    bad.scheduler = DDIMScheduler.from_config(bad.scheduler.config, prediction_type="epsilon")
    with pytest.raises(ValueError, match="predicts the clean poses"):
        run(bad)
