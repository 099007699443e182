"""The `hf-sign` command line, driven in-process through `hf_sign.cli.main`."""

import json

import datasets
import imageio.v3 as iio
import numpy as np
from pose_format import Pose

from hf_sign.cli import main
from hf_sign.render import save_npz
from hf_sign.skeletons.smplx133 import pose_features, rest_pose_features


def _wave(num_frames=12):
    """Rest pose with the left elbow flexing over time: a moving smplx133 sequence."""
    rest = rest_pose_features()
    frames = [pose_features(rest, left_elbow=(0.0, -0.3 - 1.5 * t / num_frames, 0.0)) for t in range(num_frames)]
    return np.stack(frames).astype(np.float32)


def test_skeletons_lists_every_spec(capsys):
    assert main(["skeletons"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    by_name = {line["name"]: line for line in lines}
    assert {"smplx133", "holistic", "pt50"} <= set(by_name)
    assert by_name["smplx133"]["feature_dim"] == 133 and by_name["smplx133"]["position_joints"] == 54
    assert len(by_name["smplx133"]["atomic_joints"]["7"]) == 7


def test_render_npz_to_gif_mp4_and_pose(tmp_path, capsys):
    poses = _wave()
    save_npz(tmp_path / "x.npz", poses, "smplx133", 24.0, text="a wave")
    assert main(["render", str(tmp_path / "x.npz"), "--out", str(tmp_path / "x.gif")]) == 0
    assert "a wave" in capsys.readouterr().out
    gif = iio.imread(tmp_path / "x.gif")
    assert gif.ndim == 4 and gif.shape[0] >= 2  # a moving arm gives several distinct frames
    assert main(["render", str(tmp_path / "x.npz"), "--out", str(tmp_path / "x.mp4"),
                 "--reference", str(tmp_path / "x.npz")]) == 0
    mp4 = iio.imread(tmp_path / "x.mp4")
    assert mp4.shape[0] == 12 and mp4.shape[2] >= 2 * mp4.shape[1] - 2  # two panels side by side
    assert main(["render", str(tmp_path / "x.npz"), "--out", str(tmp_path / "x.pose")]) == 0
    pose = Pose.read((tmp_path / "x.pose").read_bytes())
    assert pose.body.data.shape[0] == 12 and pose.body.fps == 24.0
    assert pose.body.data.shape[2] == 586  # MediaPipe Holistic layout (hf_sign.render.pose_export)


def test_user_errors_are_one_line(tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", poses=np.zeros((3, 133), np.float32))  # no `representation`
    assert main(["render", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "y.gif")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hf-sign: error:") and "representation" in err
    save_npz(tmp_path / "ok.npz", _wave(), "smplx133", 24.0)
    assert main(["render", str(tmp_path / "ok.npz"), "--out", str(tmp_path / "y.avi")]) == 2
    assert ".gif" in capsys.readouterr().err


def test_convert_phoenix_skels_with_skip_invalid(tmp_path, capsys):
    src = tmp_path / "pt"
    src.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 2), ("dev", 1), ("test", 1)):
        lines = []
        for i in range(n):
            frames = rng.normal(size=(4, 150)).round(4)
            if split == "train" and i == 1:
                frames[2, 5] = np.nan
            counter = np.linspace(0, 1, 4)[:, None]
            lines.append(" ".join(f"{v:g}" for v in np.concatenate([frames, counter], 1).ravel()))
        (src / f"{split}.skels").write_text("\n".join(lines) + "\n")
        (src / f"{split}.gloss").write_text("\n".join(["REGEN NORD"] * n) + "\n")
        (src / f"{split}.text").write_text("\n".join(["regen im norden ."] * n) + "\n")
        (src / f"{split}.files").write_text("\n".join(f"{split}/clip-{i}" for i in range(n)) + "\n")
    out = tmp_path / "out"
    assert main(["data", "convert", "phoenix-skels", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "train.skels" in err and "frame 2" in err
    assert main(["data", "convert", "phoenix-skels", str(src), "--out", str(out), "--skip-invalid"]) == 0
    assert "skipped 1" in capsys.readouterr().out
    ds = datasets.load_dataset(str(out))
    assert len(ds["train"]) == 1 and len(ds["validation"]) == 1 and len(ds["test"]) == 1
    report = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert len(report) == 1 and "frame 2" in report[0]["error"]


def test_train_generate_and_benchmark_end_to_end(tmp_path, capsys):
    """`data synthsign` -> `train sign-sald` (tiny) -> `generate` -> `train evaluator` (tiny) -> `benchmark`."""
    data, model, evals, bench = (tmp_path / n for n in ("synth_cli_e2e", "sald", "evals", "bench"))
    assert main(["data", "synthsign", "--out", str(data), "--num-train", "16", "--num-validation", "2",
                 "--num-test", "3"]) == 0
    assert main(["train", "sign-sald", "--config", "tiny", "--dataset", str(data), "--output-dir", str(model)]) == 0
    assert (model / "model_index.json").is_file()
    capsys.readouterr()
    assert main(["generate", "--model", str(model), "--text", "my sister is tall", "--out", str(tmp_path / "gen"),
                 "--format", "npz,pose,bvh", "--num-inference-steps", "2", "--num-frames", "20"]) == 0
    z = np.load(tmp_path / "gen" / "sample-000.npz", allow_pickle=False)
    assert z["poses"].shape == (20, 133) and np.isfinite(z["poses"]).all() and str(z["representation"]) == "smplx133"
    assert Pose.read((tmp_path / "gen" / "sample-000.pose").read_bytes()).body.data.shape[0] == 20
    assert "Frames: 20\n" in (tmp_path / "gen" / "sample-000.bvh").read_text()  # hf_sign.render.bvh_export
    assert main(["generate", "--model", str(model), "--text", "x", "--out", str(tmp_path / "g2"),
                 "--format", "avi"]) == 2
    assert "--format" in capsys.readouterr().err
    assert main(["train", "evaluator", "--config", "tiny", "--dataset", str(data), "--output-dir", str(evals)]) == 0
    assert main(["benchmark", "--dataset", str(data), "--evaluator", str(evals), "--model", f"tiny={model}",
                 "--out", str(bench), "--max-samples", "2", "--num-inference-steps", "2", "--num-examples", "1"]) == 0
    table = (bench / "results.md").read_text()
    rows = [row.split("|")[1].strip() for row in table.splitlines() if row.startswith("| ") and "Method" not in row]
    assert rows[0] == "Ground Truth" and "tiny" in rows and "Mean pose" in rows
    capsys.readouterr()
    assert main(["models", "params", "sign-sald", "--config", "tiny"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["vae"] > 0 and counts["denoiser"] > 0 and counts["paper_vae"] == 2_810_000
