"""``faceiqa evaluate ...``: what a quality score is worth (agreement, utility, monotonicity)."""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Any

import click
import numpy as np

from faceiqa.cli._common import device_option, fail, weights_option
from faceiqa.errors import FaceIQAError

log = logging.getLogger("faceiqa.cli.evaluate")

_progress_option = click.option("--progress/--no-progress", default=False, help="Show a progress bar on stderr.")

_EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_EXISTING_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
_OUT_FILE = click.Path(dir_okay=False, path_type=Path)


def _evaluate_module():
    """``faceiqa.evaluation`` (its runs loaded), or a one-line error when the evaluation extras are missing."""
    try:
        from faceiqa import evaluation as ev

        for name in ("common", "metrics", "pairs", "edc_runs", "sensitivity", "mos", "degraded_set", "realfaces"):
            importlib.import_module(f"faceiqa.evaluation.{name}")
    except ModuleNotFoundError as exc:
        if exc.name in ("scipy", "matplotlib", "pandas"):
            raise click.ClickException(f"'faceiqa evaluate' needs {exc.name}: pip install 'faceiqa[eval]'") from None
        raise
    return ev


def _progress(enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return lambda items: tqdm(items, unit="img", leave=False)


def _parse_floats(text: str, param: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}", param_hint=param) from None
    if not values:
        raise click.BadParameter("expected at least one number", param_hint=param)
    return values


def _spread_sample(ev: Any, images_dir: Path, pairs_path: Path | None, limit: int) -> list[Path]:
    """Up to ``limit`` images of ``images_dir`` spread evenly over its sorted list; only the
    images of ``pairs_path``'s pairs when given.

    Raises:
        FaceIQAError: no image is left.
    """
    paths = ev.list_images(images_dir)
    if pairs_path:
        from faceiqa.evaluation.verification import read_pairs

        wanted = {k for pair in ev.pair_image_keys(read_pairs(pairs_path)) for k in pair}
        paths = [p for p in paths if ev.image_key(p, images_dir) in wanted]
    if not paths:
        raise FaceIQAError(f"no images under {images_dir}")
    idx = np.unique(np.linspace(0, len(paths) - 1, min(limit, len(paths))).round().astype(int))
    return [paths[i] for i in idx]


def _parse_spec(spec: str | None) -> str | None:
    from faceiqa.evaluation.degrade import format_spec, parse_spec

    if spec is None:
        return None
    if spec.strip().lower() == "mix":
        return "mix"
    try:
        return format_spec(parse_spec(spec))
    except FaceIQAError as exc:
        raise click.BadParameter(str(exc), param_hint="--degrade") from None


def _fmt_ci(ci: tuple[float, float]) -> str:
    low, high = ci
    if not (np.isfinite(low) and np.isfinite(high)):
        return ""
    return f"[{low:.4f}, {high:.4f}]"


def register(main: click.Group) -> None:
    """Attach the ``evaluate`` group to the top-level CLI."""
    main.add_command(evaluate)


@click.group()
def evaluate() -> None:
    """Measure a quality score: agreement with people, recognition utility, monotonicity."""


# ---------------------------------------------------------------------------------------


@evaluate.command("mos")
@click.option(
    "--scores", "scores_csv", required=True, type=_EXISTING_FILE, help="Quality CSV (faceiqa report or path,score)."
)
@click.option(
    "--labels",
    "labels_csv",
    required=True,
    type=_EXISTING_FILE,
    help="Label CSV (a path/image column and a label column).",
)
@click.option("--score-column", default="score", show_default=True, help="Score column in --scores.")
@click.option("--label-column", default="mos", show_default=True, help="Label column in --labels.")
@click.option(
    "--bootstrap",
    "n_bootstrap",
    default=1000,
    show_default=True,
    type=click.IntRange(min=0),
    help="Bootstrap resamples (0: no intervals).",
)
@click.option(
    "--confidence",
    default=0.95,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Interval coverage.",
)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Bootstrap seed.")
@click.option("--json", "json_out", type=_OUT_FILE, help="Also write the results as JSON here.")
def mos_command(scores_csv, labels_csv, score_column, label_column, n_bootstrap, confidence, seed, json_out) -> None:
    """Agreement of quality scores with human labels: SRCC, KRCC, PLCC, RMSE.

    Images are joined on their path, comparing trailing components (a bare file name also
    matches). PLCC and RMSE are computed after the 4-parameter logistic fit (a line when
    that fit fails; the output says which). Intervals are percentile bootstrap intervals
    over images.
    """
    ev = _evaluate_module()

    try:
        res = ev.evaluate_mos(
            scores_csv,
            labels_csv,
            score_column=score_column,
            label_column=label_column,
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            seed=seed,
        )
    except FaceIQAError as exc:
        raise fail(exc) from None
    a = res.agreement
    click.echo(
        f"images: {res.n_matched} used of {res.n_labels} labelled "
        f"({res.n_failed} without a score, {res.n_unmatched} not in the score CSV)"
    )
    pct = f"{100 * a.confidence:g}%"
    click.echo(f"{'metric':<6} {'value':>8}  {pct + ' interval' if n_bootstrap else ''}")
    for name, value, ci in (
        ("SRCC", a.srcc, a.srcc_ci),
        ("KRCC", a.krcc, a.krcc_ci),
        ("PLCC", a.plcc, a.plcc_ci),
        ("RMSE", a.rmse, a.rmse_ci),
    ):
        click.echo(f"{name:<6} {value:>8.4f}  {_fmt_ci(ci)}".rstrip())
    fit = "4-parameter logistic" if a.fit.kind == "logistic" else f"linear ({a.fit.message})"
    click.echo(f"PLCC/RMSE after a {fit} fit; RMSE in label units")
    if n_bootstrap:
        click.echo(f"bootstrap: {a.n_bootstrap_valid}/{a.n_bootstrap} valid resamples, seed {a.seed}")
    if json_out:
        json_out.write_text(json.dumps(res.to_dict(), indent=2) + "\n")


# ---------------------------------------------------------------------------------------


def _limit_pairs(pairs, limit: int | None):
    """Up to ``limit`` pairs, half genuine and half impostor, spread evenly over the file."""
    if not limit or limit >= len(pairs):
        return pairs
    out = []
    for kind in (True, False):
        group = [p for p in pairs if p.genuine is kind]
        take = min(len(group), limit // 2 + (limit % 2 if kind else 0))
        idx = np.unique(np.linspace(0, len(group) - 1, take).round().astype(int)) if take else []
        out += [group[i] for i in idx]
    return out


@evaluate.command("edc")
@click.option(
    "--pairs", "pairs_path", required=True, type=_EXISTING_FILE, help="Verification pairs (LFW pairs.txt format)."
)
@click.option(
    "--images",
    "images_dir",
    required=True,
    type=_EXISTING_DIR,
    help="Image folder in the LFW layout <Name>/<Name>_<NNNN>.jpg.",
)
@click.option(
    "--scores",
    "scores",
    multiple=True,
    type=_EXISTING_FILE,
    help="Quality CSV; more CSVs may follow it (or repeat --scores).",
)
@click.argument("more_scores", nargs=-1, type=_EXISTING_FILE)
@click.option(
    "--baselines",
    default="",
    help="Comma-separated baselines computed on the fly: detprob,sharpness,exposure,eye_distance,random (or 'all').",
)
@click.option(
    "--degrade",
    "degrade_spec",
    default=None,
    help="Degrade the pair images first, e.g. 'blur:3,jpeg:2', or 'mix' (one random kind and level per image); seeded per image.",
)
@click.option(
    "--degrade-fraction",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
    help="Share of images degraded (chosen per image from the seed).",
)
@click.option(
    "--fmr", "fmr_text", default="1e-2,1e-3", show_default=True, help="Target FMRs the thresholds are fixed at."
)
@click.option(
    "--max-discard",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Discard fraction of the partial AUC and the plot's x range.",
)
@click.option("--plot", "plot_path", type=_OUT_FILE, help="Write the EDC plot (PNG) here.")
@click.option("--table", "table_path", type=_OUT_FILE, help="Write the table here (.csv, or .md for markdown).")
@click.option("--score-column", default="score", show_default=True, help="Score column in the quality CSVs.")
@click.option(
    "--limit",
    type=click.IntRange(min=2),
    default=None,
    help="Use at most N pairs (half genuine, half impostor, spread over the file).",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seed of the degradations and the random baseline.",
)
@click.option("--device", default=None, help="Torch device for detection and recognition (default: automatic).")
@click.option(
    "--bands",
    "bands_text",
    default=None,
    help="Also print, for each score CSV, the FNMR at FMR 1e-3 of the genuine pairs by band of pair "
    "quality, e.g. 0,0.3,0.5,0.7,0.9,1: what a --min threshold means.",
)
@_progress_option
def edc_command(
    pairs_path,
    images_dir,
    scores,
    more_scores,
    baselines,
    degrade_spec,
    degrade_fraction,
    fmr_text,
    max_discard,
    plot_path,
    table_path,
    score_column,
    limit,
    seed,
    device,
    bands_text,
    progress,
) -> None:
    """Error-versus-Discard Characteristic: does discarding low-quality images cut FNMR?

    Thresholds are fixed on all pairs for each target FMR; genuine pairs are then discarded
    in increasing pair quality (the lower of the two images' qualities) and the FNMR is
    recomputed. Images a source could not rate (no face, failed, missing from its CSV) get
    its lowest value; pairs with an image without a face count as non-matches.

    With --degrade the pair images (all, or the --degrade-fraction chosen per image) are
    degraded on the fly before detection, recognition and the baselines. Quality CSVs must
    then have been computed on the same degraded images: make them with 'faceiqa evaluate
    degrade-set' (same --degrade, --degrade-fraction and --seed) and score that folder with
    'faceiqa score'.
    """
    ev = _evaluate_module()
    from faceiqa.evaluation.baselines import BASELINES
    from faceiqa.evaluation.edc import plot_edc
    from faceiqa.evaluation.verification import read_pairs

    csvs = list(scores) + list(more_scores)
    names = [b.strip().lower() for b in baselines.split(",") if b.strip()]
    if names == ["all"]:
        names = list(BASELINES)
    unknown = [b for b in names if b not in BASELINES]
    if unknown:
        raise click.BadParameter(
            f"unknown baseline(s) {', '.join(unknown)} (known: {', '.join(BASELINES)})", param_hint="--baselines"
        )
    if not csvs and not names:
        raise click.UsageError("give at least one quality source: --scores Q.csv and/or --baselines")
    fmrs = _parse_floats(fmr_text, "--fmr")
    if not all(0 < f < 1 for f in fmrs):
        raise click.BadParameter("target FMRs must be in (0, 1)", param_hint="--fmr")
    spec = _parse_spec(degrade_spec)
    if degrade_fraction < 1.0 and spec is None:
        raise click.UsageError("--degrade-fraction needs --degrade")
    edges = _parse_floats(bands_text, "--bands") if bands_text else None

    try:
        pairs = _limit_pairs(read_pairs(pairs_path), limit)
        detector, recognizer = ev.load_models(device)
        report = ev.evaluate_edc(
            pairs,
            images_dir,
            detector=detector,
            recognizer=recognizer,
            score_csvs=csvs,
            baselines=names,
            degrade_spec=spec,
            degrade_fraction=degrade_fraction,
            fmrs=fmrs,
            max_discard=max_discard,
            seed=seed,
            score_column=score_column,
            progress=_progress(progress),
        )
    except FaceIQAError as exc:
        raise fail(exc) from None

    s = report.scores
    n_gen = int(s.genuine.sum())
    click.echo(
        f"pairs: {len(s.keys)} ({n_gen} genuine, {len(s.keys) - n_gen} impostor); images: {len(s.images)} "
        f"({s.count('no_face')} without a face, {s.count('unreadable')} unreadable); degrade: {s.plan.describe()}"
    )
    for c in report.curves:
        if c.source == report.sources[0].name:
            p = c.point
            note = "" if p.resolvable else f"  (only {p.n_impostors} impostors: FMR {p.target_fmr:g} not resolvable)"
            click.echo(
                f"FMR {p.target_fmr:g}: distance threshold {p.threshold:.4f}, "
                f"achieved FMR {p.achieved_fmr:.4g}, FNMR {p.fnmr:.4f}{note}"
            )
    for src in report.sources:
        if src.n_unrated:
            absent = f", {src.n_absent} absent from its CSV" if src.n_absent else ""
            click.echo(f"{src.name}: {src.n_unrated} of {src.n_images} images unrated{absent} -> lowest quality")
    click.echo(ev.format_table(report.table))
    click.echo(f"pauc = mean FNMR over discard 0..{max_discard:g} (lower is better)")
    if edges is not None:
        for src in report.sources[: len(csvs)]:
            try:
                bands, threshold = ev.score_bands(report.scores, src, edges, fmr=1e-3)
            except FaceIQAError as exc:
                raise fail(exc) from None
            click.echo(f"\n{src.name}: FNMR at FMR 1e-3 (distance threshold {threshold:.4f}) by band of pair quality")
            click.echo(ev.format_table(ev.bands_table(bands)))
    try:
        if table_path:
            ev.write_table(report.table, table_path)
            click.echo(f"table: {table_path}")
        if plot_path:
            title = f"EDC (degrade: {s.plan.describe()})" if s.plan.active else "EDC"
            plot_edc(report.curves, plot_path, max_discard=max_discard, title=title)
            click.echo(f"plot: {plot_path}")
    except OSError as exc:
        raise fail(exc) from None
    except ModuleNotFoundError as exc:
        if exc.name != "matplotlib":
            raise
        raise click.ClickException("--plot needs matplotlib: pip install 'faceiqa[eval]'") from None


# ---------------------------------------------------------------------------------------


@evaluate.command("degrade-set")
@click.option("--images", "images_dir", required=True, type=_EXISTING_DIR, help="Folder of pristine images.")
@click.option("--degrade", "degrade_spec", required=True, help="Degradations, e.g. 'blur:3,jpeg:2', or 'mix' (one random kind and level per image).")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the degraded PNG copies.",
)
@click.option("--pairs", "pairs_path", type=_EXISTING_FILE, help="Only the images named in this pairs file.")
@click.option(
    "--degrade-fraction",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
    help="Share of images degraded (the others are copied unchanged).",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Base seed (same as 'evaluate edc --seed').",
)
@_progress_option
def degrade_set_command(images_dir, degrade_spec, out_dir, pairs_path, degrade_fraction, seed, progress) -> None:
    """Write copies (PNG, same relative names) exactly as 'evaluate edc --degrade' sees them.

    Existing files are never overwritten; a folder made with other settings is refused.
    """
    ev = _evaluate_module()
    from faceiqa.evaluation.verification import read_pairs

    spec = _parse_spec(degrade_spec)
    try:
        keys = None
        if pairs_path:
            keys = [k for pair in ev.pair_image_keys(read_pairs(pairs_path)) for k in pair]
        res = ev.degrade_set(
            images_dir, spec, out_dir, seed=seed, fraction=degrade_fraction, keys=keys, progress=_progress(progress)
        )
    except FaceIQAError as exc:
        raise fail(exc) from None
    click.echo(
        f"{res.written} written, {res.skipped} already present (kept), {len(res.failed)} unreadable -> {res.out_dir}"
    )
    for key, msg in list(res.failed.items())[:10]:
        click.echo(f"  {key}: {msg}", err=True)
    if res.written == 0 and res.skipped == 0:
        raise click.ClickException("no image could be degraded")


# ---------------------------------------------------------------------------------------


@evaluate.command("monotonicity")
@click.option("--images", "images_dir", required=True, type=_EXISTING_DIR, help="Folder of pristine face photos.")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="Photos to use (spread evenly over the sorted list).",
)
@click.option("--kinds", default=None, help="Comma-separated degradation kinds (default: all).")
@weights_option
@device_option
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Degradation seed.")
@click.option("--table", "table_path", type=_OUT_FILE, help="Write the table here (.csv, or .md for markdown).")
@click.option("--pairs", "pairs_path", type=_EXISTING_FILE, help="Only the photos named in this pairs file.")
def monotonicity_command(images_dir, limit, kinds, weights, device, seed, table_path, pairs_path) -> None:
    """Does the score fall as each degradation gets stronger?

    For each kind, the Spearman correlation between level (0 = pristine .. 5) and score over
    the levels of each photo, averaged over photos (ideal: -1). Faces are aligned to the
    model's template from the pristine photo; the degradations are applied to the crop.
    """
    ev = _evaluate_module()
    from faceiqa.evaluation.degrade import get_kind

    kind_list = None
    if kinds:
        try:
            kind_list = [get_kind(k).name for k in kinds.split(",") if k.strip()]
        except FaceIQAError as exc:
            raise click.BadParameter(str(exc), param_hint="--kinds") from None
    try:
        chosen = _spread_sample(ev, images_dir, pairs_path, limit)
        scorer = ev.load_quality_scorer(weights, device)
        detector = ev.load_detector(device)
        rows, skipped = ev.monotonicity_of_scorer(
            chosen, scorer=scorer, detector=detector, kinds=kind_list, seed=seed, root=images_dir
        )
    except FaceIQAError as exc:
        raise fail(exc) from None
    table = ev.monotonicity_table(rows)
    click.echo(f"photos: {len(chosen) - skipped} used, {skipped} skipped (no face or unreadable)")
    click.echo(ev.format_table(table))
    click.echo("srcc = Spearman correlation of score with severity level; -1 is ideal")
    if table_path:
        try:
            ev.write_table(table, table_path)
        except OSError as exc:
            raise fail(exc) from None
        click.echo(f"table: {table_path}")


