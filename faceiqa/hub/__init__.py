"""The weights hub: the manifest (what exists), the local store (where files are, checksums,
imports) and downloads. Torch-free.
"""

from __future__ import annotations

from faceiqa.hub.download import download_weights, partial_files, staging_path  # noqa: F401
from faceiqa.hub.manifest import (  # noqa: F401
    ENV_HOME,
    ENV_MANIFEST,
    ENV_OFFLINE,
    MANIFEST_FORMAT,
    Manifest,
    WeightsSpec,
    describe,
    load_manifest,
    manifest_path,
    pretrained_dirs,
)
from faceiqa.hub.store import (  # noqa: F401
    default_name,
    find_local,
    get_spec,
    import_weights,
    list_weights,
    matching_specs,
    offline,
    resolve,
    sha256_file,
    verify,
    weights_home,
)

__all__ = [
    "ENV_HOME",
    "ENV_MANIFEST",
    "ENV_OFFLINE",
    "MANIFEST_FORMAT",
    "Manifest",
    "WeightsSpec",
    "default_name",
    "describe",
    "download_weights",
    "partial_files",
    "find_local",
    "get_spec",
    "import_weights",
    "list_weights",
    "load_manifest",
    "manifest_path",
    "matching_specs",
    "offline",
    "pretrained_dirs",
    "resolve",
    "sha256_file",
    "staging_path",
    "verify",
    "weights_home",
]
