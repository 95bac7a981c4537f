"""The package layout: old import paths still work (with a warning), layers import only what they need."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest
from paths import REPO

from faceiqa._compat import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_paths_forward_to_the_new_ones_with_a_warning(old):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and MOVED[old][0] in str(w.message) for w in caught)
    names = [n for n in dir(importlib.import_module(MOVED[old][0])) if not n.startswith("_")]
    assert names and all(getattr(module, n) is getattr(importlib.import_module(MOVED[old][0]), n) for n in names)


def test_old_names_users_had():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from faceiqa.io import read_image
        from faceiqa.pipeline import FaceQualityAssessor, log2_resolution
        from faceiqa.weights import ScoreMapping, resolve
    from faceiqa.api import FaceQualityAssessor as new_assessor
    from faceiqa.hub import resolve as new_resolve
    from faceiqa.images import read_image as new_read
    from faceiqa.models.config import ScoreMapping as new_mapping
    from faceiqa.models.features import log2_resolution as new_log2

    assert (FaceQualityAssessor, resolve, read_image, ScoreMapping, log2_resolution) == (
        new_assessor, new_resolve, new_read, new_mapping, new_log2
    )
    with pytest.raises(AttributeError, match="faceiqa.pipeline"):
        import faceiqa.pipeline

        faceiqa.pipeline.no_such_name  # noqa: B018


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    return set(out.stdout.split())


def test_the_product_path_needs_no_research_libraries():
    loaded = _loaded_after(
        "import faceiqa.api, faceiqa.cli, faceiqa.output.html, faceiqa.output.fileops, faceiqa.export.onnx"
    )
    assert "faceiqa" in loaded and "torch" in loaded
    assert not loaded & {"pandas", "scipy", "matplotlib", "piq"}


def test_the_weights_hub_and_model_configs_do_not_import_torch():
    loaded = _loaded_after("import faceiqa.hub, faceiqa.models.config, faceiqa.output.reports; faceiqa.hub.list_weights()")
    assert "torch" not in loaded and "gdown" not in loaded
