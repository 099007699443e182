"""The package as a user installs it: a wheel built with `pip wheel`, installed non-editable, builds a corpus.

Opt-in (`pytest -m slow tests/test_wheel.py`, about a minute). It needs no network: the wheel is built without
build isolation (setuptools and wheel come from the running environment) and installed with `--no-deps
--target DIR`; the dependencies are the running environment's. The corpus is built by a Python started with
`-I -S`, so neither the source tree nor an editable install of it (a `.pth` file in site-packages) is importable:
only DIR and the site-packages folders themselves are on its path, and the test checks that `hf_sign` was
imported from DIR.
"""

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# what `pip wheel .` reads: the package, its metadata and the README (long_description)
BUILD_INPUTS = ("setup.cfg", "pyproject.toml", "README.md", "src")

RUN_INSTALLED = """
import json, sys
target, out = sys.argv[1], sys.argv[2]
sys.path[:0] = [target]
sys.path += sys.argv[3:]
import hf_sign
from hf_sign.cli import main

code = main(["data", "synthsign", "--out", out, "--num-train", "8", "--num-validation", "2", "--num-test", "2"])
import datasets

dd = datasets.load_dataset(out)
print(json.dumps({"code": code, "hf_sign": hf_sign.__file__, "splits": {k: len(v) for k, v in dd.items()}}))
"""


@pytest.mark.slow
def test_wheel_installed_non_editable_builds_synthsign(tmp_path):
    # 1. build the wheel from a copy of the build inputs, so the checkout gets no build/ or egg-info folders
    source = tmp_path / "source"
    for name in BUILD_INPUTS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(src, source / name)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    build = subprocess.run(
        pip + ["wheel", str(source), "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels)],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("hf_sign-*.whl")

    # 2. install it non-editable into its own folder
    target = tmp_path / "installed"
    install = subprocess.run(
        pip + ["install", str(wheel), "--no-deps", "--no-index", "--target", str(target)],
        capture_output=True, text=True,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert (target / "hf_sign" / "hub_cards" / "synthsign_dataset_card.md").is_file()
    assert (target / "hf_sign" / "configs" / "sign-sald" / "tiny.yaml").is_file()
    (dist_info,) = target.glob("hf_sign-*.dist-info")
    assert "hf-sign = hf_sign.cli:main" in (dist_info / "entry_points.txt").read_text()

    # 3. `hf-sign data synthsign` from the installed copy, in an interpreter that cannot see the source tree
    out = tmp_path / "synthsign_wheel_8_2_2"
    site_dirs = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-c", RUN_INSTALLED, str(target), str(out), *site_dirs],
        capture_output=True, text=True, cwd=tmp_path,
        env={"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PATH": ""},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    assert Path(report["hf_sign"]).is_relative_to(target), report["hf_sign"]
    assert report["splits"] == {"train": 8, "validation": 2, "test": 2}
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "## Grammar" in card and "$" not in card
