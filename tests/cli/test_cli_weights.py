"""`faceiqa weights list | download | import | verify` through click's CliRunner."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from fileserver import PAYLOAD, PAYLOAD_SHA, FileServer, write_manifest

import faceiqa.hub as registry
from faceiqa.cli import main


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run the CLI against a private manifest and FACEIQA_HOME; returns (invoke, home)."""
    home = tmp_path / "home"
    monkeypatch.setenv("FACEIQA_HOME", str(home))
    monkeypatch.setattr(registry.manifest, "_data_dirs", lambda: [tmp_path / "pretrained"])
    runner = CliRunner()

    def use(urls: list[str]):
        monkeypatch.setenv(
            "FACEIQA_MANIFEST", str(write_manifest(tmp_path / "manifest.json", urls, default="tiny-test"))
        )

    def invoke(*args: str):
        return runner.invoke(main, ["weights", *args])

    return invoke, use, home


def test_list_shows_name_kind_size_presence_and_place(cli):
    invoke, use, home = cli
    use([])
    result = invoke("list")
    assert result.exit_code == 0, result.output
    header, row = result.output.strip().splitlines()
    assert header.split() == ["NAME", "KIND", "SIZE", "LOCAL", "WHERE"]
    assert row.split()[:6] == ["tiny-test", "(default)", "quality", "0.3", "MB", "no"]
    assert row.endswith(str(home / "tiny_test.bin"))
    home.mkdir()
    (home / "tiny_test.bin").write_bytes(PAYLOAD)
    assert " yes " in invoke("list").output


def test_list_of_the_shipped_manifest_runs(monkeypatch):
    monkeypatch.delenv("FACEIQA_MANIFEST", raising=False)
    result = CliRunner().invoke(main, ["weights", "list"])
    assert result.exit_code == 0 and "hyperiqa-koniq" in result.output and "109.8 MB" in result.output


def test_download_offline_fails_with_one_line(cli):
    invoke, use, home = cli
    use(["https://example.invalid/tiny_test.bin"])
    result = invoke("download", "tiny-test")
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert PAYLOAD_SHA in result.output and str(home / "tiny_test.bin") in result.output


def test_download_from_a_local_server(cli, monkeypatch):
    invoke, use, home = cli
    monkeypatch.delenv("FACEIQA_OFFLINE")
    with FileServer() as server:
        server.files["/w.bin"] = PAYLOAD
        use([server.url + "/w.bin"])
        result = invoke("download", "tiny-test", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(home / "tiny_test.bin")
    assert (home / "tiny_test.bin").read_bytes() == PAYLOAD


def test_import_then_verify(cli, tmp_path):
    invoke, use, home = cli
    use([])
    src = tmp_path / "mine.bin"
    src.write_bytes(PAYLOAD)
    result = invoke("import", "tiny-test", str(src))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(home / "tiny_test.bin") and src.exists()
    result = invoke("verify", "tiny-test")
    assert result.exit_code == 0 and result.output.startswith("ok")
    assert invoke("verify").exit_code == 0


def test_import_of_a_wrong_file_fails(cli, tmp_path):
    invoke, use, home = cli
    use([])
    src = tmp_path / "wrong.bin"
    src.write_bytes(b"\0" * len(PAYLOAD))
    result = invoke("import", "tiny-test", str(src))
    assert result.exit_code == 1 and "does not match" in result.output
    assert not (home / "tiny_test.bin").exists()


def test_verify_reports_corrupt_and_missing(cli):
    invoke, use, home = cli
    use([])
    result = invoke("verify")
    assert result.exit_code == 0 and result.output.startswith("missing")
    result = invoke("verify", "tiny-test")
    assert result.exit_code == 1 and "no local copy" in result.output
    home.mkdir()
    (home / "tiny_test.bin").write_bytes(PAYLOAD[::-1])
    result = invoke("verify")
    assert result.exit_code == 1 and "CORRUPT" in result.output and "1 corrupt" in result.output


def test_unknown_name_is_a_clear_error(cli):
    invoke, use, _ = cli
    use([])
    for args in (("download", "tiny-tst"), ("verify", "tiny-tst"), ("import", "tiny-tst", "x")):
        result = invoke(*args)
        assert result.exit_code == 1 and "did you mean 'tiny-test'" in result.output
