"""Generate image files for tests: every supported format and mode, and every kind of bad file.

Reusable by any test (io, pipeline, CLI)::

    from imagefiles import write_good_images, write_bad_files, build_tree

    good = write_good_images(tmp_path / "good")   # name -> GoodFile(path, size, pixels, ...)
    bad = write_bad_files(tmp_path / "bad")       # name -> BadFile(path, reason, skip)

Each :class:`GoodFile` says what decoding must give (size after EXIF orientation, a few pixel
colours); each :class:`BadFile` says which words the one-line ``ImageReadError`` message
contains. Cases that cannot be produced on this machine carry a non-empty ``skip`` reason
(e.g. an unreadable file when running as root, who can read anything).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# The displayed picture used for orientation checks: four coloured quadrants, 64 x 48.
DISPLAY_W, DISPLAY_H = 64, 48
RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
QUADRANT_PIXELS = (((16, 12), RED), ((48, 12), GREEN), ((16, 36), BLUE), ((48, 36), YELLOW))


@dataclass(frozen=True)
class GoodFile:
    """A valid image file and what reading it must give.

    Attributes:
        path: the file.
        size: (width, height) in pixels after decoding, EXIF orientation applied.
        pixels: ((x, y), (r, g, b)) pairs the decoded RGB image must show.
        tolerance: largest allowed absolute difference per channel for ``pixels`` (lossy codecs).
        description: what the file exercises.
    """

    path: Path
    size: tuple[int, int]
    pixels: tuple[tuple[tuple[int, int], tuple[int, int, int]], ...]
    tolerance: int
    description: str


@dataclass(frozen=True)
class BadFile:
    """A file that must fail to read.

    Attributes:
        path: the file (or link, folder, FIFO).
        reason: words the ``ImageReadError`` message must contain.
        skip: why this case cannot be checked here; empty when it can.
    """

    path: Path
    reason: str
    skip: str = ""


@dataclass(frozen=True)
class Tree:
    """A folder for walk tests (see :func:`build_tree`).

    Attributes:
        root: the folder.
        visible: relative paths (POSIX) a default recursive walk must list, in order.
        top_level: the part of ``visible`` directly in ``root``.
        hidden: relative paths listed only with ``include_hidden``.
    """

    root: Path
    visible: tuple[str, ...]
    top_level: tuple[str, ...]
    hidden: tuple[str, ...] = field(default=())


def running_as_root() -> bool:
    """True when file permissions are not enforced for this process (POSIX root)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def quadrants(width: int = DISPLAY_W, height: int = DISPLAY_H) -> np.ndarray:
    """(H, W, 3) uint8 picture with red, green / blue, yellow quadrants."""
    img = np.empty((height, width, 3), np.uint8)
    hw, hh = width // 2, height // 2
    img[:hh, :hw], img[:hh, hw:] = RED, GREEN
    img[hh:, :hw], img[hh:, hw:] = BLUE, YELLOW
    return img


