"""LoRA fine-tuning (`hf-sign finetune`) of every system of the registry that declares a `FinetuneSpec`: it learns on
a new SynthSign signer, leaves the base weights alone, saves only a small adapter that reloads to the same outputs,
and refuses bad input with a clear error."""

import inspect
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hf_sign.cli import main
from hf_sign.data.io import load_corpus
from hf_sign.pipelines.loading import load_sign_pipeline
from hf_sign.pipelines.lora import ADAPTER_WEIGHTS_NAME, load_lora_weights
from hf_sign.systems import get_system, list_systems
from hf_sign.training.finetune import LoraArguments, finetune, finetune_pipeline

SYSTEMS = [s.name for s in list_systems() if s.finetune is not None]
# base models trained as briefly as the tiny configs allow (they only need to be trained pipeline folders)
BASE_OVERRIDES = {
    "sign-sald": {"vae_training.num_train_epochs": 1, "ldm_training.num_train_epochs": 1},
    "sign-mexd": {"training.num_train_epochs": 1},
    "madis": {"tokenizer_training.num_train_epochs": 2, "pretraining.num_train_epochs": 1, "sft.num_train_epochs": 1},
    "stable-signer": {"linker_training.num_train_epochs": 1, "moe_training.num_train_epochs": 1},
}
LORA = LoraArguments(r=2, lora_alpha=4)
FINETUNE = dict(lora=LORA, learning_rate=1e-2, num_train_epochs=3, overrides={"num_threads": 1})


def test_every_generator_can_be_fine_tuned():
    assert sorted(SYSTEMS) == sorted(s.name for s in list_systems(generators_only=True))


@pytest.fixture(scope="module")
def new_signer(tmp_path_factory):
    """The tiny corpus' sentences signed by a new signer style (the variant `hf-sign data synthsign` builds)."""
    from hf_sign.data.synthsign import build_synthsign

    path = tmp_path_factory.mktemp("synthsign-slow-expansive")
    build_synthsign(
        path, seed=0, num_train=12, num_validation=2, num_test=2, show_progress=False, signer_style="slow-expansive"
    )
    return path


@pytest.fixture(scope="module")
def bases(tiny_synthsign, tmp_path_factory):
    """`{system: trained pipeline folder}`, trained on the tiny corpus."""
    out = {}
    for name in SYSTEMS:
        folder = tmp_path_factory.mktemp(f"base-{name}")
        get_system(name).run_training(tiny_synthsign, folder, config="tiny", overrides=BASE_OVERRIDES[name])
        out[name] = folder
    return out


@pytest.fixture(scope="module")
def tuned(bases, new_signer, tmp_path_factory):
    """`{system: (pipeline with its trained adapter, metrics, adapter folder)}`."""
    out = {}
    for name in SYSTEMS:
        folder = tmp_path_factory.mktemp(f"lora-{name}")
        pipe, metrics = finetune_pipeline(name, bases[name], new_signer, folder, **FINETUNE)
        out[name] = (pipe, metrics, folder)
    return out


def _generate(pipe, name, corpus_row):
    """One seeded generation from the system's input (text or gloss) of a corpus row."""
    system = get_system(name)
    value = corpus_row["text"] if system.input_name == "prompt" else list(corpus_row["gloss"])
    kwargs = {system.input_name: [value], "generator": torch.Generator().manual_seed(0), "output_type": "np"}
    if "num_inference_steps" in inspect.signature(pipe.__call__).parameters:
        kwargs["num_inference_steps"] = 2
    return np.asarray(pipe(**kwargs).poses[0])


@pytest.fixture(scope="module")
def row(new_signer):
    return load_corpus(str(new_signer))["test"][0]


@pytest.mark.parametrize("name", SYSTEMS)
def test_fine_tuning_lowers_the_loss_on_the_new_signer(tuned, name):
    metrics = tuned[name][1]
    assert metrics["loss_after"] < metrics["loss_before"], metrics
    assert metrics["global_step"] > 0 and metrics["system"] == name


@pytest.mark.parametrize("name", SYSTEMS)
def test_learning_rate_zero_learns_nothing(bases, new_signer, tmp_path, name):
    metrics = finetune(name, bases[name], new_signer, tmp_path, **{**FINETUNE, "learning_rate": 0.0})
    assert metrics["loss_after"] == metrics["loss_before"]  # B starts at 0 and never moves: the base model's loss
    assert torch.count_nonzero(torch.cat([v.flatten() for k, v in _adapter(tmp_path).items() if "lora_B" in k])) == 0


