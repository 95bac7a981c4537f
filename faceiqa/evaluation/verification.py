"""Face verification pairs (LFW ``pairs.txt`` format) and the k-fold accuracy protocol."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceiqa.errors import InvalidArgumentError


@dataclass(frozen=True)
class Pair:
    """One verification comparison.

    Attributes:
        name1, index1, name2, index2: identities (folder names) and 1-based photo numbers.
        genuine: True when both photos show the same person.
        fold: 0-based fold number.
    """

    name1: str
    index1: int
    name2: str
    index2: int
    genuine: bool
    fold: int

    def paths(self, images_dir: Path) -> tuple[Path, Path]:
        """Photo paths in the LFW layout ``<images>/<Name>/<Name>_<NNNN>.jpg``."""
        root = Path(images_dir)
        return (
            root / self.name1 / f"{self.name1}_{self.index1:04d}.jpg",
            root / self.name2 / f"{self.name2}_{self.index2:04d}.jpg",
        )


def read_pairs(path: str | Path) -> list[Pair]:
    """Read an LFW-style ``pairs.txt``.

    The first line holds ``<folds> <pairs per class per fold>``; each fold then lists its
    genuine pairs (``name i j``) followed by its impostor pairs (``name1 i name2 j``).

    Raises:
        InvalidArgumentError: the file does not follow that layout (message names the line).
    """
    lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    if not lines or len(lines[0]) != 2:
        raise InvalidArgumentError(f"{path}: first line must be '<folds> <pairs per fold>'")
    try:
        folds, per_fold = int(lines[0][0]), int(lines[0][1])
    except ValueError:
        raise InvalidArgumentError(f"{path}: first line must hold two integers") from None
    body = lines[1:]
    if len(body) != folds * per_fold * 2:
        raise InvalidArgumentError(
            f"{path}: expected {folds * per_fold * 2} pair lines for {folds} folds x {per_fold} x 2, got {len(body)}"
        )
    pairs: list[Pair] = []
    for n, fields in enumerate(body):
        fold = n // (2 * per_fold)
        try:
            if len(fields) == 3:
                pairs.append(Pair(fields[0], int(fields[1]), fields[0], int(fields[2]), True, fold))
            elif len(fields) == 4:
                pairs.append(Pair(fields[0], int(fields[1]), fields[2], int(fields[3]), False, fold))
            else:
                raise ValueError
        except ValueError:
            raise InvalidArgumentError(f"{path}: line {n + 2} is not a valid pair: {' '.join(fields)!r}") from None
    return pairs


# --------------------------------------------------------------------------- k-fold protocol


@dataclass(frozen=True)
class KFoldResult:
    """Outcome of the k-fold threshold protocol.

    Attributes:
        accuracies: (k,) accuracy in [0, 1] on each held-out fold.
        thresholds: (k,) distance threshold chosen on the other folds for each fold.
        folds: (k,) fold ids, in the order of the two arrays above.
        mean: mean of ``accuracies``.
        std: population standard deviation (ddof=0) of ``accuracies``, as the usual LFW
            evaluation scripts report it.
    """

    accuracies: np.ndarray
    thresholds: np.ndarray
    folds: np.ndarray
    mean: float
    std: float


def _check_scores(distances, genuine) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(distances, dtype=np.float64)
    g = np.asarray(genuine)
    if d.ndim != 1 or g.shape != d.shape:
        raise InvalidArgumentError(f"distances and labels must be 1-d of equal length, got {d.shape} and {g.shape}")
    if d.size == 0:
        raise InvalidArgumentError("no comparisons given")
    if not np.all(np.isfinite(d)):
        raise InvalidArgumentError("distances must be finite")
    if g.dtype != bool:
        if not np.all((g == 0) | (g == 1)):
            raise InvalidArgumentError("labels must be booleans or 0/1 (1 = same person)")
        g = g.astype(bool)
    return d, g


def verification_accuracy(distances, genuine, threshold: float) -> float:
    """Fraction of comparisons decided correctly when "same person" means ``distance < threshold``.

    Args:
        distances: (N,) comparison distances (smaller = more alike).
        genuine: (N,) booleans, True for same-person pairs.
        threshold: decision threshold in distance units.
    """
    d, g = _check_scores(distances, genuine)
    return float(np.mean((d < threshold) == g))


def best_threshold(distances, genuine) -> tuple[float, float]:
    """The threshold with the highest accuracy on these comparisons, searched exactly.

    Every distinct decision is tried: below the smallest distance, between each two
    consecutive distinct distances (their midpoint) and above the largest. Among equally
    accurate thresholds the smallest is returned.

    Returns:
        ``(threshold, accuracy)``; accuracy in [0, 1].
    """
    d, g = _check_scores(distances, genuine)
    order = np.argsort(d, kind="stable")
    ds, gs = d[order], g[order]
    # Cut positions: after the last copy of each distinct value (ties decide together).
    last_of_run = np.flatnonzero(np.r_[ds[1:] != ds[:-1], True])
    genuine_below = np.cumsum(gs)[last_of_run]  # genuine pairs accepted at each cut
    accepted = last_of_run + 1
    impostors_above = (~gs).sum() - (accepted - genuine_below)
    correct = np.r_[(~gs).sum(), genuine_below + impostors_above]  # first entry: accept none
    lo, hi = ds[last_of_run[:-1]], ds[last_of_run[:-1] + 1]
    mid = (lo + hi) / 2.0
    mid = np.where(mid > lo, mid, hi)  # adjacent floats: the midpoint may round down to lo
    cuts = np.r_[ds[0] - 1.0, mid, ds[-1] + 1.0]
    best = int(np.argmax(correct))
    return float(cuts[best]), float(correct[best] / d.size)


def kfold_accuracy(distances, genuine, folds) -> KFoldResult:
    """The standard LFW protocol: per fold, pick the threshold on the other folds, score this one.

    Args:
        distances: (N,) comparison distances (smaller = more alike).
        genuine: (N,) booleans, True for same-person pairs.
        folds: (N,) integer fold id of each comparison (at least two distinct ids).

    Returns:
        A :class:`KFoldResult` with per-fold accuracies and thresholds, their mean and std.
    """
    d, g = _check_scores(distances, genuine)
    f = np.asarray(folds)
    if f.shape != d.shape or not np.issubdtype(f.dtype, np.integer):
        raise InvalidArgumentError(f"folds must be an integer array shaped like distances, got {f.dtype} {f.shape}")
    ids = np.unique(f)
    if ids.size < 2:
        raise InvalidArgumentError("the k-fold protocol needs at least two folds")
    accs, ths = [], []
    for fold in ids:
        test = f == fold
        th, _ = best_threshold(d[~test], g[~test])
        ths.append(th)
        accs.append(float(np.mean((d[test] < th) == g[test])))
    accuracies = np.array(accs)
    return KFoldResult(accuracies, np.array(ths), ids, float(accuracies.mean()), float(accuracies.std()))


def write_pairs(pairs: list[Pair], path: str | Path) -> Path:
    """Write pairs in the ``pairs.txt`` layout read by :func:`read_pairs`.

    Every fold must hold as many genuine as impostor pairs (the layout's header gives one
    count per fold); within a fold genuine pairs are written first.

    Raises:
        InvalidArgumentError: the folds are unbalanced or of unequal sizes.
    """
    folds = sorted({p.fold for p in pairs})
    if folds != list(range(len(folds))):
        raise InvalidArgumentError("folds must be numbered 0..k-1")
    per_fold = {f: ([p for p in pairs if p.fold == f and p.genuine], [p for p in pairs if p.fold == f and not p.genuine]) for f in folds}
    sizes = {len(g) for g, _ in per_fold.values()} | {len(i) for _, i in per_fold.values()}
    if len(sizes) != 1:
        raise InvalidArgumentError("every fold needs the same number of genuine and impostor pairs")
    lines = [f"{len(folds)}\t{sizes.pop()}"]
    for f in folds:
        genuine, impostor = per_fold[f]
        lines += [f"{p.name1}\t{p.index1}\t{p.index2}" for p in genuine]
        lines += [f"{p.name1}\t{p.index1}\t{p.name2}\t{p.index2}" for p in impostor]
    out = Path(path)
    out.write_text("\n".join(lines) + "\n")
    return out


def make_pairs(
    photos: dict[str, list[int]], n_pairs: int, *, seed: int = 0, max_per_person: int = 50
) -> list[Pair]:
    """Random verification pairs (one fold, as many genuine as impostor) from photo lists.

    Args:
        photos: person name -> photo numbers (1-based, as in the LFW file names).
        n_pairs: wanted genuine pairs (and as many impostor pairs); fewer when the people
            do not have enough photo pairs.
        seed: seed of the draw.
        max_per_person: at most this many genuine pairs of one person, so that people with
            hundreds of photos do not dominate.
    """

    rng = np.random.default_rng(seed)
    people = sorted(photos)
    genuine: list[Pair] = []
    for name in people:
        nums = sorted(photos[name])
        combos = [(a, b) for i, a in enumerate(nums) for b in nums[i + 1 :]]
        if len(combos) > max_per_person:
            combos = [combos[k] for k in sorted(rng.choice(len(combos), max_per_person, replace=False))]
        genuine += [Pair(name, a, name, b, True, 0) for a, b in combos]
    if len(genuine) > n_pairs:
        genuine = [genuine[k] for k in sorted(rng.choice(len(genuine), n_pairs, replace=False))]
    if len(people) < 2 or not genuine:
        raise InvalidArgumentError("need at least two people and one person with two photos")
    impostor: list[Pair] = []
    seen: set[tuple[str, int, str, int]] = set()
    while len(impostor) < len(genuine):
        a, b = rng.choice(len(people), 2, replace=False)
        n1, n2 = people[int(a)], people[int(b)]
        i1 = int(rng.choice(photos[n1]))
        i2 = int(rng.choice(photos[n2]))
        pair_key = (n1, i1, n2, i2) if n1 < n2 else (n2, i2, n1, i1)
        if pair_key not in seen:
            seen.add(pair_key)
            impostor.append(Pair(*pair_key, False, 0))
    return genuine + impostor