# ---------------------------------------------------------------------------------------


@evaluate.command("make-pairs")
@click.option("--images", "images_dir", required=True, type=_EXISTING_DIR, help="Photo folder, one sub-folder per person (<Name>/<Name>_NNNN.jpg).")
@click.option("--out", "out_path", required=True, type=_OUT_FILE, help="Pairs file to write (pairs.txt layout, one fold).")
@click.option("--people-from", "people_from", type=_EXISTING_FILE, help="Only people named in these pairs' --folds (identity-disjoint splits).")
@click.option("--folds", default=None, help="Comma-separated 0-based folds of --people-from.")
@click.option("--n", "n_pairs", default=3000, show_default=True, type=click.IntRange(min=1), help="Genuine pairs wanted (as many impostor pairs).")
@click.option("--max-per-person", default=50, show_default=True, type=click.IntRange(min=1), help="Cap on one person's genuine pairs.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Seed of the draw.")
def make_pairs_command(images_dir, out_path, people_from, folds, n_pairs, max_per_person, seed) -> None:
    """Draw verification pairs for 'evaluate edc' (more impostors than LFW's 300 per fold,
    so that FMR 1e-3 thresholds can be set)."""
    from faceiqa.evaluation.verification import make_pairs, read_pairs, write_pairs

    if out_path.exists():
        raise click.UsageError(f"{out_path} already exists")
    keep = None
    if people_from is not None:
        fold_set = {int(v) for v in _parse_floats(folds, "--folds")} if folds else None
        keep = {n for p in read_pairs(people_from) if fold_set is None or p.fold in fold_set for n in (p.name1, p.name2)}
    elif folds:
        raise click.UsageError("--folds needs --people-from")
    photos: dict[str, list[int]] = {}
    for person in sorted(d for d in images_dir.iterdir() if d.is_dir()):
        if keep is not None and person.name not in keep:
            continue
        nums = []
        for f in person.iterdir():
            stem = f.stem
            prefix = person.name + "_"
            if stem.startswith(prefix) and stem[len(prefix):].isdigit():
                nums.append(int(stem[len(prefix):]))
        if nums:
            photos[person.name] = sorted(nums)
    try:
        pairs = make_pairs(photos, n_pairs, seed=seed, max_per_person=max_per_person)
        write_pairs(pairs, out_path)
    except FaceIQAError as exc:
        raise fail(exc) from None
    n = sum(p.genuine for p in pairs)
    click.echo(f"{n} genuine and {len(pairs) - n} impostor pairs of {len(photos)} people -> {out_path}")


