"""Face verification pairs (LFW ``pairs.txt`` format) and the k-fold accuracy protocol."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
