"""Every registered pipeline on inputs a new user may give it: each gets a clear `ValueError` naming the problem or
a documented behaviour (unknown words warned about and listed in `info`), never a hang, a deep torch error, NaN in
an output or a silently wrong result."""

from __future__ import annotations

import inspect
import math
import time

import numpy as np
import pytest
import torch
from robust_utils import GENERATORS, accepts, call_kwargs, known_input

from hf_sign.systems import get_system

NON_LATIN = {
    "chinese": "你好世界",
    "arabic": "مرحبا بالعالم",
    "emoji": "👋🌧️ 🙂",
    "devanagari": "नमस्ते दुनिया",
    "cyrillic": "привет мир",
}
CONTROLS = {"nul": "\x00", "bell": "\x07", "ansi_escape": "\x1b[31m", "delete": "\x7f"}


def run(pipes, name, value, **kwargs):
    pipe = pipes[name]
    inputs = {get_system(name).input_name: value, "generator": torch.Generator().manual_seed(0)}
    return pipe(**inputs, **call_kwargs(pipe), **kwargs)


@pytest.mark.parametrize("name", GENERATORS)
def test_a_known_input_gives_finite_poses_and_no_unknown_words(robust_pipes, name):
    out = run(robust_pipes, name, known_input(name))
    assert all(np.isfinite(p).all() and p.shape[0] == n > 0 for p, n in zip(out.poses, out.num_frames))
    info = out.info[0]
    assert info.get("unknown_words", info.get("unknown_glosses")) == []


@pytest.mark.parametrize("value", ["", "   ", " \t\n ", [""], ["ok", "  "]])
@pytest.mark.parametrize("name", GENERATORS)
def test_empty_and_whitespace_only(robust_pipes, name, value):
    if isinstance(value, list):
        value = [known_input(name) if v == "ok" else v for v in value]
    with pytest.raises(ValueError, match="empty"):
        run(robust_pipes, name, value)


@pytest.mark.parametrize("name", GENERATORS)
def test_a_10000_character_input_is_refused_quickly(robust_pipes, name):
    word = known_input(name).split()[0]
    text = ((word + " ") * (10000 // (len(word) + 1) + 1))[:10000]
    assert len(text) == 10000
    start = time.perf_counter()
    with pytest.raises(ValueError, match="at most"):  # never truncated, never a position-table IndexError
        run(robust_pipes, name, text)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("script", sorted(NON_LATIN))
@pytest.mark.parametrize("name", GENERATORS)
def test_non_latin_scripts_the_model_never_saw_are_refused(robust_pipes, name, script):
    # every word unknown: the output would be the same as for any other unknown text
    with pytest.raises(ValueError, match="knows"):
        run(robust_pipes, name, NON_LATIN[script])


@pytest.mark.parametrize("name", GENERATORS)
def test_unknown_words_are_warned_about_and_listed(robust_pipes, name):
    text = known_input(name) + " 你好"
    with pytest.warns(UserWarning, match="你好"):
        out = run(robust_pipes, name, text)
    info = out.info[0]
    unknown = info.get("unknown_words", info.get("unknown_glosses"))
    fraction = info.get("unknown_word_fraction", info.get("unknown_gloss_fraction"))
    assert unknown == ["你好"] and 0 < fraction < 1
    assert all(np.isfinite(p).all() for p in out.poses)


@pytest.mark.parametrize("control", sorted(CONTROLS))
@pytest.mark.parametrize("name", GENERATORS)
def test_control_characters_are_refused(robust_pipes, name, control):
    words = known_input(name).split()
    text = " ".join(words[:1] + [words[1] + CONTROLS[control]] + words[2:])
    with pytest.raises(ValueError, match="control character U\\+00"):
        run(robust_pipes, name, text)


@pytest.mark.parametrize("name", GENERATORS)
def test_nan_latents(robust_pipes, name):
    pipe = robust_pipes[name]
    if not accepts(pipe, "latents"):  # documented: no initial-noise argument, so nothing to poison
        with pytest.raises(TypeError, match="latents"):
            run(robust_pipes, name, known_input(name), latents=torch.zeros(1))
        return
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="NaN or infinite"):
            run(robust_pipes, name, known_input(name), latents=torch.full((1, 8, 133), bad))


@pytest.mark.parametrize("output_type", ["numpy", "mp4", "", None, "LATENT"])
@pytest.mark.parametrize("name", GENERATORS)
def test_wrong_output_type(robust_pipes, name, output_type):
    with pytest.raises(ValueError, match="output_type"):
        run(robust_pipes, name, known_input(name), output_type=output_type)


@pytest.mark.parametrize("name", GENERATORS)
def test_num_frames_above_the_bound_is_refused_at_once(robust_pipes, name):
    pipe = robust_pipes[name]
    limit = pipe.max_num_frames
    assert isinstance(limit, int) and limit > 0
    start = time.perf_counter()
    for n in (100000, limit + 1):
        with pytest.raises(ValueError, match="num_frames.*at most|more than"):
            run(robust_pipes, name, known_input(name), num_frames=n)
    with pytest.raises(ValueError, match="num_frames|duration_s"):
        run(robust_pipes, name, known_input(name), duration_s=1e5)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("name", GENERATORS)
def test_absurd_guidance_scale_is_refused(robust_pipes, name):
    pipe = robust_pipes[name]
    if not accepts(pipe, "guidance_scale"):
        return  # no classifier-free guidance in this system
    for bad in (1e6, 21.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="guidance_scale"):
            run(robust_pipes, name, known_input(name), guidance_scale=bad)
    out = run(robust_pipes, name, known_input(name), guidance_scale=20.0)  # the documented bound is accepted
    assert all(np.isfinite(p).all() for p in out.poses)


@pytest.mark.parametrize("name", GENERATORS)
def test_non_finite_sequences_are_never_returned(robust_pipes, name):
    pipe = robust_pipes[name]
    features = pipe.skeleton.feature_dim
    for bad in (np.full((3, features), np.nan, dtype=np.float32), torch.full((3, features), math.inf)):
        with pytest.raises(ValueError, match="NaN or infinite"):
            pipe.postprocess([bad])


def test_every_generating_system_is_covered():
    # the suite runs on the registry: a new system must join KNOWN_INPUT (robust_utils) and nothing else
    assert set(GENERATORS) >= {"sign-sald", "stable-signer", "sign-mexd", "madis"}
    for name in GENERATORS:
        known_input(name)
        assert "output_type" in inspect.signature(get_system(name).pipeline_class().__call__).parameters
