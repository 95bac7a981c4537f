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


# Imported last: each command module registers itself on ``main``.
from faceiqa.cli import evaluate, export, scoring, train, weights  # noqa: E402

for _module in (weights, scoring, evaluate, train, export):
    _module.register(main)
