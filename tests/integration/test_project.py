"""Project-level checks: README and CI agree, the package imports, the CLI starts."""

from __future__ import annotations

import re

from click.testing import CliRunner
from paths import REPO

import faceiqa
from faceiqa.cli import main


def _readme_setup_lines() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Set up\s+```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert block, "README needs a '## Set up' section with one fenced code block"
    return [ln.strip() for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_has_exactly_two_setup_lines_and_ci_runs_them():
    lines = _readme_setup_lines()
    assert len(lines) == 2, lines
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    for line in lines:
        assert line in [c.strip() for c in ci], f"CI does not run README's line: {line}"


def test_version_and_help():
    runner = CliRunner()
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert faceiqa.__version__ in result.output
    assert runner.invoke(main, ["--help"]).exit_code == 0


def test_the_code_passes_its_ruff_configuration():
    import shutil
    import subprocess

    import pytest

    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the dev extra)")
    result = subprocess.run([ruff, "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]


def test_readme_python_blocks_run_as_written(monkeypatch, capsys):
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README has no Python example"
    monkeypatch.chdir(REPO)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "examples/photos/dogs.jpg [] " in out and "bald_guys.jpg" in out