def _adapter(folder):
    return load_file(str(folder / ADAPTER_WEIGHTS_NAME))


def _base_state(component):
    """The component's weights without the adapter, under the base model's names."""
    return {
        k.replace("base_model.model.", "").replace(".base_layer", ""): v
        for k, v in component.state_dict().items()
        if "lora_" not in k
    }


@pytest.mark.parametrize("name", SYSTEMS)
def test_base_weights_are_unchanged_bit_for_bit(bases, tuned, name):
    pipe, metrics, _ = tuned[name]
    component = get_system(name).finetune.component
    trained, base = _base_state(getattr(pipe, component)), getattr(load_sign_pipeline(bases[name]), component)
    reference = base.state_dict()
    assert metrics["base_weights_unchanged"] is True
    assert set(trained) == set(reference)
    assert all(torch.equal(trained[k], reference[k]) for k in reference)


@pytest.mark.parametrize("name", SYSTEMS)
def test_adapter_save_and_load_give_identical_outputs(bases, tuned, row, name):
    pipe, _, folder = tuned[name]
    trained = _generate(pipe, name, row)
    loaded = load_sign_pipeline(bases[name])
    base = _generate(loaded, name, row)
    info = loaded.load_lora_weights(folder)
    assert info["system"] == name and info["component"] == get_system(name).finetune.component
    np.testing.assert_array_equal(_generate(loaded, name, row), trained)
    fused = load_sign_pipeline(bases[name])
    load_lora_weights(fused, folder, fuse=True)
    assert not any("lora_" in k for k in getattr(fused, info["component"]).state_dict())
    out = _generate(fused, name, row)
    if out.shape == trained.shape:  # merged weights differ from the unmerged sum in the last bits
        np.testing.assert_allclose(out, trained, atol=1e-3)
    if name != "stable-signer":  # its linker's adapter changes glosses only where the argmax flips
        assert base.shape != trained.shape or not np.array_equal(base, trained)


@pytest.mark.parametrize("name", SYSTEMS)
def test_adapter_folder_loads_as_its_base_with_the_adapter(bases, tuned, row, name, tmp_path, monkeypatch):
    """What every command that takes a model does with an adapter folder (`hf-sign generate`/`benchmark --model`)."""
    pipe, _, folder = tuned[name]
    info = json.loads((folder / "hf_sign_adapter.json").read_text())
    assert info["base_model"] == str(bases[name].resolve())
    assert info["lora"]["target_modules"] == sorted(info["lora"]["target_modules"])
    monkeypatch.chdir(tmp_path)  # the recorded base is absolute: the adapter loads from any working directory
    loaded = load_sign_pipeline(folder)
    assert type(loaded) is type(pipe)
    np.testing.assert_array_equal(_generate(loaded, name, row), _generate(pipe, name, row))


@pytest.mark.parametrize("name", SYSTEMS)
def test_only_a_small_adapter_is_saved(tuned, name):
    _, metrics, folder = tuned[name]
    assert sorted(p.name for p in folder.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "finetune_metrics.json",
        "hf_sign_adapter.json",
    ]
    weights = _adapter(folder)
    assert weights and all("lora_A" in k or "lora_B" in k for k in weights)
    assert sum(v.numel() for v in weights.values()) == metrics["adapter_parameters"]
    assert metrics["adapter_bytes"] * 4 < metrics["base_component_bytes"]
    assert json.loads((folder / "adapter_config.json").read_text())["r"] == LORA.r
    assert json.loads((folder / "finetune_metrics.json").read_text()) == metrics


def _finetune_argv(bases, new_signer, out):
    """`hf-sign finetune sign-sald` of the tiny base on the new signer into `out`."""
    model = str(bases["sign-sald"])
    return ["finetune", "sign-sald", "--model", model, "--dataset", str(new_signer), "--output-dir", str(out)]


def test_cli_finetune_and_generate_with_the_adapter(bases, new_signer, tmp_path, capsys):
    out = tmp_path / "adapter"
    options = ["--lora-r", "2", "--num-train-epochs", "1", "--set", "num_threads=1"]
    code = main([*_finetune_argv(bases, new_signer, out), *options])
    assert code == 0
    printed = capsys.readouterr().out
    assert "adapter: " in printed and "of the base component's" in printed
    code = main(
        [
            "generate",
            "--model",
            str(bases["sign-sald"]),
            "--adapter",
            str(out),
            "--text",
            load_corpus(str(new_signer))["test"][0]["text"],
            "--out",
            str(tmp_path / "gen"),
            "--format",
            "npz",
            "--num-inference-steps",
            "2",
        ]
    )
    assert code == 0 and (tmp_path / "gen" / "sample-000.npz").is_file()


