"""Weights registry: manifest, lookup order, verification, downloads from a local server, import."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from fileserver import PAYLOAD, PAYLOAD_SHA, FileServer, write_manifest
from paths import REPO

import faceiqa.hub as registry
from faceiqa.errors import ChecksumError, DownloadError, UnknownWeightsError, WeightsError, WeightsNotFoundError
from faceiqa.models.config import ScoreMapping


@pytest.fixture
def server():
    with FileServer() as srv:
        yield srv




@pytest.fixture
def env(tmp_path, monkeypatch):
    """A private manifest and FACEIQA_HOME; downloads allowed; no bundled pretrained/ dirs."""
    home = tmp_path / "home"
    monkeypatch.setenv("FACEIQA_HOME", str(home))
    monkeypatch.delenv("FACEIQA_OFFLINE", raising=False)
    monkeypatch.setattr(registry.manifest, "_data_dirs", lambda: [tmp_path / "pretrained"])

    def use(urls: list[str], **kw) -> Path:
        manifest = write_manifest(tmp_path / "manifest.json", urls, **kw)
        monkeypatch.setenv("FACEIQA_MANIFEST", str(manifest))
        return home

    return use


# --------------------------------------------------------------------------- manifest


def test_shipped_manifest_entry_hyperiqa_koniq():
    manifest = registry.load_manifest(REPO / "pretrained" / "manifest.json")
    assert manifest.default == "faceiqa-face"
    spec = next(s for s in manifest.weights if s.name == "hyperiqa-koniq")
    assert (spec.file, spec.size) == ("koniq_pretrained.pkl", 109_768_650)
    assert spec.sha256 == "ff9277bcc68ecc10e77d88b6d0a32825ec3c85562095542734ec6212eaaf6d81"
    assert (spec.kind, spec.architecture, spec.layout, spec.backbone) == (
        "quality",
        "hyperiqa-resnet50",
        "hyperiqa-official",
        "resnet50",
    )
    assert spec.input is not None and (spec.input.size, spec.input.template, spec.input.normalize) == (
        224,
        "hyperiqa-224",
        "imagenet",
    )
    assert spec.score is not None and spec.score.raw_range == (0.0, 100.0) and spec.score.higher_is_better
    assert spec.score.mapping == ScoreMapping.linear(0, 100)
    assert spec.urls and all(u.startswith("https://") for u in spec.urls)
    assert any("drive.google.com" in u and "1OOUmnbvpGea0LIGpIWEbOyxfWx6UCiiE" in u for u in spec.urls)
    assert spec.licence.startswith("MIT") and "CVPR 2020" in spec.citation


def test_unknown_name_suggests_the_close_one(env):
    env(["http://127.0.0.1:9/x"])
    with pytest.raises(UnknownWeightsError, match="did you mean 'tiny-test'"):
        registry.get_spec("tiny-tset")
    with pytest.raises(UnknownWeightsError):
        registry.resolve("no-such-weights")


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d["weights"][0].update(sha256="abc"), "64 hex"),
        (lambda d: d["weights"].append(dict(d["weights"][0])), "duplicate"),
        (lambda d: d.update(default="nope"), "default 'nope'"),
        (lambda d: d["weights"][0].update(file="../escape.bin"), "plain file name"),
        (lambda d: d["weights"][0].pop("score"), "need 'architecture', 'input' and 'score'"),
        (lambda d: d.update(format=2), "format-1"),
    ],
)
def test_invalid_manifests_are_rejected(tmp_path, mutate, match):
    path = write_manifest(tmp_path / "m.json", [])
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    with pytest.raises(WeightsError, match=match):
        registry.load_manifest(path)


def test_recognizer_entries_need_no_score_block(tmp_path):
    path = tmp_path / "m.json"
    entry = {"name": "rec", "file": "rec.pt", "size": 10, "sha256": "0" * 64, "kind": "recognizer"}
    path.write_text(json.dumps({"format": 1, "default": None, "weights": [entry]}))
    spec = registry.load_manifest(path).weights[0]
    assert spec.score is None and spec.urls == () and spec.kind == "recognizer"


# --------------------------------------------------------------------------- lookup and verification


def test_lookup_order_home_before_pretrained_and_explicit_paths(env, tmp_path):
    home = env([])
    bundled = tmp_path / "pretrained" / "tiny_test.bin"
    bundled.parent.mkdir()
    bundled.write_bytes(PAYLOAD)
    assert registry.resolve("tiny-test") == bundled
    home.mkdir()
    (home / "tiny_test.bin").write_bytes(PAYLOAD)
    assert registry.resolve("tiny-test") == home / "tiny_test.bin"
    assert registry.find_local("tiny-test") == [home / "tiny_test.bin", bundled]
    assert registry.resolve(bundled) == bundled
    assert registry.resolve(str(bundled)) == bundled
    with pytest.raises(WeightsNotFoundError, match="not found"):
        registry.resolve(tmp_path / "nope.pkl")
    with pytest.raises(WeightsNotFoundError, match="not found"):
        registry.resolve("some/dir/nope.pkl")


def test_corrupt_file_fails_verification(env):
    home = env([])
    home.mkdir()
    bad = bytearray(PAYLOAD)
    bad[1000] ^= 0xFF
    (home / "tiny_test.bin").write_bytes(bytes(bad))
    with pytest.raises(ChecksumError, match="sha256 .* does not match tiny-test's"):
        registry.verify("tiny-test")
    with pytest.raises(ChecksumError, match="does not match"):
        registry.resolve("tiny-test")
    (home / "tiny_test.bin").write_bytes(PAYLOAD[:-1])
    with pytest.raises(ChecksumError, match="299999 bytes, but tiny-test"):
        registry.verify("tiny-test")


def test_verification_is_cached_per_path_size_and_mtime(env, monkeypatch):
    home = env([])
    home.mkdir()
    path = home / "tiny_test.bin"
    path.write_bytes(PAYLOAD)
    calls = []
    real = registry.sha256_file
    monkeypatch.setattr(registry.store, "sha256_file", lambda p: calls.append(p) or real(p))
    registry.resolve("tiny-test")
    registry.resolve("tiny-test")
    assert len(calls) == 1
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    registry.resolve("tiny-test")
    assert len(calls) == 2
    registry.verify("tiny-test")  # explicit verification always re-reads the file
    assert len(calls) == 3


def test_matching_specs_recognises_the_registered_bytes(env, tmp_path):
    env([])
    other = tmp_path / "renamed.bin"
    other.write_bytes(PAYLOAD)
    assert [s.name for s in registry.matching_specs(other)] == ["tiny-test"]
    other.write_bytes(PAYLOAD[:10])
    assert registry.matching_specs(other) == []


# --------------------------------------------------------------------------- downloads


def test_offline_download_fails_with_the_documented_message(env, monkeypatch):
    home = env(["https://example.invalid/tiny_test.bin"])
    monkeypatch.setenv("FACEIQA_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as info:
        registry.resolve("tiny-test")
    message = str(info.value)
    assert "\n" not in message
    for part in (
        "tiny_test.bin",
        PAYLOAD_SHA,
        "FACEIQA_OFFLINE=1",
        "https://example.invalid/tiny_test.bin",
        str(home / "tiny_test.bin"),
    ):
        assert part in message
    assert not home.exists() or not any(home.iterdir())


def test_resolve_without_download_permission(env):
    env(["http://127.0.0.1:9/x"])
    with pytest.raises(WeightsNotFoundError, match="downloads were not allowed"):
        registry.resolve("tiny-test", download=False)


def _spec():
    return registry.get_spec("tiny-test")


def test_download_from_a_local_server(env, server):
    server.files["/tiny_test.bin"] = PAYLOAD
    home = env([server.url + "/tiny_test.bin"])
    path = registry.resolve("tiny-test", progress=False)
    assert path == home / "tiny_test.bin" and path.read_bytes() == PAYLOAD
    assert registry.partial_files(_spec()) == [] and not registry.staging_path(_spec()).exists()
    assert registry.resolve("tiny-test") == path
    assert len(server.log) == 1  # the second call found the verified file


def test_download_returns_a_verified_bundled_copy_unless_forced(env, server, tmp_path):
    server.files["/tiny_test.bin"] = PAYLOAD
    home = env([server.url + "/tiny_test.bin"])
    bundled = tmp_path / "pretrained" / "tiny_test.bin"
    bundled.parent.mkdir()
    bundled.write_bytes(PAYLOAD)
    assert registry.download_weights("tiny-test", progress=False) == bundled
    assert server.log == []
    assert registry.download_weights("tiny-test", progress=False, force=True) == home / "tiny_test.bin"
    assert len(server.log) == 1


def _plant_partial(home: Path, data: bytes) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    part = home / "tiny_test.bin.downloadabcd1234.part"  # gdown's partial-file name for the staging file
    part.write_bytes(data)
    return part


def test_download_resumes_from_a_partial_file(env, server):
    server.files["/tiny_test.bin"] = PAYLOAD
    home = env([server.url + "/tiny_test.bin"])
    part = _plant_partial(home, PAYLOAD[:123_456])
    assert registry.partial_files(_spec()) == [part]
    path = registry.download_weights("tiny-test", progress=False)
    assert path.read_bytes() == PAYLOAD and not part.exists()
    assert server.log[-1] == ("/tiny_test.bin", "bytes=123456-")
    assert all(r in ("", "bytes=123456-") for _, r in server.log)


def test_server_ignoring_range_restarts_cleanly(env, server):
    server.files["/tiny_test.bin"] = PAYLOAD
    server.no_range.add("/tiny_test.bin")
    home = env([server.url + "/tiny_test.bin"])
    _plant_partial(home, b"x" * 5000)
    assert registry.download_weights("tiny-test", progress=False).read_bytes() == PAYLOAD
    assert ("/tiny_test.bin", "bytes=5000-") in server.log and server.log[-1] == ("/tiny_test.bin", "")
    assert registry.partial_files(_spec()) == []


BIG = os.urandom(2_000_000)  # larger than gdown's 512 KiB chunks, so a cut transfer leaves bytes behind


def test_interrupted_download_keeps_the_part_and_resumes(env, server, monkeypatch):
    monkeypatch.setattr(registry.download, "RETRIES", 0)
    server.files["/tiny_test.bin"] = BIG
    server.cut_after["/tiny_test.bin"] = 1_200_000
    home = env([server.url + "/tiny_test.bin"], size=len(BIG), sha=hashlib.sha256(BIG).hexdigest())
    with pytest.raises(DownloadError, match="rerun to resume"):
        registry.download_weights("tiny-test", progress=False)
    (part,) = registry.partial_files(_spec())
    kept = part.stat().st_size
    assert 0 < kept <= 1_200_000 and kept % (512 * 1024) == 0
    assert not (home / "tiny_test.bin").exists()
    assert registry.download_weights("tiny-test", progress=False).read_bytes() == BIG
    assert server.log[-1] == ("/tiny_test.bin", f"bytes={kept}-")


def test_a_transient_cut_is_resumed_within_the_same_call(env, server):
    server.files["/tiny_test.bin"] = BIG
    server.cut_after["/tiny_test.bin"] = 1_200_000
    env([server.url + "/tiny_test.bin"], size=len(BIG), sha=hashlib.sha256(BIG).hexdigest())
    assert registry.download_weights("tiny-test", progress=False).read_bytes() == BIG
    assert len(server.log) == 2 and server.log[0] == ("/tiny_test.bin", "")
    assert server.log[1][1].startswith("bytes=") and server.log[1][1] != "bytes=0-"


def test_wrong_checksum_download_leaves_no_file(env, server):
    server.files["/tiny_test.bin"] = bytes(reversed(PAYLOAD))
    home = env([server.url + "/tiny_test.bin"])
    with pytest.raises(DownloadError, match="sha256 .* does not match") as info:
        registry.download_weights("tiny-test", progress=False)
    assert PAYLOAD_SHA in str(info.value)
    assert not (home / "tiny_test.bin").exists()
    assert registry.partial_files(_spec()) == [] and not registry.staging_path(_spec()).exists()


def test_a_server_sending_more_than_the_registered_size_is_refused(env, server):
    server.files["/tiny_test.bin"] = PAYLOAD + b"extra bytes" * 10_000
    home = env([server.url + "/tiny_test.bin"])
    with pytest.raises(DownloadError, match=f"more than the expected {len(PAYLOAD)} bytes"):
        registry.download_weights("tiny-test", progress=False)
    assert not (home / "tiny_test.bin").exists()


def test_failing_urls_fall_through_to_the_next(env, server):
    server.files["/good.bin"] = PAYLOAD
    server.html["/page.bin"] = "<html><title>Sign in</title></html>"
    env([server.url + "/missing.bin", server.url + "/page.bin", server.url + "/good.bin"])
    path = registry.download_weights("tiny-test", progress=False)
    assert path.read_bytes() == PAYLOAD
    assert [p for p, _ in server.log][-1] == "/good.bin"
    assert {p for p, _ in server.log} == {"/missing.bin", "/page.bin", "/good.bin"}


def test_all_urls_failing_names_each_failure(env, server):
    server.html["/page.bin"] = "<html>login</html>"
    env([server.url + "/missing.bin", server.url + "/page.bin"])
    with pytest.raises(DownloadError) as info:
        registry.download_weights("tiny-test", progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert "404" in message and "/page.bin: sha256" in message and PAYLOAD_SHA in message


def test_google_drive_links_are_handed_to_gdown_and_still_verified(env, monkeypatch):
    import gdown

    seen = []

    def fake_download(url, output, **kw):
        seen.append((url, kw["resume"]))
        Path(output).write_bytes(PAYLOAD)
        kw["hasher"].update(PAYLOAD)
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    link = "https://drive.google.com/file/d/FILEID123/view?usp=sharing"
    home = env([link])
    assert registry.download_weights("tiny-test", progress=False) == home / "tiny_test.bin"
    assert seen == [(link, True)]


# --------------------------------------------------------------------------- import


def test_import_copies_and_keeps_the_source(env, tmp_path):
    home = env([])
    src = tmp_path / "downloads" / "my copy.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    dest = registry.import_weights("tiny-test", src)
    assert dest == home / "tiny_test.bin" and dest.read_bytes() == PAYLOAD
    assert src.read_bytes() == PAYLOAD
    assert registry.resolve("tiny-test") == dest
    assert registry.import_weights("tiny-test", dest) == dest  # importing the installed file is a no-op


def test_import_refuses_a_different_file_and_leaves_nothing(env, tmp_path):
    home = env([])
    src = tmp_path / "other.bin"
    src.write_bytes(bytes(reversed(PAYLOAD)))
    with pytest.raises(ChecksumError, match="not imported"):
        registry.import_weights("tiny-test", src)
    assert src.exists()
    assert not (home / "tiny_test.bin").exists() and list(home.iterdir()) == []
    src.write_bytes(PAYLOAD[:5])
    with pytest.raises(ChecksumError, match="5 bytes"):
        registry.import_weights("tiny-test", src)
    with pytest.raises(WeightsNotFoundError):
        registry.import_weights("tiny-test", tmp_path / "missing.bin")


def test_sha256_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(PAYLOAD)
    assert registry.sha256_file(path) == PAYLOAD_SHA
