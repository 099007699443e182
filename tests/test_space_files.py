"""The Space's own files: `spaces/README.md` metadata a Hub Space reads, `spaces/requirements.txt` in step with
setup.cfg and the Gradio pin, and `python spaces/app.py --model NAME=DIR` serving a local pipeline folder."""

from __future__ import annotations

import configparser
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import metadata_load

from hf_sign.systems import list_systems

gradio = pytest.importorskip("gradio")

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "spaces"


def requirement_lines(path: Path):
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg


def test_readme_holds_the_space_metadata():
    meta = metadata_load(SPACE / "README.md")
    assert meta["sdk"] == "gradio" and (SPACE / meta["app_file"]).is_file()
    assert meta["sdk_version"] == gradio.__version__  # the Gradio the tests ran with is the one the Space runs
    assert meta["title"] and meta["license"] == setup_cfg()["metadata"]["license"].lower()
    assert meta["models"] == [s.demo_repo_id for s in list_systems(generators_only=True) if s.demo_repo_id]


def test_requirements_follow_setup_cfg_and_the_sdk_version():
    lines = requirement_lines(SPACE / "requirements.txt")
    cfg = setup_cfg()
    install_requires = [x.strip() for x in cfg["options"]["install_requires"].splitlines() if x.strip()]
    pin = f"gradio=={metadata_load(SPACE / 'README.md')['sdk_version']}"
    assert lines == [pin] + install_requires
    extras = cfg["options.extras_require"]
    for extra in ("space", "dev"):
        assert pin in extras[extra].split(), f"setup.cfg's `{extra}` extra must pin {pin}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_app_py_serves_a_local_pipeline_folder(tmp_path):
    from gradio_client import Client

    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH=os.pathsep.join(sys.path))
    folder = REPO / "tests" / "fixtures" / "sign_sald_tiny"
    cmd = [sys.executable, str(SPACE / "app.py"), "--model", f"tiny={folder}", "--port", str(port)]
    log = (tmp_path / "app.log").open("w")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # noqa: BLE001 - not up yet
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"spaces/app.py did not start:\n{(tmp_path / 'app.log').read_text()}")
                time.sleep(1.0)
        video, pose_file, npz_file, _, details = client.predict(
            "tiny", "where was the brother yesterday?", 0, 2, 1.0, False, api_name="/generate"
        )
        assert details["system"] == "sign-sald" and details["model"] == "tiny" and details["num_frames"] > 0
        assert Path(video["video"] if isinstance(video, dict) else video).stat().st_size > 0
        assert "serving tiny: sign-sald from" in (tmp_path / "app.log").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
