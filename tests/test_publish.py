"""`hf-sign publish`: repository folders, cards with a model-index from results.json, offline checks, the upload.

Every registered generator is trained with its `tiny` config on a 16-sentence SynthSign and scored by the benchmark
harness (tiny evaluators, 2 samples), so the cards are built from a real training folder and a real results.json.
The upload is tested by recording the `HfApi` calls; nothing reaches the network.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import datasets
import pytest
import yaml
from huggingface_hub import DatasetCard, HfApi, ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from hf_sign.cli import main
from hf_sign.data.synthsign import build_synthsign
from hf_sign.evaluation.harness import run_benchmark
from hf_sign.evaluation.report import TABLES
from hf_sign.hub import publish
from hf_sign.hub.cards import HUB_SECTION
from hf_sign.hub.checks import Check, check_model_folder, validate_online
from hf_sign.systems import get_system, list_systems

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "sign_sald_tiny"
GENERATORS = [s.name for s in list_systems(generators_only=True)]
FAKE_TOKEN = "hf_fakeTOKENforHfSignTests0123456789"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny corpus, every registered generator trained on it (`tiny`), and the harness' results.json."""
    root = tmp_path_factory.mktemp("publish")
    corpus = root / "synthsign"
    build_synthsign(corpus, seed=0, num_train=16, num_validation=4, num_test=4, show_progress=False)
    models = {}
    for name in GENERATORS:
        models[name] = root / name
        get_system(name).run_training(corpus, models[name], config="tiny")
    get_system("evaluator").run_training(corpus, root / "evaluators", config="tiny")
    run_benchmark(
        corpus,
        models={f"{name} tiny": str(path) for name, path in models.items()},
        baselines=False,
        evaluator_dir=root / "evaluators",
        out_dir=root / "bench",
        max_samples=2,
        num_inference_steps=2,
        num_examples=0,
        show_progress=False,
    )
    return {"root": root, "corpus": corpus, "models": models, "results": root / "bench" / "results.json"}


def front_matter(readme: Path) -> dict:
    return yaml.safe_load(readme.read_text(encoding="utf-8").split("---\n")[1])


def _row(work, name):
    results = json.loads(work["results"].read_text())
    return next(s for s in results["systems"] if s["name"] == f"{name} tiny")


def expected_metrics(row: dict) -> dict:
    """The scores of a results row that the harness tables report (an independent reading of results.json)."""
    keys = [key for _, _, columns in TABLES for key, _, _ in columns if key != "mean_num_frames"]
    return {k: row["metrics"][k] for k in keys if isinstance(row["metrics"].get(k), (int, float))}


