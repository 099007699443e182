"""The command line on what a new user may type: every mistake gets one line on stderr (`hf-sign: error: ...`,
exit status 2), never a traceback. Output files are overwritten; an `--out` of the wrong kind (a file where a
folder is expected) is refused before any work."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from robust_utils import GENERATORS, known_input

from hf_sign.cli import main
from hf_sign.systems import get_system

BAD_INPUTS = {
    "empty": ("", "empty"),
    "whitespace": ("  \t ", "empty"),
    "long": (None, "at most"),
    "chinese": ("你好世界", "knows"),
    "arabic": ("مرحبا بالعالم", "knows"),
    "emoji": ("👋🙂", "knows"),
    "control": (None, "control character"),
}


def one_line_error(capsys, code) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("hf-sign: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def flag(name: str) -> str:
    return "--text" if "text" in get_system(name).conditioning else "--gloss"


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.parametrize("name", GENERATORS)
def test_generate_bad_input_is_one_line(tiny_pipeline_folders, tmp_path, capsys, name, case):
    value, match = BAD_INPUTS[case]
    word = known_input(name).split()[0]
    if case == "long":
        value = ((word + " ") * 2000)[:10000]
    elif case == "control":
        value = known_input(name) + "\x1b[31m"
    code = main(["generate", "--model", str(tiny_pipeline_folders[name]), flag(name), value, "--out", str(tmp_path)])
    assert match in one_line_error(capsys, code)
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("name", GENERATORS)
def test_generate_from_a_folder_missing_a_component(tiny_pipeline_folders, tmp_path, capsys, name):
    folder = tmp_path / "pipe"
    shutil.copytree(tiny_pipeline_folders[name], folder)
    shutil.rmtree(folder / "normalizer" if (folder / "normalizer").is_dir() else folder / "pose_bank")
    code = main(["generate", "--model", str(folder), flag(name), known_input(name), "--out", str(tmp_path / "o")])
    assert "folder: the component" in one_line_error(capsys, code)


def test_an_uncached_repo_id_offline(tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    code = main(["generate", "--model", "nobody/not-cached", "--text", "hello", "--out", str(tmp_path / "o")])
    line = one_line_error(capsys, code)
    assert "nobody/not-cached" in line and "offline" in line


def test_generate_out_naming_a_file_is_refused_before_loading(tiny_pipeline_folders, tmp_path, capsys):
    out = tmp_path / "taken.txt"
    out.write_text("keep me")
    name = GENERATORS[0]
    code = main(["generate", "--model", str(tiny_pipeline_folders[name]), flag(name), known_input(name), "--out",
                 str(out)])
    assert "is a file" in one_line_error(capsys, code) and out.read_text() == "keep me"


def test_render_overwrites_its_output_file(tmp_path, capsys):
    from hf_sign.render import save_npz

    src = save_npz(tmp_path / "in.npz", np.zeros((3, 133), np.float32), "smplx133", 24.0, text="t")
    out = tmp_path / "out.gif"
    out.write_bytes(b"old")
    assert main(["render", str(src), "--out", str(out)]) == 0
    assert out.read_bytes()[:3] == b"GIF"


@pytest.mark.parametrize("content", ["object", "not_a_zip"])
def test_render_a_non_array_npz(tmp_path, capsys, content):
    path = tmp_path / "x.npz"
    if content == "object":
        np.savez(path, poses=np.array([{"a": 1}], dtype=object), representation=np.array("smplx133"), fps=24.0)
    else:
        path.write_bytes(b"not a zip archive")
    line = one_line_error(capsys, main(["render", str(path), "--out", str(tmp_path / "o.gif")]))
    assert "allow_pickle" not in line and ("non-array" in line or "not a .npz" in line)


def test_pose_dir_with_every_item_invalid(tmp_path, capsys):
    src = tmp_path / "poses"
    (src / "clips").mkdir(parents=True)
    for i in range(2):
        (src / "clips" / f"bad{i}.pose").write_bytes(b"\x00garbage")
    (src / "metadata.csv").write_text("path,text\nclips/bad0.pose,a\nclips/bad1.pose,b\n", encoding="utf-8")
    out = tmp_path / "out"
    code = main(["data", "convert", "pose-dir", str(src), "--out", str(out), "--skip-invalid"])
    assert "every item was invalid" in one_line_error(capsys, code)
    report = (out / "skipped.jsonl").read_text().splitlines()
    assert len(report) == 2 and not (out / "data").exists()


def test_pose_dir_without_its_csv_names_the_flag(tmp_path, capsys):
    (tmp_path / "poses").mkdir()
    code = main(["data", "convert", "pose-dir", str(tmp_path / "poses"), "--out", str(tmp_path / "out")])
    assert "--csv" in one_line_error(capsys, code)
