"""Broken pipeline folders, for every registered system and every way of loading one (the pipeline's own class through
the registry, `load_sign_pipeline` as the CLI does, plain `DiffusionPipeline` with remote code): a `ValueError`
naming the component, never diffusers' "pass trust_remote_code=True", a sentencepiece hint or a safetensors error,
and never a pipeline silently built from library defaults."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from diffusers import DiffusionPipeline
from robust_utils import GENERATORS

from hf_sign.pipelines.loading import load_sign_pipeline
from hf_sign.systems import get_system

LOADERS = {
    "own_class": lambda name, folder: get_system(name).pipeline_class().from_pretrained(str(folder)),
    "load_sign_pipeline": lambda name, folder: load_sign_pipeline(folder),
    "remote_code": lambda name, folder: DiffusionPipeline.from_pretrained(str(folder), trust_remote_code=True),
}


def components(folder: Path) -> dict:
    """`{name: class name}` of the components `model_index.json` lists."""
    index = json.loads((folder / "model_index.json").read_text())
    return {
        k: v[1] for k, v in index.items() if not k.startswith("_") and isinstance(v, list) and len(v) == 2 and v[0]
    }


def refused(name, folder, match):
    for loader in LOADERS.values():
        with pytest.raises(ValueError, match=match):
            loader(name, folder)


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("name", GENERATORS)
def test_intact_folders_load(tiny_pipeline_folders, name, loader):
    pipe = LOADERS[loader](name, tiny_pipeline_folders[name])
    assert type(pipe) is get_system(name).pipeline_class()


@pytest.mark.parametrize("name", GENERATORS)
def test_a_missing_component_folder_is_named(folder_copy, robust_pipes, name):
    folder = folder_copy(name)
    for component in components(folder):
        shutil.move(folder / component, folder / f"{component}.moved")
        refused(name, folder, f"no `{component}/` folder: the component `{component}`")
        # passed to `from_pretrained` as an object, the component need not be in the folder (diffusers' convention)
        given = {component: robust_pipes[name].components[component]}
        assert getattr(get_system(name).pipeline_class().from_pretrained(str(folder), **given), component) is (
            given[component]
        )
        shutil.move(folder / f"{component}.moved", folder / component)


@pytest.mark.parametrize("name", GENERATORS)
def test_a_tokenizer_folder_without_its_files_is_named(folder_copy, name):
    folder = folder_copy(name)
    tokenizers = [c for c, cls in components(folder).items() if "Tokenizer" in cls]
    assert tokenizers
    for component in tokenizers:
        (folder / component / "tokenizer.json").unlink()
        refused(name, folder, f"/{component}` has no `tokenizer.json`: the tokenizer folder")


@pytest.mark.parametrize("damage", ["truncated", "header", "empty"])
@pytest.mark.parametrize("name", GENERATORS)
def test_truncated_or_corrupted_weights_are_named(folder_copy, name, damage):
    folder = folder_copy(name)
    files = sorted(folder.glob("*/*.safetensors"))
    assert files
    for path in files:
        data = path.read_bytes()
        broken = {"truncated": data[: len(data) - 64], "header": b"\xff" * 8 + data[8:], "empty": b""}[damage]
        path.write_bytes(broken)
        refused(name, folder, f"{path.parent.name}/{path.name}` is truncated or corrupted")
        path.write_bytes(data)


def _configs(folders) -> list:
    """`(system, component, class name, config path)` of every component saved with a `config.json`."""
    out = []
    for name, folder in folders.items():
        for component, cls in components(Path(folder)).items():
            if (Path(folder) / component / "config.json").is_file():
                out.append((name, component, cls, Path(folder) / component / "config.json"))
    return out


@pytest.mark.parametrize("name", GENERATORS)
def test_a_config_of_another_system_is_refused(folder_copy, tiny_pipeline_folders, name):
    folder = folder_copy(name)
    others = [c for c in _configs(tiny_pipeline_folders) if c[0] != name]
    checked = 0
    for component, cls in components(folder).items():
        own = folder / component / "config.json"
        if not own.is_file():
            continue
        original = own.read_text()
        kind = "model_type" if "model_type" in json.loads(original) else "_class_name"
        foreign = next((c for c in others if c[2] != cls and kind in json.loads(c[3].read_text())), None)
        if foreign is None:
            continue
        own.write_text(foreign[3].read_text())  # e.g. MaDiS' LM config where the CLIP text encoder's was
        refused(name, folder, "config of|model_type")
        own.write_text(original)
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize("name", GENERATORS)
def test_the_index_of_another_system_is_refused(folder_copy, tiny_pipeline_folders, name):
    folder = folder_copy(name)
    other = next(n for n in GENERATORS if n != name)
    shutil.copy(Path(tiny_pipeline_folders[other]) / "model_index.json", folder / "model_index.json")
    theirs = get_system(other).pipeline_class().__name__
    with pytest.raises(ValueError, match=f"holds a pipeline of class {theirs}"):
        LOADERS["own_class"](name, folder)
    with pytest.raises(ValueError):  # loaded as the other system's class: its components are missing here
        load_sign_pipeline(folder)


@pytest.mark.parametrize("name", GENERATORS)
def test_a_scheduler_folder_of_another_class_is_refused(folder_copy, name):
    folder = folder_copy(name)
    for component, cls in components(folder).items():
        config = folder / component / "scheduler_config.json"
        if not config.is_file():
            continue
        other = "EulerDiscreteScheduler" if cls != "EulerDiscreteScheduler" else "DDIMScheduler"
        data = json.loads(config.read_text())
        config.write_text(json.dumps({**data, "_class_name": other}))
        # diffusers alone would build `cls` with library defaults and drop the saved schedule
        refused(name, folder, f"holds the config of {other}.*records `{component}` as {cls}")
        config.write_text(json.dumps(data))
