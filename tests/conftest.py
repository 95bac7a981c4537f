"""Shared fixtures.

Real data lives in ``../shared/`` beside the repository (or where ``FACEIQA_SHARED`` points).
Tests that need it skip with a reason when it is absent; nothing here downloads anything.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# tests/helpers holds the shared test helpers (tiny models, scripted detector, file server...).
sys.path.insert(0, str(Path(__file__).resolve().parent / "helpers"))

from paths import REPO, TEST_DATA  # noqa: E402,F401

#: Fixtures that read ../shared/data: tests using them get the ``shared_data`` marker.
_SHARED_FIXTURES = {"shared_dir", "detect_samples", "lfw_dir", "realfaces_dir"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _SHARED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.shared_data)


def _shared_root() -> Path:
    env = os.environ.get("FACEIQA_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module's tests (much faster on shared 2-core machines)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache or the network from a test."""
    home = tmp_path_factory.getbasetemp() / "faceiqa-home"
    monkeypatch.setenv("FACEIQA_HOME", str(home))
    monkeypatch.setenv("FACEIQA_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    root = _shared_root()
    if not root.is_dir():
        pytest.skip(f"shared data folder not found ({root.name}/ beside the repository)")
    return root


@pytest.fixture(scope="session")
def detect_samples(shared_dir) -> Path:
    path = shared_dir / "data" / "detect-samples"
    if not path.is_dir():
        pytest.skip("shared/data/detect-samples not present")
    return path


@pytest.fixture(scope="session")
def lfw_dir(shared_dir) -> Path:
    path = shared_dir / "data" / "lfw-train"
    if not (path / "images").is_dir():
        pytest.skip("shared/data/lfw-train not present")
    return path


@pytest.fixture(scope="session")
def face_api_weights(shared_dir) -> Path:
    path = shared_dir / "weights" / "face-api-1.7.15"
    if not path.is_dir():
        pytest.skip("shared/weights/face-api-1.7.15 not present")
    return path
