"""Reading images robustly and finding image files.

Every image leaves this module as a C-contiguous ``numpy.ndarray`` of shape (H, W, 3), dtype
``uint8``, RGB, with the EXIF orientation applied. Bad files raise
:class:`~faceiqa.errors.ImageReadError` whose message is a short one-line reason
("truncated image file", "permission denied", ...); the caller knows the path, so the message
does not repeat it and can go straight into a report's ``error`` column.

Pillow's global state (``LOAD_TRUNCATED_IMAGES``, ``MAX_IMAGE_PIXELS``) is never changed:
truncated files fail, and the pixel limit is our own ``max_pixels`` checked before decoding.
Pillow's own bomb guard (``2 * PIL.Image.MAX_IMAGE_PIXELS``, about 179 megapixels by default)
still applies on top of ``max_pixels``; raise it in your application if you need more.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import struct
import sys
import warnings
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from faceiqa._util import check_int
from faceiqa.errors import ImageReadError, InvalidArgumentError

log = logging.getLogger("faceiqa.io")

PathLike = Union[str, "os.PathLike[str]"]

# 2**27 pixels (about 134 megapixels, e.g. 13400 x 10000) covers full-resolution 108 MP phone
# photos; decoded as 8-bit RGB that is about 400 MB, which is as much as one image should take.
DEFAULT_MAX_PIXELS = 2**27

# Pillow format names we decode. (Multi-picture JPEGs, MPO, come through the JPEG opener.)
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF")

# File name extensions (lower case) selected by folder walks.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
)

_EXIF_ORIENTATION = 0x0112

# Exceptions Pillow's decoders raise on malformed data (besides OSError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error, zlib.error)


def _one_line(text: str, limit: int = 120) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------


def _check_file(path: Path) -> None:
    """Raise ImageReadError unless ``path`` is an existing, non-empty regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ImageReadError("file not found") from None
    except NotADirectoryError:
        raise ImageReadError("file not found (a parent is not a folder)") from None
    except OSError as e:
        raise ImageReadError(_os_reason(e)) from None
    if stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise ImageReadError("broken symbolic link") from None
        except OSError as e:
            raise ImageReadError(_os_reason(e)) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError("is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        # FIFOs, sockets and devices: reading a FIFO could block forever.
        raise ImageReadError("not a regular file")
    if st.st_size == 0:
        raise ImageReadError("empty file (0 bytes)")


def _os_reason(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "symbolic link loop"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if e.errno == errno.ENOENT:
        return "file not found"
    if e.errno == errno.EISDIR:
        return "is a directory, not a file"
    return _one_line(f"cannot read file ({e.strerror or e})")


def _too_large(width: int, height: int, limit: int, name: str) -> ImageReadError:
    return ImageReadError(f"image too large: {width}x{height} pixels exceeds the limit of {limit} ({name})")


def _declared_size(fp: Any) -> tuple[int, int] | None:
    """Width and height from the header, bypassing Pillow's bomb check (only to word an error).

    ``Image.OPEN`` is Pillow's format registry; its factories parse the header only.
    """
    try:
        fp.seek(0)
        prefix = fp.read(16)
        for fmt in SUPPORTED_FORMATS:
            if fmt not in Image.OPEN:
                continue
            factory, accept = Image.OPEN[fmt]
            accepted = True if accept is None else accept(prefix)
            if accepted and not isinstance(accepted, str):
                fp.seek(0)
                size = factory(fp, "").size
                return int(size[0]), int(size[1])
    except Exception:  # noqa: BLE001 - best effort; the caller falls back to Pillow's message
        return None
    return None


def _unsupported_format_name(fp: Any) -> str:
    """Name of an image format Pillow knows but we do not decode, or '' if none."""
    try:
        fp.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                return str(im.format or "")
    except Exception:  # noqa: BLE001 - only used to word the error message
        return ""


def _open_and_decode(path: Path, max_pixels: int) -> Image.Image:
    try:
        fp = open(path, "rb")  # noqa: SIM115 - closed below, after the full decode
    except OSError as e:
        raise ImageReadError(_os_reason(e)) from None
    with fp:
        try:
            # Images between MAX_IMAGE_PIXELS and twice that only warn; our limit decides.
            # (catch_warnings is not thread-safe; the worst a race can do is leave this one
            # category filtered.)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(fp, formats=SUPPORTED_FORMATS)
        except Image.DecompressionBombError as e:
            size = _declared_size(fp)
            pil_limit = 2 * int(Image.MAX_IMAGE_PIXELS or 0)
            if size is None:
                m = re.search(r"\((\d+) pixels\)", str(e))
                pixels = m.group(1) if m else "?"
                raise ImageReadError(
                    f"image too large: {pixels} pixels exceeds the limit of {min(max_pixels, pil_limit)}"
                ) from None
            if size[0] * size[1] > max_pixels:
                raise _too_large(size[0], size[1], max_pixels, "max_pixels") from None
            raise _too_large(size[0], size[1], pil_limit, "2 x PIL.Image.MAX_IMAGE_PIXELS") from None
        except UnidentifiedImageError:
            other = _unsupported_format_name(fp)
            if other:
                raise ImageReadError(f"unsupported image format: {other}") from None
            raise ImageReadError("not an image (unrecognised format)") from None
        except _DECODE_ERRORS as e:
            raise ImageReadError(_one_line(f"corrupt image header ({e})")) from None
        width, height = im.size
        if width < 1 or height < 1:
            raise ImageReadError(f"invalid image size {width}x{height}")
        if width * height > max_pixels:
            raise _too_large(width, height, max_pixels, "max_pixels")
        _load(im)
        return im


def _load(im: Image.Image) -> None:
    """Decode all pixel data now, so truncated and corrupt files fail here."""
    try:
        im.load()
    except Image.DecompressionBombError:  # e.g. a GIF frame or TIFF tile larger than declared
        raise ImageReadError("image too large: a frame or tile exceeds Pillow's pixel limit") from None
    except _DECODE_ERRORS as e:
        text = str(e)
        if "truncat" in text.lower():
            raise ImageReadError("truncated image file") from None
        raise ImageReadError(_one_line(f"corrupt image data ({text or type(e).__name__})")) from None


def read_image(path: PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as 8-bit RGB with its EXIF orientation applied.

    Reads JPEG (including MPO), PNG, BMP, TIFF, WebP and GIF; multi-frame files give their first
    frame. Every mode becomes 8-bit RGB: grayscale and 1-bit are replicated to three channels,
    palettes expanded, CMYK converted, 16-bit data scaled (65535 -> 255, not clipped), and
    transparent pixels (RGBA, LA, PA, palettes with transparency) composited on white.

    Args:
        path: file to read (str or path-like).
        max_pixels: largest accepted width x height, checked from the header before decoding
            (defence against decompression bombs). Defaults to :data:`DEFAULT_MAX_PIXELS`.

    Returns:
        (H, W, 3) uint8 RGB array, H and W after EXIF rotation.

    Raises:
        ImageReadError: the file is missing, empty, a directory, a broken symbolic link or a
            link loop, unreadable, not an image, too large, truncated or corrupt.
        InvalidArgumentError: ``path`` or ``max_pixels`` is not valid.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgumentError(f"path must be a str or path-like, got {type(path).__name__}")
    check_int(max_pixels, "max_pixels", 1)
    p = Path(path)
    _check_file(p)
    im = _open_and_decode(p, max_pixels)
    try:
        return _pil_to_rgb(im)
    finally:
        im.close()


# --------------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------------


def _apply_exif_orientation(im: Image.Image) -> Image.Image:
    try:
        if im.getexif().get(_EXIF_ORIENTATION, 1) not in range(2, 9):
            return im  # nothing to do; avoids exif_transpose's full copy
        out = ImageOps.exif_transpose(im)
    except Exception as e:  # noqa: BLE001 - a broken EXIF block must not make the photo unreadable
        log.warning("ignoring unreadable EXIF orientation: %s", _one_line(str(e)))
        return im
    return im if out is None else out


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 RGBA -> (H, W, 3) uint8 RGB over a white background (rounded)."""
    rgb = rgba[..., :3].astype(np.uint32)
    alpha = rgba[..., 3:4].astype(np.uint32)
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def _scale_to_uint8(values: np.ndarray, full_scale: float) -> np.ndarray:
    """Scale values in [0, full_scale] linearly to [0, 255], rounding to nearest."""
    out = np.rint(values.astype(np.float64) * (255.0 / full_scale))
    return np.clip(out, 0, 255).astype(np.uint8)


def _wide_gray_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """Convert a 16-bit, 32-bit integer or float single-channel image to 8 bits."""
    if mode.startswith("I;16"):
        return _scale_to_uint8(arr, 65535.0)
    data = arr.astype(np.float64)
    finite = np.isfinite(data)
    if not finite.all():
        data = np.where(finite, data, 0.0)
    lo, hi = float(data.min()), float(data.max())
    if mode == "F" and lo >= 0.0 and hi <= 1.0:
        return _scale_to_uint8(data, 1.0)
    if mode == "I" and lo >= 0 and hi <= 65535:
        # Mode "I" carries no bit depth; [0, 65535] is the 16-bit container it usually holds.
        return _scale_to_uint8(data, 65535.0)
    log.info("stretching %s image values [%g, %g] to [0, 255]", mode, lo, hi)
    if hi <= lo:
        return np.zeros(arr.shape, np.uint8)
    return _scale_to_uint8(data - lo, hi - lo)


def _pil_to_rgb(im: Image.Image) -> np.ndarray:
    """Any decoded PIL image -> (H, W, 3) uint8 RGB, EXIF orientation applied."""
    im = _apply_exif_orientation(im)
    mode = im.mode
    try:
        if mode in ("RGB",):
            rgb = np.asarray(im)
        elif mode == "RGBA":
            rgb = _composite_on_white(np.asarray(im))
        elif mode in ("LA", "PA", "La", "RGBa") or (mode == "P" and im.has_transparency_data):
            rgb = _composite_on_white(np.asarray(im.convert("RGBA")))
        elif mode.startswith("I;16") or mode in ("I", "F"):
            gray = _wide_gray_to_uint8(np.asarray(im), mode)
            rgb = np.repeat(gray[..., None], 3, axis=2)
        else:
            # 1, L, P, CMYK, YCbCr, RGBX, ...
            rgb = np.asarray(im.convert("RGB"))
    except (ValueError, OSError) as e:
        raise ImageReadError(_one_line(f"unsupported image mode {mode!r} ({e})")) from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageReadError(f"unsupported image mode {mode!r}")
    return np.ascontiguousarray(rgb) if rgb.flags.writeable else np.array(rgb, order="C")


def check_rgb(image: Any, what: str = "image", min_side: int = 1) -> np.ndarray:
    """``image`` itself when it is an (H, W, 3) uint8 RGB numpy array of at least
    ``min_side`` pixels per side (what every stage after reading works on).

    Raises:
        InvalidArgumentError: anything else, naming ``what``, the shape and the dtype.
    """
    if not isinstance(image, np.ndarray):
        raise InvalidArgumentError(
            f"{what} must be an (H, W, 3) uint8 RGB numpy array, got {type(image).__name__} "
            "(faceiqa.images.to_rgb converts paths, PIL images and tensors)"
        )
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidArgumentError(
            f"{what} must be an (H, W, 3) uint8 RGB array, got shape {tuple(image.shape)} dtype {image.dtype}"
        )
    if min(image.shape[:2]) < min_side:
        if min_side == 1:
            raise InvalidArgumentError(f"{what} is empty: shape {tuple(image.shape)}")
        raise InvalidArgumentError(
            f"{what} too small: {image.shape[1]}x{image.shape[0]} (min {min_side}x{min_side})"
        )
    return image


def _array_to_rgb(arr: np.ndarray, what: str) -> np.ndarray:
    """Validate and convert a numpy image in HWC or HW layout."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise InvalidArgumentError(
            f"{what} must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {tuple(arr.shape)}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InvalidArgumentError(f"{what} is empty: shape {tuple(arr.shape)}")
    if arr.dtype == np.uint8:
        data = arr
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise InvalidArgumentError(f"{what} contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise InvalidArgumentError(
                f"float {what} values must be in [0, 1], got range [{lo:.4g}, {hi:.4g}]"
            )
        data = np.rint(arr.astype(np.float32) * 255.0).astype(np.uint8)
    else:
        raise InvalidArgumentError(f"{what} dtype must be uint8 or float in [0, 1], got {arr.dtype}")
    if data.ndim == 2:
        return np.repeat(data[..., None], 3, axis=2)
    if data.shape[2] == 4:
        return _composite_on_white(data)
    return np.ascontiguousarray(data)


def _torch_module() -> Any:
    # Only look at torch if the caller already imported it; a tensor cannot exist otherwise.
    return sys.modules.get("torch")


def to_rgb(image: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS, color: str = "rgb") -> np.ndarray:
    """Convert any supported image input to an (H, W, 3) uint8 RGB array.

    ``color="bgr"`` declares that a numpy array holds OpenCV's channel order (BGR or BGRA, as
    ``cv2.imread`` returns); it is flipped to RGB. Files, PIL images and tensors are unaffected.

    Accepted inputs:

    * a path (str or path-like): read with :func:`read_image` (``max_pixels`` applies);
    * a PIL image: EXIF orientation applied, converted like :func:`read_image` does;
    * a numpy array: (H, W, 3) uint8 RGB (returned as is when C-contiguous, so it may share
      memory with the input), (H, W) or (H, W, 1) grayscale, (H, W, 4) RGBA (composited on
      white); dtype uint8 (0..255) or float with values in [0, 1];
    * a torch tensor: (3, H, W) or (H, W, 3) (also (H, W), (1, H, W)), uint8 or float in
      [0, 1], on any device. A (3, H, 3) tensor is read as channels-first.

    Raises:
        InvalidArgumentError: unsupported type, shape, dtype or value range.
        ImageReadError: a path that cannot be read, or a PIL image whose data cannot be decoded.
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, max_pixels=max_pixels)
    if isinstance(image, Image.Image):
        _check_pixels(image.width, image.height, max_pixels, "PIL image")
        _load(image)
        return _pil_to_rgb(image)
    if color not in ("rgb", "bgr"):
        raise InvalidArgumentError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if isinstance(image, np.ndarray):
        if image.ndim >= 2:
            _check_pixels(image.shape[1], image.shape[0], max_pixels, "image array")
        if color == "bgr" and image.ndim == 3 and image.shape[2] in (3, 4):
            image = np.concatenate([image[..., 2::-1], image[..., 3:]], axis=2)
        return _array_to_rgb(image, "image array")
    torch = _torch_module()
    if torch is not None and isinstance(image, torch.Tensor):
        if image.ndim >= 2:
            hw = image.shape[-2:] if image.ndim == 3 and image.shape[0] in (1, 3) else image.shape[:2]
            _check_pixels(int(hw[1]), int(hw[0]), max_pixels, "image tensor")
        return _tensor_to_rgb(image, torch)
    raise InvalidArgumentError(
        f"unsupported image type {type(image).__name__}: expected a path, PIL image, numpy array or torch tensor"
    )


def _check_pixels(width: int, height: int, limit: int, what: str) -> None:
    """In-memory images obey the same pixel limit as files (the same :class:`ImageReadError`)."""
    check_int(limit, "max_pixels", 1)
    if width * height > limit:
        raise _too_large(width, height, limit, what)


def _tensor_to_rgb(tensor: Any, torch: Any) -> np.ndarray:
    t = tensor.detach()
    shape = tuple(t.shape)
    if t.dtype == torch.uint8:
        pass
    elif t.is_floating_point():
        t = t.float()
    else:
        raise InvalidArgumentError(f"image tensor dtype must be uint8 or float in [0, 1], got {t.dtype}")
    if t.ndim == 3 and shape[0] in (1, 3):
        t = t.permute(1, 2, 0)  # channels-first (the torch convention) wins when ambiguous
    elif t.ndim == 3 and shape[2] in (1, 3):
        pass
    elif t.ndim != 2:
        raise InvalidArgumentError(
            f"image tensor must have shape (3, H, W), (H, W, 3), (1, H, W) or (H, W), got {shape}"
        )
    return _array_to_rgb(t.cpu().numpy(), "image tensor")


# --------------------------------------------------------------------------------------------
# Finding files
# --------------------------------------------------------------------------------------------


def _normalise_extensions(extensions: Iterable[str]) -> frozenset[str]:
    if isinstance(extensions, str):
        extensions = [extensions]
    out = set()
    for ext in extensions:
        if not isinstance(ext, str) or not ext.strip(". "):
            raise InvalidArgumentError(f"bad file extension {ext!r}")
        ext = ext.strip().lower()
        out.add(ext if ext.startswith(".") else "." + ext)
    return frozenset(out)


def list_images(
    root: PathLike,
    *,
    recursive: bool = True,
    include_hidden: bool = False,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
    follow_symlinks: bool = False,
) -> list[Path]:
    """Image files in a folder, in a deterministic order.

    Files are selected by extension, case-insensitively (``photo.JPG`` matches ``.jpg``).
    Symbolic links to files are listed like files, and so are broken links and link loops
    with an image extension, so that reading them reports an error instead of silently
    dropping them. Names starting with a dot (files and folders) are skipped unless
    ``include_hidden``. Folders that cannot be listed are skipped with a warning in the log.

    Args:
        root: folder to walk.
        recursive: descend into sub-folders.
        include_hidden: also list dot-files and walk dot-folders.
        extensions: accepted extensions, with or without the leading dot, any case.
        follow_symlinks: descend into symbolic links to folders. Off by default; when on,
            every real folder is walked once, so link cycles cannot loop.

    Returns:
        Paths ``root / relative``, sorted by the relative path's components (case-sensitive
        code-point order, so a folder's files stay together).

    Raises:
        InvalidArgumentError: ``root`` does not exist, is not a folder or cannot be listed.
    """
    base = Path(root)
    if not base.exists():
        raise InvalidArgumentError(f"folder not found: {base}")
    if not base.is_dir():
        raise InvalidArgumentError(f"not a folder: {base}")
    exts = _normalise_extensions(extensions)
    found: list[tuple[tuple[str, ...], Path]] = []
    visited: set[tuple[int, int]] = set()

    def walk(folder: Path, rel: tuple[str, ...]) -> None:
        try:
            st = folder.stat()
            key = (st.st_dev, st.st_ino)
            if key in visited:
                log.debug("already walked %s; skipping", folder)
                return
            visited.add(key)
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            if not rel:
                raise InvalidArgumentError(f"cannot list folder {folder}: {_os_reason(e)}") from None
            log.warning("skipping folder %s: %s", folder, _os_reason(e))
            return
        for entry in entries:
            name = entry.name
            if not include_hidden and name.startswith("."):
                continue
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:  # e.g. a link loop: treat as a (broken) file entry
                is_link, is_dir = True, False
            if is_dir:
                if recursive and (follow_symlinks or not is_link):
                    walk(folder / name, rel + (name,))
                continue
            # "photo.jpg " (a trailing space, common on shared drives) is still a JPEG file
            if os.path.splitext(name)[1].strip().lower() in exts:
                found.append((rel + (name,), folder / name))

    walk(base, ())
    found.sort(key=lambda item: item[0])
    return [path for _, path in found]


def expand_inputs(
    paths: PathLike | Sequence[PathLike],
    *,
    recursive: bool = True,
    include_hidden: bool = False,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
    follow_symlinks: bool = False,
) -> list[Path]:
    """Expand files and folders given on a command line into a list of files.

    Folders are replaced by :func:`list_images` of them (same options). Anything else that
    exists as a directory entry is kept as given, whatever its extension, including hidden
    files, broken symbolic links and link loops: a file named explicitly is meant to be
    processed, so a non-image is reported as an error later rather than dropped. The order is
    the order of ``paths`` with each folder's files sorted; a path listed twice is kept once
    (first occurrence).

    Raises:
        InvalidArgumentError: a given path does not exist.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = os.path.normpath(p)
        if key not in seen:
            seen.add(key)
            out.append(p)

    for item in paths:
        if not isinstance(item, (str, os.PathLike)):
            raise InvalidArgumentError(f"input paths must be str or path-like, got {type(item).__name__}")
        p = Path(item)
        if p.is_dir():
            found = list_images(
                p,
                recursive=recursive,
                include_hidden=include_hidden,
                extensions=extensions,
                follow_symlinks=follow_symlinks,
            )
            if not found:
                # The user named it, so it must not vanish silently (e.g. a folder called "x.jpg").
                log.warning("%s is a folder with no image files in it; nothing to do there", p)
            for f in found:
                add(f)
        elif os.path.lexists(p):
            add(p)
        else:
            raise InvalidArgumentError(f"path does not exist: {p}")
    return out


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "SUPPORTED_FORMATS",
    "check_rgb",
    "expand_inputs",
    "list_images",
    "read_image",
    "to_rgb",
]