# ------------------------------------------------------------------------------------------------ bad input
def test_unknown_system_and_system_without_finetuning(bases, new_signer, tmp_path):
    with pytest.raises(ValueError, match="Unknown system 'nope'"):
        finetune("nope", bases["sign-sald"], new_signer, tmp_path)
    with pytest.raises(ValueError, match="'evaluator' has no LoRA fine-tuning"):
        finetune("evaluator", bases["sign-sald"], new_signer, tmp_path)
    with pytest.raises(SystemExit):  # argparse lists the choices
        main(["finetune", "nope", "--model", "m", "--dataset", "d", "--output-dir", str(tmp_path)])


def test_model_of_another_system_is_refused(bases, new_signer, tmp_path):
    with pytest.raises(ValueError, match="holds a sign-mexd pipeline, not sign-sald"):
        finetune("sign-sald", bases["sign-mexd"], new_signer, tmp_path)
    with pytest.raises(ValueError, match="not a pipeline folder of a registered system"):
        finetune("sign-sald", new_signer, new_signer, tmp_path)
    with pytest.raises(ValueError, match="neither a pipeline folder nor a repo id"):
        finetune("sign-sald", tmp_path / "missing", new_signer, tmp_path)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(r=0), "`lora_r` must be an integer > 0"),
        (dict(r=-2), "`lora_r` must be an integer > 0"),
        (dict(lora_alpha=0), "`lora_alpha` must be > 0"),
        (dict(lora_dropout=1.0), r"`lora_dropout` must be in \[0, 1\)"),
        (dict(target_modules=[]), "`target_modules` must be a non-empty list"),
    ],
)
def test_bad_lora_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LoraArguments(**kwargs)


def test_bad_lora_arguments_from_the_cli(bases, new_signer, tmp_path, capsys):
    args = _finetune_argv(bases, new_signer, tmp_path / "out")
    assert main([*args, "--lora-r", "0"]) == 2
    assert "`lora_r` must be an integer > 0" in capsys.readouterr().err
    assert main([*args, "--target-modules", "no_such_layer"]) == 2
    err = capsys.readouterr().err
    assert "`target_modules` ['no_such_layer'] match no layer of SkeletonLatentDenoiser" in err and "to_q" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["sign-sald", "madis"])  # a diffusers and a transformers component
def test_target_modules_that_match_nothing(bases, new_signer, tmp_path, name):
    with pytest.raises(ValueError, match=r"`target_modules` \['nothing_here'\] match no layer"):
        finetune(name, bases[name], new_signer, tmp_path, lora=LoraArguments(r=2, target_modules=["nothing_here"]))


def test_adapter_of_another_system_or_no_adapter_is_refused(bases, tuned, tmp_path):
    pipe = load_sign_pipeline(bases["sign-mexd"])
    with pytest.raises(ValueError, match="adapts a SignSALDPipeline .* this pipeline is a SignMExDPipeline"):
        pipe.load_lora_weights(tuned["sign-sald"][2])
    with pytest.raises(ValueError, match="is not an hf-sign LoRA adapter folder"):
        pipe.load_lora_weights(bases["sign-sald"])


# ------------------------------------------------------------------------------------------------ the variant
def test_signer_style_variant_signs_the_same_sentences_differently(tiny_synthsign, new_signer):

    base, variant = load_corpus(str(tiny_synthsign))["train"], load_corpus(str(new_signer))["train"]
    assert base["text"] == variant["text"] and base["gloss"] == variant["gloss"]
    assert set(variant["signer"]) == {"signer_slow-expansive"}
    slower = np.mean([len(p) for p in variant["poses"]]) / np.mean([len(p) for p in base["poses"]])
    assert slower > 1.2  # the style signs at 0.65x the tempo of signers at 0.8-1.25x


def test_unknown_signer_style(tmp_path):
    from hf_sign.data.synthsign import generate_synthsign

    with pytest.raises(ValueError, match="`signer_style` must be one of"):
        generate_synthsign(num_train=2, num_validation=1, num_test=1, show_progress=False, signer_style="nope")
