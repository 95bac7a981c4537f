"""Command-line interface: a thin layer over the Python API.

Each command group lives in its own module and is registered on :data:`main` here.
Exit codes: 0 done (bad input files are reported, not fatal), 1 nothing could be
processed, 2 usage error (click's convention).
"""

from __future__ import annotations

import logging

import click

from faceiqa import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="faceiqa")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Score and filter face images by quality."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="faceiqa: %(levelname)s: %(message)s")


def _register() -> None:
    """Attach the command groups that exist (each lives in faceiqa/cli/<name>.py)."""
    import importlib

    for name in ("weights", "scoring", "evaluate", "train", "export"):
        try:
            module = importlib.import_module(f"faceiqa.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"faceiqa.cli.{name}":
                continue
            raise
        module.register(main)


_register()
