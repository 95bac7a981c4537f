"""Degraded copies of a folder on disk, so that other tools score exactly the images the EDC uses.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from faceiqa.errors import ImageReadError, InvalidArgumentError
from faceiqa.evaluation.common import MANIFEST_NAME, image_key, list_images, read_rgb, resolve_image_path
from faceiqa.evaluation.pairs import DegradePlan

log = logging.getLogger("faceiqa.evaluation")


# ---------------------------------------------------------------------------------------
# degraded copies on disk


@dataclass(frozen=True)
class DegradeSetResult:
    """Outcome of :func:`degrade_set`.

    Attributes:
        written: files written.
        skipped: outputs that already existed (left untouched).
        failed: inputs that could not be read (key -> message).
        out_dir: the output folder.
    """

    written: int
    skipped: int
    failed: dict[str, str]
    out_dir: Path


def _check_manifest(out_dir: Path, plan: DegradePlan) -> None:
    manifest = out_dir / MANIFEST_NAME
    wanted = {"format": 1, "degrade": plan.spec, "fraction": plan.fraction, "seed": plan.seed}
    if manifest.exists():
        try:
            found = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidArgumentError(f"{manifest} is unreadable: {exc}") from None
        if any(found.get(k) != v for k, v in wanted.items()):
            raise InvalidArgumentError(
                f"{out_dir} holds copies made with degrade={found.get('degrade')!r} fraction={found.get('fraction')!r} "
                f"seed={found.get('seed')!r}; use another folder for degrade={plan.spec!r} fraction={plan.fraction:g} "
                f"seed={plan.seed}"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(wanted, indent=2) + "\n")


def degrade_set(
    images_dir: str | os.PathLike,
    spec: str,
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    fraction: float = 1.0,
    keys: Iterable[str] | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> DegradeSetResult:
    """Write PNG copies ``out_dir/<key>.png`` exactly as :func:`compute_pair_distances` sees the
    images with the same spec, fraction and seed (images left pristine by ``fraction`` are
    copied unchanged, so the folder is complete). Never overwrites a file.

    Args:
        images_dir: source folder.
        spec: ``"kind:level,..."``.
        out_dir: destination; must not be (inside) ``images_dir``. A small manifest records the
            spec, fraction and seed, and a folder made with other settings is refused.
        seed: base seed.
        fraction: share of images degraded, in (0, 1].
        keys: only these image keys (e.g. the images of a pairs file); default every image.
        progress: optional iterable wrapper.

    Raises:
        InvalidArgumentError: bad spec, bad folders, or a folder made with other settings.
    """
    from PIL import Image

    plan = DegradePlan.parse(spec, fraction, seed)
    if not plan.active:
        raise InvalidArgumentError("empty degradation spec")
    src, dst = Path(images_dir).resolve(), Path(out_dir).resolve()
    if not src.is_dir():
        raise InvalidArgumentError(f"not a folder: {images_dir}")
    if dst == src or src in dst.parents:
        raise InvalidArgumentError("the output folder must not be the image folder or inside it")
    failed: dict[str, str] = {}
    if keys is None:
        items = [(image_key(p, src), p) for p in list_images(src)]
    else:
        items = []
        for k in dict.fromkeys(keys):
            try:
                items.append((k, resolve_image_path(src / (k + ".jpg"))))
            except ImageReadError as exc:
                failed[k] = str(exc)
    if not items:
        raise InvalidArgumentError(f"no images found under {images_dir}")
    _check_manifest(dst, plan)
    written = skipped = 0
    for key, path in progress(items) if progress else items:
        target = dst / (key + ".png")
        if target.exists():
            skipped += 1
            continue
        try:
            image = read_rgb(path)
        except ImageReadError as exc:
            failed[key] = str(exc)
            continue
        out = plan.apply(image, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(target, "xb") as fh:
                Image.fromarray(out).save(fh, format="PNG")
        except FileExistsError:
            skipped += 1
            continue
        except OSError:
            target.unlink(missing_ok=True)
            raise
        written += 1
    return DegradeSetResult(written, skipped, failed, dst)
