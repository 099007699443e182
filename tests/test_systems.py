"""The system registry: a toy system registered here (a few dozen lines) runs through `hf-sign train`, `generate`,
`models params` and `benchmark` without the CLI knowing it; registry errors and lookups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Union

import numpy as np
import pytest
import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.utils.torch_utils import randn_tensor

from hf_sign.cli import main
from hf_sign.data.io import load_corpus, split_rows
from hf_sign.data.synthsign import build_synthsign
from hf_sign.pipelines.pipeline_utils import SignPipeline
from hf_sign.systems import (
    SignSystem,
    get_system,
    list_systems,
    register_system,
    system_for_pipeline,
    unregister_system,
)


# ------------------------------------------------------------------------------------------------ the toy system
class ToyPoseModel(ModelMixin, ConfigMixin):
    """The mean training frame and the mean length, as a diffusers model."""

    @register_to_config
    def __init__(self, feature_dim: int = 133, num_frames: int = 12):
        super().__init__()
        self.mean = torch.nn.Parameter(torch.zeros(feature_dim))


class ToyPipeline(SignPipeline):
    _hub_entry_file = "pipeline_toy"

    def __init__(self, model: ToyPoseModel, fps: float = 24.0, skeleton: str = "smplx133"):
        super().__init__()
        self.register_modules(model=model)
        self.register_to_config(fps=float(fps), skeleton=skeleton)

    @torch.no_grad()
    def __call__(self, prompt: Union[str, List[str]], num_frames=None, generator=None, output_type="np",
                 return_dict=True, duration_s=None):
        prompts = self.check_prompt(prompt)
        self.check_common_inputs(len(prompts), num_frames, duration_s, generator, output_type)
        lengths = (
            self.requested_num_frames(len(prompts), num_frames, duration_s)
            or [self.model.config.num_frames] * len(prompts)
        )
        poses = []
        for i, n in enumerate(lengths):
            g = generator[i] if isinstance(generator, list) else generator
            poses.append(self.model.mean + 0.01 * randn_tensor((n, self.model.config.feature_dim), generator=g))
        return self.finish(self.postprocess(poses, output_type), return_dict)


def train_toy(dataset_dir: str, output_dir: str, config: str = "tiny", seed: Optional[int] = None):
    rows = split_rows(load_corpus(dataset_dir)["train"], "train")
    frames = np.concatenate([r["poses"] for r in rows])
    model = ToyPoseModel(feature_dim=frames.shape[1], num_frames=int(np.mean([len(r["poses"]) for r in rows])))
    with torch.no_grad():
        model.mean.copy_(torch.from_numpy(frames.mean(0)))
    ToyPipeline(model).save_pretrained(output_dir)
    (Path(output_dir) / "metrics.json").write_text(json.dumps({"config": config, "seed": seed}))
    return output_dir


@pytest.fixture
def toy_system():
    system = register_system(SignSystem(
        name="toy", train=train_toy, pipeline=ToyPipeline, stages=("fit",), default_config="tiny",
        param_report=lambda config="tiny": {"model": 133, "config": config},
    ))
    yield system
    unregister_system("toy")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth_toy")
    build_synthsign(path, seed=0, num_train=16, num_validation=2, num_test=3, show_progress=False)
    return path


# ------------------------------------------------------------------------------------------------ tests
def test_toy_system_through_the_cli(toy_system, corpus, tmp_path, capsys):
    model, evals, bench = tmp_path / "toy", tmp_path / "evals", tmp_path / "bench"
    assert main(["train", "toy", "--dataset", str(corpus), "--output-dir", str(model), "--seed", "3"]) == 0
    assert json.loads(capsys.readouterr().out.split("\nwrote")[0]) == {"config": "tiny", "seed": 3}
    assert system_for_pipeline(model) is toy_system
    assert main(["generate", "--model", str(model), "--text", "my sister is tall", "--out", str(tmp_path / "gen"),
                 "--format", "npz", "--num-frames", "9"]) == 0
    z = np.load(tmp_path / "gen" / "sample-000.npz", allow_pickle=False)
    assert z["poses"].shape == (9, 133) and str(z["representation"]) == "smplx133"
    rows = split_rows(load_corpus(str(corpus))["train"], "train")
    mean = np.concatenate([r["poses"] for r in rows]).mean(0)
    assert np.abs(z["poses"] - mean).max() < 0.1  # the toy's output: the mean frame plus 1% noise
    capsys.readouterr()
    assert main(["models", "params", "toy", "--config", "x"]) == 0
    assert json.loads(capsys.readouterr().out) == {"model": 133, "config": "x"}
    assert main(["train", "evaluator", "--config", "tiny", "--dataset", str(corpus), "--output-dir", str(evals)]) == 0
    assert main(["benchmark", "--dataset", str(corpus), "--evaluator", str(evals), "--model", f"Toy={model}",
                 "--out", str(bench), "--max-samples", "2", "--num-examples", "0", "--no-baselines"]) == 0
    results = json.loads((bench / "results.json").read_text())
    names = [s["name"] for s in results["systems"]]
    assert names == ["Ground Truth", "Toy"]


def test_stage_and_option_errors(toy_system, corpus, tmp_path, capsys):
    assert main(["train", "toy", "--dataset", str(corpus), "--output-dir", str(tmp_path), "--stage", "vae"]) == 2
    assert "not a stage of 'toy'" in capsys.readouterr().err
    # the toy trainer takes no overrides: refused by name, never dropped
    assert main(["train", "toy", "--dataset", str(corpus), "--output-dir", str(tmp_path), "--set", "a.b=1"]) == 2
    assert "`overrides` does not apply" in capsys.readouterr().err


def test_registry_lookups_and_errors(toy_system):
    assert get_system("sign-sald").pipeline_class().__name__ == "SignSALDPipeline"
    assert get_system("sign-sald").stages == ("vae", "ldm") and get_system("sign-sald").input_name == "prompt"
    assert "toy" in [s.name for s in list_systems(generators_only=True)]
    assert "evaluator" not in [s.name for s in list_systems(generators_only=True)]
    assert system_for_pipeline("SignSALDPipeline").name == "sign-sald" and system_for_pipeline("Nope") is None
    with pytest.raises(ValueError, match="already registered"):
        register_system(SignSystem(name="toy", train=train_toy))
    with pytest.raises(ValueError, match="Unknown system 'nope'"):
        get_system("nope")
    with pytest.raises(ValueError, match="conditioning"):
        SignSystem(name="bad", train=train_toy, conditioning=("video",))
    with pytest.raises(ValueError, match="lower-case"):
        SignSystem(name="Bad Name", train=train_toy)
    with pytest.raises(ValueError, match="no pipeline"):
        get_system("evaluator").pipeline_class()


def test_every_registered_system_resolves():
    """Every reference in the registry imports (a typo in a 'module:attr' string fails here, not in a user's run)."""
    from hf_sign.systems import _resolve

    for system in list_systems():
        assert callable(_resolve(system.train)), system.name
        if system.generates:
            assert isinstance(system.pipeline_class(), type), system.name
        if system.param_report is not None:
            assert callable(_resolve(system.param_report)), system.name
        assert system.config_folder().is_dir() and system.default_config in system.list_configs(), system.name
