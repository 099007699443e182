"""Test-wide settings: no network, deterministic, quiet progress bars."""

import os

# Nothing in the suite may reach a hub; these make an accidental download fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# Memory-mapped corpora are converted into the datasets cache: keep the suite's copies out of the user's cache.
if "HF_DATASETS_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="hf-sign-tests-datasets-")
    atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], True)

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # Every model in the suite is tiny: intra-op threading only adds contention on a small shared
    # CPU (measured ~10x slower with 2 threads while other processes ran).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_synthsign(tmp_path_factory):
    """A 12/2/2-sentence SynthSign corpus folder, built once per run; tests only read it."""
    from hf_sign.data.synthsign import build_synthsign

    path = tmp_path_factory.mktemp("synthsign-tiny")
    build_synthsign(path, seed=0, num_train=12, num_validation=2, num_test=2, show_progress=False)
    return path


@pytest.fixture(scope="session")
def tiny_pipeline_folders(tmp_path_factory):
    """`{system name: saved pipeline folder}`, one tiny pipeline per generating system of the registry: Sign-SALD's
    frozen trained fixture, and Stable Signer's, Sign-MExD's and MaDiS' tiny components (those of their pipeline
    tests) saved once."""
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    if str(here / "pipelines") not in sys.path:
        sys.path.insert(0, str(here / "pipelines"))
    from test_pipeline_madis import make_components as madis_components
    from test_pipeline_sign_mexd import make_components
    from test_pipeline_stable_signer import tiny_components

    from hf_sign.pipelines.pipeline_madis import MaDiSPipeline
    from hf_sign.pipelines.pipeline_sign_mexd import SignMExDPipeline
    from hf_sign.pipelines.pipeline_stable_signer import StableSignerPipeline

    stable_signer = tmp_path_factory.mktemp("stable-signer-tiny")
    StableSignerPipeline(**tiny_components()).save_pretrained(stable_signer)
    sign_mexd = tmp_path_factory.mktemp("sign-mexd-tiny")
    SignMExDPipeline(**make_components()).save_pretrained(sign_mexd)
    madis = tmp_path_factory.mktemp("madis-tiny")
    MaDiSPipeline(**madis_components()).save_pretrained(madis)
    return {
        "sign-sald": here / "fixtures" / "sign_sald_tiny", "stable-signer": stable_signer, "sign-mexd": sign_mexd,
        "madis": madis,
    }