# ---------------------------------------------------------------------------------------


@evaluate.command("resolution")
@click.option("--images", "images_dir", required=True, type=_EXISTING_DIR, help="Folder of face photos.")
@click.option("--pairs", "pairs_path", type=_EXISTING_FILE, help="Only the photos named in this pairs file.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(min=1), help="Photos to use (spread evenly over the sorted list).")
@click.option("--factors", default="1,1.5,2,3,4,6", show_default=True, help="Increasing shrink factors (1 = original).")
@click.option("--mode", type=click.Choice(["down-up", "down", "both"]), default="both", show_default=True, help="Shrink and enlarge back, only shrink, or both.")
@weights_option
@device_option
def resolution_command(images_dir, pairs_path, limit, factors, mode, weights, device) -> None:
    """Are the same faces ranked in order of their real resolution?

    Each photo is shrunk by every factor (and, in down-up mode, enlarged back), run through
    detection, alignment and the model; the scores of one face should fall as the factor grows.
    """
    ev = _evaluate_module()
    from faceiqa.api import FaceQualityAssessor

    fs = _parse_floats(factors, "--factors")
    try:
        chosen = _spread_sample(ev, images_dir, pairs_path, limit)
        assessor = FaceQualityAssessor(weights, device=device)
        modes = ["down-up", "down"] if mode == "both" else [mode]
        results = [ev.resolution_ranking(chosen, assessor, factors=fs, mode=m) for m in modes]
    except FaceIQAError as exc:
        raise fail(exc) from None
    names = ", ".join(f"{f:g}" for f in fs)
    click.echo(f"mode     faces  mean_srcc  in_order  lost  mean score per factor ({names})  falls per step")
    for r in results:
        means = " ".join(f"{m:.3f}" for m in r.mean_scores)
        steps = " ".join(f"{v:.2f}" for v in r.step_order)
        click.echo(f"{r.mode:8s} {r.n_faces:5d}  {r.mean_srcc:9.4f}  {r.in_order:8.3f}  {r.n_lost:4d}  {means}  {steps}")
    for r in results:
        gains = " ".join(f"{v:.2f}" for v in r.step_gain)
        small = " ".join("  -" if n == 0 else f"{v:.2f}" for v, n in zip(r.small_fall, r.n_small))
        counts = " ".join(str(n) for n in r.n_small)
        click.echo(
            f"{r.mode:8s} gains > {r.gain_tolerance:g} per step: {gains}; falls where the smaller face has < "
            f"{r.small_ied:g} px between the eyes: {small} (faces: {counts}; all steps {r.small_fall_all:.3f})"
        )
    click.echo(
        "mean_srcc = Spearman correlation of score with shrink factor (-1 ideal); in_order = share of faces "
        "ranked exactly in order; falls per step = share of faces whose score falls from one factor to the next"
    )


# ---------------------------------------------------------------------------------------


@evaluate.command("realfaces")
@click.option("--root", required=True, type=_EXISTING_DIR, help="Folder with index.csv (file, quality hq/lq, eye_distance_px) and the photos.")
@click.option("--shrink", default="56,71", show_default=True, help="Inter-eye distance range (px) the hq photos are shrunk to in the second condition; 'none' skips it.")
@click.option("--baselines", default="sharpness,exposure,eye_distance,detprob", show_default=True, help="Comma-separated baselines to report beside the model.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Seed of the shrink targets.")
@click.option("--table", "table_path", type=_OUT_FILE, help="Also write the table (.md or .csv).")
@click.option("--scores", "scores_path", type=_OUT_FILE, help="Also write every photo's measures as CSV.")
@weights_option
@device_option
def realfaces_command(root, shrink, baselines, seed, table_path, scores_path, weights, device) -> None:
    """Does the score separate real high-quality from real low-quality face photos?

    Prints, per condition (as is; hq photos shrunk so that size cannot separate the classes),
    the ROC AUC of the model and of each baseline for hq vs lq, with the class medians.
    """
    ev = _evaluate_module()
    from faceiqa.api import FaceQualityAssessor

    rng = None if shrink.strip().lower() == "none" else tuple(_parse_floats(shrink, "--shrink"))
    if rng is not None and len(rng) != 2:
        raise click.BadParameter("give two numbers, low,high", param_hint="--shrink")
    names = [b.strip() for b in baselines.split(",") if b.strip()]
    try:
        photos = ev.read_index(root)
        assessor = FaceQualityAssessor(weights, device=device)
        scores = ev.score_realfaces(photos, assessor, baselines=names, shrink=rng, seed=seed)
        table = ev.realfaces_table(scores)
    except FaceIQAError as exc:
        raise fail(exc) from None
    click.echo(ev.format_table(table))
    if table_path is not None:
        ev.write_table(table, table_path)
    if scores_path is not None:
        import pandas as pd

        rows = [{"file": s.photo.path.name, "quality": s.photo.quality, "condition": s.condition,
                 "eye_distance": s.eye_distance, **s.values} for s in scores]
        pd.DataFrame(rows).to_csv(scores_path, index=False)

