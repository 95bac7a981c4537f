"""``faceiqa weights``: list, download, import and verify model weights."""

from __future__ import annotations

import click

from faceiqa import hub as registry
from faceiqa.cli._common import fail
from faceiqa.errors import ChecksumError, FaceIQAError, WeightsNotFoundError


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@click.group("weights")
def weights_group() -> None:
    """Model weights: list, download, import and verify them.

    Files are looked up in $FACEIQA_HOME (default ~/.cache/faceiqa), then in the bundled
    pretrained/ folder; downloads go to $FACEIQA_HOME (FACEIQA_OFFLINE=1 forbids them).
    """


@weights_group.command("list")
def list_cmd() -> None:
    """Show every registered set of weights and where it is on this machine."""
    try:
        manifest = registry.load_manifest()
    except FaceIQAError as exc:
        raise fail(exc) from None
    if not manifest.weights:
        click.echo("no weights registered")
        return
    rows = [("NAME", "KIND", "SIZE", "LOCAL", "WHERE")]
    for spec in manifest.weights:
        found = registry.find_local(spec.name)
        name = spec.name + (" (default)" if spec.name == manifest.default else "")
        where = str(found[0]) if found else str(registry.weights_home() / spec.file)
        rows.append((name, spec.kind, _size(spec.size), "yes" if found else "no", where))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4])


@weights_group.command("download")
@click.argument("name")
@click.option("--force", is_flag=True, help="Download again even if a valid local copy exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def download_cmd(name: str, force: bool, quiet: bool) -> None:
    """Download NAME into $FACEIQA_HOME (resumable, sha256-verified); print its path.

    Nothing is downloaded when a verified copy is already on this machine (see --force).
    """
    try:
        path = registry.download_weights(name, progress=not quiet, force=force)
    except FaceIQAError as exc:
        raise fail(exc) from None
    click.echo(str(path))


@weights_group.command("import")
@click.argument("name")
@click.argument("path", type=click.Path(dir_okay=False))
def import_cmd(name: str, path: str) -> None:
    """Verify PATH against NAME's sha256 and copy it into $FACEIQA_HOME (PATH is kept)."""
    try:
        dest = registry.import_weights(name, path)
    except FaceIQAError as exc:
        raise fail(exc) from None
    click.echo(str(dest))


@weights_group.command("verify")
@click.argument("name", required=False)
def verify_cmd(name: str | None) -> None:
    """Check size and sha256 of NAME's local copy (all local copies without NAME).

    Exits 1 if a checked file is corrupt, or if NAME has no local copy.
    """
    try:
        names = [name] if name else [s.name for s in registry.list_weights()]
        if name:
            registry.get_spec(name)
    except FaceIQAError as exc:
        raise fail(exc) from None
    bad = 0
    for n in names:
        try:
            path = registry.verify(n)
        except WeightsNotFoundError:
            if name:
                raise click.ClickException(f"{n}: no local copy (run `faceiqa weights download {n}`)") from None
            click.echo(f"missing  {n}")
            continue
        except ChecksumError as exc:
            bad += 1
            click.echo(f"CORRUPT  {n}: {exc}")
            continue
        click.echo(f"ok       {n}  {path}")
    if bad:
        raise click.ClickException(f"{bad} corrupt weights file(s)")


def register(main: click.Group) -> None:
    """Attach the ``weights`` command group to the top-level CLI."""
    main.add_command(weights_group)
