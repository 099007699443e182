"""Helpers of the robustness suite: the generating systems of the registry, an input each tiny pipeline knows, and
call arguments that keep every call fast."""

from __future__ import annotations

import inspect

from hf_sign.systems import list_systems

GENERATORS = [s.name for s in list_systems(generators_only=True)]

# One input each tiny pipeline's tokenizer knows (words of the tiny corpora its components were built from). Data,
# not code: every test below runs the same code on every system.
KNOWN_INPUT = {
    "sign-sald": "where was the brother yesterday?",
    "stable-signer": "where was the brother yesterday?",
    "sign-mexd": "YESTERDAY ME STORE GO",
    "madis": "the weather tomorrow will be rainy",
}


def known_input(name: str) -> str:
    if name not in KNOWN_INPUT:
        raise AssertionError(f"add a known input for the newly registered system {name!r} to KNOWN_INPUT")
    return KNOWN_INPUT[name]


def call_kwargs(pipe) -> dict:
    """Few denoising steps where the pipeline has a fixed default (a fast call); the pipeline's own default else."""
    default = inspect.signature(pipe.__call__).parameters.get("num_inference_steps")
    if default is not None and isinstance(default.default, int) and default.default > 2:
        return {"num_inference_steps": 2}
    return {}


def accepts(pipe, name: str) -> bool:
    return name in inspect.signature(pipe.__call__).parameters