def stored_for_orientation(displayed: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels to store so that a viewer honouring EXIF ``orientation`` shows ``displayed``.

    Written from the EXIF specification's meaning of each value (which visual side the
    stored 0th row and 0th column are), independently of Pillow's ``exif_transpose``.
    """
    d = displayed
    table = {
        1: lambda: d,
        2: lambda: d[:, ::-1],  # 0th row top, 0th column right: mirrored
        3: lambda: d[::-1, ::-1],  # rotated 180
        4: lambda: d[::-1, :],  # flipped vertically
        5: lambda: d.transpose(1, 0, 2),  # 0th row = left side, 0th column = top
        6: lambda: d[:, ::-1].transpose(1, 0, 2),  # 0th row = right side: shown rotated 90 CW
        7: lambda: d[::-1, ::-1].transpose(1, 0, 2),  # 0th row = right side, 0th column = bottom
        8: lambda: d[::-1, :].transpose(1, 0, 2),  # 0th row = left side, 0th column = bottom
    }
    return np.ascontiguousarray(table[orientation]())


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png_with_declared_size(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares ``width`` x ``height`` RGB pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    )
    return path


def _noise(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_good_images(folder: Path) -> dict[str, GoodFile]:
    """Write one valid file per supported format / mode into ``folder`` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, GoodFile] = {}

    def add(name: str, filename: str, size, pixels, tol: int, desc: str) -> None:
        out[name] = GoodFile(folder / filename, size, tuple(pixels), tol, desc)

    q = quadrants()
    # JPEG with each EXIF orientation: all must decode to the same upright 64 x 48 picture.
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        fname = f"jpeg_exif_orientation_{o}.jpg"
        Image.fromarray(stored_for_orientation(q, o)).save(folder / fname, quality=95, exif=exif)
        add(f"jpeg_exif_{o}", fname, (DISPLAY_W, DISPLAY_H), QUADRANT_PIXELS, 12, f"JPEG, EXIF orientation {o}")

    Image.fromarray(q).save(folder / "png_rgb.png")
    add("png_rgb", "png_rgb.png", (64, 48), QUADRANT_PIXELS, 0, "PNG RGB 8-bit")

    # RGBA: opaque red | fully transparent blue (-> white) | half-transparent black (-> 127 grey).
    rgba = np.zeros((10, 30, 4), np.uint8)
    rgba[:, :10] = (255, 0, 0, 255)
    rgba[:, 10:20] = (0, 0, 255, 0)
    rgba[:, 20:] = (0, 0, 0, 128)
    Image.fromarray(rgba, "RGBA").save(folder / "png_rgba.png")
    add("png_rgba", "png_rgba.png", (30, 10), [((5, 5), RED), ((15, 5), WHITE), ((25, 5), (127, 127, 127))], 1,
        "PNG RGBA composited on white")

    la = np.zeros((6, 12, 2), np.uint8)
    la[:, :6] = (50, 255)
    la[:, 6:] = (50, 0)
    Image.fromarray(la, "LA").save(folder / "png_la.png")
    add("png_la", "png_la.png", (12, 6), [((2, 2), (50, 50, 50)), ((9, 2), WHITE)], 0, "PNG grey + alpha")

    pal = Image.new("P", (12, 6), 0)
    pal.putpalette([*RED, *GREEN, *BLUE])
    pal.paste(1, (6, 0, 12, 6))
    pal.save(folder / "png_palette.png")
    add("png_palette", "png_palette.png", (12, 6), [((2, 2), RED), ((9, 2), GREEN)], 0, "PNG palette")
    pal.save(folder / "png_palette_transparent.png", transparency=0)
    add("png_palette_transparent", "png_palette_transparent.png", (12, 6), [((2, 2), WHITE), ((9, 2), GREEN)], 0,
        "PNG palette with a transparent index")

    Image.fromarray(np.full((6, 8), 77, np.uint8)).save(folder / "png_gray.png")
    add("png_gray", "png_gray.png", (8, 6), [((3, 3), (77, 77, 77))], 0, "PNG grey 8-bit")

    # 16-bit: 1000 must become ~4, not 255 (clipping) nor 0 (truncation to the low byte's range).
    g16 = np.array([[0, 1000, 32896, 65535]] * 3, np.uint16)
    g16_pixels = [((0, 1), BLACK), ((1, 1), (4, 4, 4)), ((2, 1), (128, 128, 128)), ((3, 1), WHITE)]
    Image.fromarray(g16).save(folder / "png_gray16.png")
    add("png_gray16", "png_gray16.png", (4, 3), g16_pixels, 0, "PNG grey 16-bit")
    Image.fromarray(g16).save(folder / "tiff_gray16.tif")
    add("tiff_gray16", "tiff_gray16.tif", (4, 3), g16_pixels, 0, "TIFF grey 16-bit")
    Image.fromarray(g16.astype(">u2")).save(folder / "tiff_gray16_big_endian.tif")
    add("tiff_gray16_be", "tiff_gray16_big_endian.tif", (4, 3), g16_pixels, 0, "TIFF grey 16-bit big-endian")

    rgb16 = np.zeros((3, 4, 3), np.uint16)
    rgb16[:, :2] = (65535, 1000, 32896)
    rgb16[:, 2:] = (0, 65535, 16448)
    rgb16_pixels = [((0, 1), (255, 4, 128)), ((3, 1), (0, 255, 64))]
    cv2.imwrite(str(folder / "png_rgb16.png"), rgb16[..., ::-1])  # OpenCV writes BGR
    add("png_rgb16", "png_rgb16.png", (4, 3), rgb16_pixels, 1, "PNG RGB 16-bit")
    cv2.imwrite(str(folder / "tiff_rgb16.tif"), rgb16[..., ::-1])
    add("tiff_rgb16", "tiff_rgb16.tif", (4, 3), rgb16_pixels, 1, "TIFF RGB 16-bit")

    Image.fromarray(np.array([[0, 1000, 65535]] * 2, np.int32)).save(folder / "tiff_int32.tif")
    add("tiff_int32", "tiff_int32.tif", (3, 2), [((0, 0), BLACK), ((1, 0), (4, 4, 4)), ((2, 0), WHITE)], 0,
        "TIFF 32-bit integer (mode I) holding 16-bit values")
    Image.fromarray(np.array([[0.0, 0.25, 1.0]] * 2, np.float32)).save(folder / "tiff_float.tif")
    add("tiff_float", "tiff_float.tif", (3, 2), [((0, 0), BLACK), ((1, 0), (64, 64, 64)), ((2, 0), WHITE)], 0,
        "TIFF float (mode F) in [0, 1]")

    cmyk = Image.new("CMYK", (12, 6), (0, 0, 0, 0))  # white
    cmyk.paste((0, 255, 255, 0), (0, 0, 6, 6))  # no cyan, full magenta + yellow: red
    cmyk.save(folder / "tiff_cmyk.tif")
    add("tiff_cmyk", "tiff_cmyk.tif", (12, 6), [((2, 2), RED), ((9, 2), WHITE)], 0, "TIFF CMYK")
    cmyk.save(folder / "jpeg_cmyk.jpg", quality=95)
    add("jpeg_cmyk", "jpeg_cmyk.jpg", (12, 6), [((1, 2), RED), ((10, 2), WHITE)], 16, "JPEG CMYK")

    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(folder / "jpeg_gray.jpg", quality=95)
    add("jpeg_gray", "jpeg_gray.jpg", (8, 8), [((4, 4), (200, 200, 200))], 3, "JPEG grey")

    Image.fromarray(q).save(folder / "bmp_rgb.bmp")
    add("bmp_rgb", "bmp_rgb.bmp", (64, 48), QUADRANT_PIXELS, 0, "BMP RGB")
    bits = np.zeros((4, 8), bool)
    bits[:, 4:] = True
    Image.fromarray(bits).convert("1").save(folder / "bmp_1bit.bmp")
    add("bmp_1bit", "bmp_1bit.bmp", (8, 4), [((1, 1), BLACK), ((6, 1), WHITE)], 0, "BMP 1-bit")
    Image.fromarray(bits).convert("1").save(folder / "png_1bit.png")
    add("png_1bit", "png_1bit.png", (8, 4), [((1, 1), BLACK), ((6, 1), WHITE)], 0, "PNG 1-bit")

    Image.fromarray(q).save(folder / "webp_lossless.webp", lossless=True)
    add("webp_rgb", "webp_lossless.webp", (64, 48), QUADRANT_PIXELS, 0, "WebP lossless RGB")
    Image.fromarray(q).save(folder / "webp_lossy.webp", quality=90)
    add("webp_lossy", "webp_lossy.webp", (64, 48), QUADRANT_PIXELS, 16, "WebP lossy RGB")
    Image.fromarray(rgba, "RGBA").save(folder / "webp_rgba.webp", lossless=True)
    add("webp_rgba", "webp_rgba.webp", (30, 10), [((5, 5), RED), ((15, 5), WHITE), ((25, 5), (127, 127, 127))], 1,
        "WebP with alpha composited on white")

    frames = [Image.new("RGB", (8, 6), c) for c in (RED, BLUE)]
    frames[0].save(folder / "gif_two_frames.gif", save_all=True, append_images=frames[1:])
    add("gif_frames", "gif_two_frames.gif", (8, 6), [((4, 3), RED)], 0, "GIF, two frames: the first is read")
    pages = [Image.new("RGB", (8, 6), c) for c in (GREEN, BLUE)]
    pages[0].save(folder / "tiff_two_pages.tif", save_all=True, append_images=pages[1:])
    add("tiff_pages", "tiff_two_pages.tif", (8, 6), [((4, 3), GREEN)], 0, "TIFF, two pages: the first is read")
    return out