# ------------------------------------------------------------------------------------------------ models
@pytest.mark.parametrize("name", GENERATORS)
def test_dry_run_of_every_registered_system(work, name, tmp_path, capsys):
    out = tmp_path / "repo"
    rc = main(
        [
            "publish",
            str(work["models"][name]),
            "--repo-id",
            f"test-org/{name}-tiny",
            "--results",
            str(work["results"]),
            "--dry-run",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "[fail]" not in printed and "Traceback" not in printed
    assert (
        printed.count("RepoCard.validate()") == 1 and "skipped" in printed and "dry run: nothing uploaded" in printed
    )
    assert "left out: checkpoints/" in printed
    # the repository folder: loading files, no checkpoints, no pickles
    index = json.loads((out / "model_index.json").read_text())
    assert (out / f"{index['_class_name'][0]}.py").is_file() and (out / "README.md").is_file()
    assert not (out / "checkpoints").exists() and not list(out.rglob("*.pt")) and list(out.rglob("*.safetensors"))
    # the card: metadata and a model-index equal to the system's row of results.json
    card = ModelCard.load(out / "README.md")
    system = get_system(name)
    assert card.data.library_name == "diffusers" and card.data.pipeline_tag == system.pipeline_tag
    assert {"sign-language", name, "smplx133"} <= set(card.data.tags) and card.data.license == "apache-2.0"
    assert card.data.datasets == ["test-org/synthsign"]
    row = _row(work, name)
    model_name, evals = model_index_to_eval_results(front_matter(out / "README.md")["model-index"])
    assert model_name == f"{name}-tiny"
    assert {e.metric_type: e.metric_value for e in evals} == expected_metrics(row)
    assert {(e.dataset_name, e.dataset_split, e.dataset_type) for e in evals} == {
        ("synthsign", "test", "test-org/synthsign")
    }
    # the text: pose layout, normalisation, training budget from the folder, the evaluator from results.json
    text = card.text
    for fact in (
        "`[0:30]`",
        "`[30:75]`",
        "`[75:120]`",
        "`[120:123]`",
        "`[123:133]`",
        "radians",
        "24 fps",
        "## Normalisation",
        "config 'tiny', seed 0",
        "trust_remote_code=True",
    ):
        assert fact in text, fact
    metrics = json.loads((work["models"][name] / system.metrics_file).read_text())
    for stage in system.stages:
        assert f"| {stage} | " in text and f" | {metrics[f'{stage}_global_step']} | " in text, stage


def test_model_index_leaves_out_metrics_that_do_not_apply(work, tmp_path):
    result = publish(
        work["models"]["sign-sald"], "test-org/sald", results=work["results"], dry_run=True, out=tmp_path / "repo"
    )
    assert result.ok, result.checks
    types = [
        e.metric_type
        for e in model_index_to_eval_results(front_matter(tmp_path / "repo" / "README.md")["model-index"])[1]
    ]
    assert "sibleu" not in types and "mean_num_frames" not in types  # null in results.json / not a score
    assert types[:5] == ["bleu1", "bleu2", "bleu3", "bleu4", "rouge_l"]


def test_the_checks_catch_a_changed_number_and_a_missing_file(work, tmp_path):
    out = tmp_path / "repo"
    result = publish(work["models"]["sign-sald"], "test-org/sald", results=work["results"], dry_run=True, out=out)
    readme = out / "README.md"
    text = readme.read_text()
    meta = front_matter(readme)
    meta["model-index"][0]["results"][0]["metrics"][5]["value"] += 1.0
    readme.write_text("---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n" + text.split("---\n", 2)[2])
    shutil.rmtree(out / "scheduler")
    checks = {c.name: c for c in check_model_folder(out, result.staged.system, _row(work, "sign-sald"))}
    assert checks["model-index equals results.json"].failed
    assert "dtw_jpe_body" in checks["model-index equals results.json"].detail
    assert checks["referenced files exist"].failed and "scheduler" in checks["referenced files exist"].detail
    assert checks["card loads (ModelCard.load)"].status == "ok"


def test_results_found_in_the_model_folder_and_a_folder_without_training_records(tmp_path, capsys):
    """The committed fixture has no metrics file and no results.json: the card says so, the checks still pass."""
    rc = main(["publish", str(FIXTURE), "--repo-id", "test-org/fixture", "--dry-run", "--out", str(tmp_path / "r")])
    printed = capsys.readouterr().out
    assert rc == 0 and "model-index: none" in printed and "left out: expected.npz" in printed
    card = ModelCard.load(tmp_path / "r" / "README.md")
    assert "model-index" not in front_matter(tmp_path / "r" / "README.md") and card.data.datasets is None
    assert "records no training budget" in card.text and "No benchmark results" in card.text


# ------------------------------------------------------------------------------------------------ dataset
def test_dry_run_of_a_corpus(work, tmp_path, capsys):
    out = tmp_path / "repo"
    rc = main(
        [
            "publish",
            str(work["corpus"]),
            "--repo-id",
            "test-org/synthsign",
            "--repo-type",
            "dataset",
            "--dry-run",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0 and "[fail]" not in printed and printed.count("RepoCard.validate()") == 1, printed
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [
        "README.md",
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet",
    ]
    card = DatasetCard.load(out / "README.md")
    assert {"sign-language", "hf-sign", "smplx133"} <= set(card.data.tags) and card.data.license == "apache-2.0"
    assert card.text.count(HUB_SECTION) == 1 and 'load_dataset("test-org/synthsign")' in card.text
    assert "`[120:123]`" in card.text
    dd = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    source = datasets.load_dataset(str(work["corpus"]), cache_dir=str(tmp_path / "cache2"))
    assert {k: v["id"] for k, v in dd.items()} == {k: v["id"] for k, v in source.items()}
    # publishing the built folder again replaces the loading section instead of adding a second one
    again = publish(out, "test-org/synthsign-2", dry_run=True, out=tmp_path / "again")
    text = DatasetCard.load(again.staged.path / "README.md").text
    assert again.ok and text.count(HUB_SECTION) == 1 and "test-org/synthsign-2" in text


# ------------------------------------------------------------------------------------------------ upload
@pytest.fixture
def hfapi_calls(monkeypatch):
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        files = sorted(
            p.relative_to(kwargs["folder_path"]).as_posix()
            for p in Path(kwargs["folder_path"]).rglob("*")
            if p.is_file()
        )
        calls.append(("upload_folder", kwargs["repo_id"], {**kwargs, "files": files}))
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"})()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    return calls


def test_upload_records_the_hfapi_calls_and_never_shows_the_token(work, hfapi_calls, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    assert (
        main(
            [
                "publish",
                str(work["models"]["stable-signer"]),
                "--repo-id",
                "test-org/signer",
                "--private",
                "--results",
                str(work["results"]),
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    assert main(["publish", str(work["corpus"]), "--repo-id", "test-org/corpus", "--out", str(tmp_path / "d")]) == 0
    (c1, repo1, k1), (u1, _, f1), (c2, repo2, k2), (u2, _, f2) = hfapi_calls
    assert (c1, repo1, k1) == (
        "create_repo",
        "test-org/signer",
        {"repo_type": "model", "private": True, "exist_ok": True},
    )
    assert (c2, repo2, k2) == (
        "create_repo",
        "test-org/corpus",
        {"repo_type": "dataset", "private": False, "exist_ok": True},
    )
    assert u1 == u2 == "upload_folder"
    assert (f1["repo_id"], f1["repo_type"], f1["folder_path"]) == ("test-org/signer", "model", str(tmp_path / "m"))
    assert (f2["repo_id"], f2["repo_type"], f2["folder_path"]) == ("test-org/corpus", "dataset", str(tmp_path / "d"))
    assert "README.md" in f1["files"] and "model_index.json" in f1["files"] and "README.md" in f2["files"]
    assert not any(f.startswith("checkpoints/") for f in f1["files"])
    assert all("token" not in kwargs for _, _, kwargs in hfapi_calls)
    captured = capsys.readouterr()
    assert "uploaded to https://huggingface.co/test-org/signer" in captured.out
    assert "uploaded to https://huggingface.co/datasets/test-org/corpus" in captured.out
    for text in (captured.out, captured.err, caplog.text):
        assert FAKE_TOKEN not in text and FAKE_TOKEN[3:15] not in text


def test_a_failed_check_uploads_nothing(work, hfapi_calls, monkeypatch, tmp_path, capsys):
    import hf_sign.hub.publishing as publish_module

    monkeypatch.setattr(publish_module, "check_model_folder", lambda *a, **k: [Check("x", "fail", "broken")])
    assert main(["publish", str(FIXTURE), "--repo-id", "test-org/x", "--out", str(tmp_path / "o")]) == 1
    assert hfapi_calls == [] and "nothing was uploaded" in capsys.readouterr().err


def test_validate_is_one_skip_line_offline_or_unreachable(tmp_path, monkeypatch):
    from huggingface_hub import RepoCard, constants

    readme = tmp_path / "README.md"
    readme.write_text("---\nlicense: mit\n---\n# x\n")
    check = validate_online(readme, "model")
    assert check.status == "skip" and "offline" in check.detail and "\n" not in check.detail  # the suite is offline
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def unreachable(*args, **kwargs):
        raise OSError("no route to host")

    monkeypatch.setattr("socket.create_connection", unreachable)
    check = validate_online(readme, "model")
    assert check.status == "skip" and "not reachable" in check.detail
    monkeypatch.setattr("socket.create_connection", lambda *a, **k: type("S", (), {"close": lambda self: None})())

    def rejects(self, repo_type=None):
        raise ValueError("bad metadata: 'license' must be a valid id\nmore lines")

    monkeypatch.setattr(RepoCard, "validate", rejects)
    check = validate_online(readme, "model")
    assert check.status == "fail" and check.detail == "bad metadata: 'license' must be a valid id"


# ------------------------------------------------------------------------------------------------ bad input
def _unregistered(tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": ["x", "StableDiffusionPipeline"]}))
    return folder


def _with_pickle(tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(FIXTURE, folder)
    (folder / "vae" / "diffusion_pytorch_model.bin").write_bytes(b"not a pickle; must never be opened")
    return folder


@pytest.mark.parametrize(
    "make, argv, message",
    [
        (lambda t: t / "absent", [], "`DIR`"),
        (lambda t: t, [], "neither a pipeline folder"),
        (_unregistered, [], "not a pipeline folder of a registered system"),
        (_with_pickle, [], "vae/diffusion_pytorch_model.bin"),
        (lambda t: FIXTURE, ["--repo-id", "not-a-repo-id"], "`--repo-id`"),
        (lambda t: FIXTURE, ["--repo-id", "org/with space"], "`--repo-id`"),
        (lambda t: FIXTURE, ["--repo-type", "dataset"], "`--repo-type`"),
        (lambda t: FIXTURE, ["--results", "missing.json"], "`--results`"),
        (lambda t: FIXTURE, ["--dataset-id", "nope"], "`--dataset-id`"),
    ],
)
def test_bad_input_is_one_clear_line(make, argv, message, tmp_path, capsys):
    folder = make(tmp_path)
    args = ["publish", str(folder), "--repo-id", "test-org/x", "--dry-run", "--out", str(tmp_path / "out")] + argv
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_bad_results_and_out(work, tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="`--results`.*`systems`"):
        publish(FIXTURE, "test-org/x", results=bad, dry_run=True, out=tmp_path / "a")
    with pytest.raises(ValueError, match="`--results-row` 'nope'"):
        publish(
            work["models"]["sign-sald"],
            "test-org/x",
            results=work["results"],
            results_row="nope",
            dry_run=True,
            out=tmp_path / "b",
        )
    # two model rows and a folder evaluated under another path: the row must be named
    copy = tmp_path / "copy"
    shutil.copytree(work["models"]["sign-sald"], copy)
    with pytest.raises(ValueError, match="--results-row NAME"):
        publish(copy, "test-org/x", results=work["results"], dry_run=True, out=tmp_path / "c")
    assert publish(
        copy, "test-org/x", results=work["results"], results_row="sign-sald tiny", dry_run=True, out=tmp_path / "d"
    ).ok
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="`--out`.*not empty"):
        publish(FIXTURE, "test-org/x", dry_run=True, out=tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="`--results` applies to model"):
        publish(work["corpus"], "test-org/x", results=work["results"], dry_run=True, out=tmp_path / "e")
