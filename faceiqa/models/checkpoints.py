"""Reading, normalising and writing HyperIQA checkpoints.

Two layouts of the same network exist in the wild:

* ``hyperiqa-official``: the official code's ``HyperNet.state_dict()`` (``res.*``,
  ``conv1.*``, ``fc{i}w_conv``, ``fc{i}b_fc``, ``fc5w_fc``...), e.g. ``koniq_pretrained.pkl``;
* ``hyperiqa-pyiqa``: the IQA-PyTorch re-implementation (``base_model.*``,
  ``lda_modules.*``, ``fc_w_modules.*``, ``fc_b_modules.*``, ``conv1.*``), usually wrapped
  as ``{"params": state_dict}``.

:func:`load_hypernet_state` accepts either, plus the usual variations: a ``module.`` prefix
(DataParallel), BatchNorm ``num_batches_tracked`` buffers present or absent, tensors saved
on a GPU (everything is mapped to the CPU), and wrapper dicts such as ``{"params": ...}``,
``{"state_dict": ...}`` or ``{"model": ...}``. Loading is strict: a checkpoint that does
not fit raises :class:`~faceiqa.errors.CheckpointError` naming the missing, unexpected and
mis-shaped keys.

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only,
no arbitrary code from a pickle.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from faceiqa._util import one_line
from faceiqa.errors import CheckpointError, InvalidArgumentError, WeightsNotFoundError

logger = logging.getLogger("faceiqa.models.checkpoints")

OFFICIAL = "hyperiqa-official"
PYIQA = "hyperiqa-pyiqa"
LAYOUTS = (OFFICIAL, PYIQA)

#: Keys under which training frameworks nest the state dict, in order of preference.
_WRAPPER_KEYS = ("params", "state_dict", "model_state_dict", "model", "net", "network", "params_ema")
_NBT = "num_batches_tracked"
_MAX_LISTED = 5

StateDict = dict[str, torch.Tensor]


#: A zip record (torch's archive format) may declare at most this many bytes per byte it
#: takes in the file: torch stores tensors uncompressed, so a real checkpoint is near 1.
MAX_RECORD_INFLATION = 4.0
#: ... and the records together at most this much more than the file itself.
MAX_ARCHIVE_SLACK = 16 << 20


def check_archive(path: Path) -> None:
    """Refuse a torch zip archive whose records would inflate far beyond the file's size.

    Reads only the zip directory (declared sizes), so a decompression bomb is refused in
    milliseconds and without the memory it would take. Legacy (non-zip) files have no
    compressed records and pass.

    Raises:
        CheckpointError: a record, or all of them together, declare more than the limits.
    """
    import zipfile

    if not zipfile.is_zipfile(path):
        return
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: not a readable torch checkpoint ({one_line(exc, 120)})") from None
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > MAX_RECORD_INFLATION * max(info.compress_size, 1) + (1 << 20):
            raise CheckpointError(
                f"{path.name}: record {info.filename!r} declares {info.file_size} bytes from {info.compress_size} "
                "stored (a compressed bomb, not a torch checkpoint); refused"
            )
    if total > size + MAX_ARCHIVE_SLACK:
        raise CheckpointError(f"{path.name}: its records declare {total} bytes in a {size}-byte file; refused")


def safe_load(path: str | Path) -> object:
    """``torch.load(weights_only=True)`` after :func:`check_archive`: tensors and plain
    containers only, never code, with a one-line error that does not suggest unsafe loading.

    Raises:
        WeightsNotFoundError: no such file.
        CheckpointError: an unreadable, unsafe or oversized file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"checkpoint not found: {path}")
    check_archive(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many unrelated types for a bad or unsafe file
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text or "GLOBAL" in text:
            reason = "it holds objects other than tensors and plain containers; refused, it is never run"
        else:
            reason = f"{exc.__class__.__name__}: {one_line(text.splitlines()[0] if text.strip() else '', 160)}"
        raise CheckpointError(f"{path.name}: not a readable torch checkpoint of plain tensors ({reason})") from None


def read_checkpoint(path: str | Path) -> StateDict:
    """Read a checkpoint file into a plain CPU state dict (wrappers and ``module.`` removed).

    Raises:
        WeightsNotFoundError: no such file.
        CheckpointError: not a readable torch file, unsafe or oversized (see :func:`safe_load`),
            or no state dict inside.
    """
    path = Path(path)
    return strip_module_prefix(unwrap_state_dict(safe_load(path), source=path.name))


def _is_state_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def unwrap_state_dict(obj: object, *, source: str = "checkpoint") -> StateDict:
    """Find the state dict in a checkpoint object: itself, or under a wrapper key.

    Wrapper keys tried, in order: ``params``, ``state_dict``, ``model_state_dict``, ``model``,
    ``net``, ``network``, ``params_ema`` (nested wrappers are followed).
    """
    for _ in range(4):
        if _is_state_dict(obj):
            return {k: v for k, v in obj.items()}  # type: ignore[union-attr]
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            break
        obj = inner
    if isinstance(obj, Mapping):
        keys = ", ".join(repr(k) for k in list(obj)[:_MAX_LISTED])
        raise CheckpointError(f"{source}: no state dict of tensors found (top-level keys: {keys})")
    raise CheckpointError(f"{source}: expected a state dict, found a {type(obj).__name__}")


def strip_module_prefix(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Remove the ``module.`` prefix(es) DataParallel adds, when every key has it."""
    out = dict(state)
    while out and all(k.startswith("module.") for k in out):
        out = {k[len("module.") :]: v for k, v in out.items()}
    return out


def detect_layout(state: Mapping[str, torch.Tensor]) -> str:
    """``hyperiqa-official`` or ``hyperiqa-pyiqa`` from the key names.

    Raises:
        CheckpointError: the keys fit neither layout.
    """
    keys = list(state)
    if any(k.startswith("res.") for k in keys):
        return OFFICIAL
    if any(k.startswith(("base_model.", "lda_modules.", "fc_w_modules.", "fc_b_modules.")) for k in keys):
        return PYIQA
    shown = ", ".join(keys[:_MAX_LISTED])
    raise CheckpointError(f"not a HyperIQA checkpoint: keys fit neither the official nor the pyiqa layout ({shown})")


_OFF_LDA_POOL = re.compile(r"^res\.lda(\d+)_pool\.0\.(.+)$")
_OFF_LDA_FC = re.compile(r"^res\.lda(\d+)_fc\.(.+)$")
_OFF_W_CONV = re.compile(r"^fc(\d+)w_conv\.(.+)$")
_OFF_W_FC = re.compile(r"^fc(\d+)w_fc\.(.+)$")
_OFF_B_FC = re.compile(r"^fc(\d+)b_fc\.(.+)$")

_PY_LDA = re.compile(r"^lda_modules\.(\d+)\.(\d+)\.(.+)$")
_PY_W_FC = re.compile(r"^fc_w_modules\.(\d+)\.2\.(.+)$")
_PY_W_CONV = re.compile(r"^fc_w_modules\.(\d+)\.([^.]+)$")
_PY_B_FC = re.compile(r"^fc_b_modules\.(\d+)\.2\.(.+)$")


def official_to_pyiqa(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Rename official-layout keys to the pyiqa layout (values are shared, not copied).

    ``res.{conv1,bn1,layerN}.*`` -> ``base_model.*``; ``res.lda{k}_pool.0`` ->
    ``lda_modules.{k-1}.0``; ``res.lda{k}_fc`` -> ``lda_modules.{k-1}.3`` (local stages) or
    ``lda_modules.{k-1}.2`` (last stage); ``fc{i}w_conv`` -> ``fc_w_modules.{i-1}``;
    ``fc{n}w_fc`` -> ``fc_w_modules.{n-1}.2``; ``fc{i}b_fc`` -> ``fc_b_modules.{i-1}.2``;
    ``conv1.*`` unchanged. Keys without a pyiqa counterpart are kept as they are.
    """
    local = {int(m.group(1)) for k in state if (m := _OFF_LDA_POOL.match(k))}
    out: StateDict = {}
    for key, value in state.items():
        if m := _OFF_LDA_POOL.match(key):
            new = f"lda_modules.{int(m.group(1)) - 1}.0.{m.group(2)}"
        elif m := _OFF_LDA_FC.match(key):
            k = int(m.group(1))
            new = f"lda_modules.{k - 1}.{3 if k in local else 2}.{m.group(2)}"
        elif key.startswith("res."):
            new = "base_model." + key[len("res.") :]
        elif m := _OFF_W_CONV.match(key):
            new = f"fc_w_modules.{int(m.group(1)) - 1}.{m.group(2)}"
        elif m := _OFF_W_FC.match(key):
            new = f"fc_w_modules.{int(m.group(1)) - 1}.2.{m.group(2)}"
        elif m := _OFF_B_FC.match(key):
            new = f"fc_b_modules.{int(m.group(1)) - 1}.2.{m.group(2)}"
        else:
            new = key
        out[new] = value
    return out


def pyiqa_to_official(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Inverse of :func:`official_to_pyiqa`."""
    out: StateDict = {}
    for key, value in state.items():
        if m := _PY_LDA.match(key):
            k, idx, rest = int(m.group(1)) + 1, m.group(2), m.group(3)
            if idx == "0":
                new = f"res.lda{k}_pool.0.{rest}"
            elif idx in ("2", "3"):
                new = f"res.lda{k}_fc.{rest}"
            else:
                new = key
        elif key.startswith("base_model."):
            new = "res." + key[len("base_model.") :]
        elif m := _PY_W_FC.match(key):
            new = f"fc{int(m.group(1)) + 1}w_fc.{m.group(2)}"
        elif m := _PY_W_CONV.match(key):
            new = f"fc{int(m.group(1)) + 1}w_conv.{m.group(2)}"
        elif m := _PY_B_FC.match(key):
            new = f"fc{int(m.group(1)) + 1}b_fc.{m.group(2)}"
        else:
            new = key
        out[new] = value
    return out


def to_official(state: Mapping[str, torch.Tensor], layout: str = "auto") -> StateDict:
    """Return ``state`` in the official layout (``layout``: the input's, or ``"auto"``)."""
    found = detect_layout(state)
    if layout != "auto":
        if layout not in LAYOUTS:
            raise InvalidArgumentError(f"unknown checkpoint layout {layout!r} (known: {', '.join(LAYOUTS)})")
        if layout != found:
            raise CheckpointError(f"checkpoint declared as {layout} but its keys are in the {found} layout")
    return dict(state) if found == OFFICIAL else pyiqa_to_official(state)


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def fit_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str = "checkpoint") -> StateDict:
    """Match an official-layout ``state`` to ``model``'s keys, strictly.

    Only BatchNorm ``num_batches_tracked`` buffers may differ (absent ones take the model's
    value, extra ones are dropped); they do not affect inference.

    Raises:
        CheckpointError: naming missing, unexpected and mis-shaped keys.
    """
    expected = model.state_dict()
    fitted = {k: v for k, v in state.items() if not (k.endswith(_NBT) and k not in expected)}
    for key, value in expected.items():
        if key.endswith(_NBT) and key not in fitted:
            fitted[key] = value.clone()
    missing = [k for k in expected if k not in fitted]
    unexpected = [k for k in fitted if k not in expected]
    misshaped = [
        f"{k} (checkpoint {list(fitted[k].shape)}, model {list(v.shape)})"
        for k, v in expected.items()
        if k in fitted and fitted[k].shape != v.shape
    ]
    if missing or unexpected or misshaped:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
        if misshaped:
            parts.append(f"{len(misshaped)} mis-shaped key(s): {_listing(misshaped)}")
        raise CheckpointError(f"{source} does not fit the network: " + "; ".join(parts))
    return fitted


def load_hypernet_state(
    model: nn.Module,
    checkpoint: str | Path | Mapping[str, object],
    *,
    layout: str = "auto",
    source: str | None = None,
) -> nn.Module:
    """Load a HyperIQA checkpoint (file or object, either layout) into ``model`` strictly.

    Args:
        model: a :class:`~faceiqa.models.hypernet.HyperNet` (official module names).
        checkpoint: a file path, a state dict, or a wrapper dict around one.
        layout: ``"auto"`` (detect from the keys), ``"hyperiqa-official"`` or
            ``"hyperiqa-pyiqa"``.
        source: name used in error messages (default: the file name).

    Returns:
        ``model``, with the weights loaded (it stays on its device).

    Raises:
        CheckpointError: unreadable, or the keys or shapes do not fit.
    """
    if isinstance(checkpoint, (str, Path)):
        source = source or Path(checkpoint).name
        state = read_checkpoint(checkpoint)
    else:
        source = source or "checkpoint"
        state = strip_module_prefix(unwrap_state_dict(checkpoint, source=source))
    fitted = fit_state_dict(model, to_official(state, layout), source=source)
    model.load_state_dict(fitted, strict=True)
    logger.debug("loaded %d tensors from %s", len(fitted), source)
    return model


def hypernet_state_dict(model: nn.Module, layout: str = OFFICIAL, *, num_batches_tracked: bool = True) -> StateDict:
    """``model.state_dict()`` in the requested layout, on the CPU.

    Args:
        layout: ``hyperiqa-official`` (plain state dict, loads into the official code) or
            ``hyperiqa-pyiqa`` (pyiqa's key names).
        num_batches_tracked: keep the BatchNorm counters (older torch versions lack them).
    """
    if layout not in LAYOUTS:
        raise InvalidArgumentError(f"unknown checkpoint layout {layout!r} (known: {', '.join(LAYOUTS)})")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if num_batches_tracked or not k.endswith(_NBT)}
    return state if layout == OFFICIAL else official_to_pyiqa(state)


def save_hypernet(model: nn.Module, path: str | Path, layout: str = OFFICIAL) -> Path:
    """Write ``model``'s weights: official layout as a plain state dict, pyiqa layout as
    ``{"params": state_dict}`` (the form pyiqa loads)."""
    state = hypernet_state_dict(model, layout)
    path = Path(path)
    torch.save(state if layout == OFFICIAL else {"params": state}, path)
    return path