def write_bad_files(folder: Path) -> dict[str, BadFile]:
    """Write one file per failure kind into ``folder`` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, BadFile] = {}

    def add(name: str, path: Path, reason: str, skip: str = "") -> None:
        out[name] = BadFile(path, reason, skip)

    (folder / "zero_byte.jpg").write_bytes(b"")
    add("zero_byte", folder / "zero_byte.jpg", "empty file")

    noise = _noise(128, 96)
    Image.fromarray(noise).save(folder / "_full.jpg", quality=90)
    data = (folder / "_full.jpg").read_bytes()
    (folder / "_full.jpg").unlink()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    add("truncated_jpeg", folder / "truncated.jpg", "truncated image file")

    Image.fromarray(noise).save(folder / "_full.png")
    data = (folder / "_full.png").read_bytes()
    (folder / "_full.png").unlink()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    add("truncated_png", folder / "truncated.png", "truncated image file")
    corrupt = bytearray(data)
    corrupt[data.find(b"IDAT") + 100] ^= 0xFF  # damage the compressed stream (and its CRC)
    (folder / "corrupt.png").write_bytes(bytes(corrupt))
    add("corrupt_png", folder / "corrupt.png", "corrupt image data")

    (folder / "random_bytes.jpg").write_bytes(np.random.default_rng(1).bytes(2000))
    add("random_bytes", folder / "random_bytes.jpg", "not an image (unrecognised format)")
    (folder / "text.png").write_text("this is not a picture\n")
    add("text_as_png", folder / "text.png", "not an image (unrecognised format)")
    Image.new("RGB", (4, 4)).save(folder / "ppm_named.jpg", format="PPM")
    add("unsupported_format", folder / "ppm_named.jpg", "unsupported image format: PPM")

    unreadable = folder / "unreadable.jpg"
    Image.fromarray(noise).save(unreadable)
    os.chmod(unreadable, 0)
    add("unreadable", unreadable, "permission denied",
        "running as root: permissions are not enforced" if running_as_root() else "")

    # Header says 40000 x 40000 (4.8 GB of RGB); a few hundred bytes on disk.
    add("bomb", write_png_with_declared_size(folder / "bomb.png", 40000, 40000),
        "image too large: 40000x40000 pixels exceeds the limit of")
    # 12000 x 12000 = 144 Mpx: above our default limit, below Pillow's own error threshold.
    add("bomb_moderate", write_png_with_declared_size(folder / "bomb_moderate.png", 12000, 12000),
        "image too large: 12000x12000 pixels exceeds the limit of 134217728 (max_pixels)")

    os.symlink("does_not_exist.jpg", folder / "broken_link.jpg")
    add("broken_link", folder / "broken_link.jpg", "broken symbolic link")
    os.symlink("loop_b.jpg", folder / "loop_a.jpg")
    os.symlink("loop_a.jpg", folder / "loop_b.jpg")
    add("link_loop", folder / "loop_a.jpg", "symbolic link loop")

    (folder / "folder.jpg").mkdir()
    add("directory", folder / "folder.jpg", "is a directory")

    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "fifo.jpg")
        add("fifo", folder / "fifo.jpg", "not a regular file")
    return out


def build_tree(root: Path) -> Tree:
    """A folder with nested, hidden, non-image, linked and broken entries for walk tests.

    ::

        A.png  b.jpg  c.JPG  notes.txt  README  broken.jpg -> missing
        loop1.jpg <-> loop2.jpg      link_to_sub -> sub (not followed)
        folder.jpg/inner.png         sub/x.png  sub/deeper/y.tif  sub/deeper/up -> .. (cycle)
        sub2/z.webp  sub2/.h2.png    .hidden.jpg  .hiddendir/h.jpg
    """
    root = Path(root)
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "sub2").mkdir()
    (root / ".hiddendir").mkdir()
    (root / "folder.jpg").mkdir()
    tiny = Image.fromarray(quadrants(8, 8))
    for rel in ["A.png", "b.jpg", "c.JPG", "folder.jpg/inner.png", "sub/x.png", "sub/deeper/y.tif",
                "sub2/z.webp", "sub2/.h2.png", ".hidden.jpg", ".hiddendir/h.jpg"]:
        fmt = {".jpg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".webp": "WEBP"}[Path(rel).suffix.lower()]
        tiny.save(root / rel, format=fmt)
    (root / "notes.txt").write_text("not an image\n")
    (root / "README").write_text("no extension\n")
    os.symlink("missing.jpg", root / "broken.jpg")
    os.symlink("loop2.jpg", root / "loop1.jpg")
    os.symlink("loop1.jpg", root / "loop2.jpg")
    os.symlink("sub", root / "link_to_sub")
    os.symlink("..", root / "sub" / "deeper" / "up")
    visible = ("A.png", "b.jpg", "broken.jpg", "c.JPG", "folder.jpg/inner.png", "loop1.jpg", "loop2.jpg",
               "sub/deeper/y.tif", "sub/x.png", "sub2/z.webp")
    top = tuple(v for v in visible if "/" not in v)
    return Tree(root, visible, top, (".hidden.jpg", ".hiddendir/h.jpg", "sub2/.h2.png"))
