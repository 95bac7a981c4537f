"""Image input: formats, modes, EXIF, bad files, conversions and folder walks."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from imagefiles import (
    DISPLAY_H,
    DISPLAY_W,
    QUADRANT_PIXELS,
    build_tree,
    quadrants,
    stored_for_orientation,
    write_bad_files,
    write_good_images,
)
from PIL import Image, ImageFile

import faceiqa.images as fio
from faceiqa.errors import FaceIQAError, ImageReadError, InvalidArgumentError
from faceiqa.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, check_rgb, expand_inputs, list_images, read_image, to_rgb


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return write_good_images(tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return write_bad_files(tmp_path_factory.mktemp("bad"))


def _check_pixels(img: np.ndarray, spec) -> None:
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert (img.shape[1], img.shape[0]) == spec.size, f"{spec.description}: size {img.shape[1]}x{img.shape[0]}"
    for (x, y), colour in spec.pixels:
        got = img[y, x].astype(int)
        assert np.abs(got - colour).max() <= spec.tolerance, (
            f"{spec.description}: pixel ({x}, {y}) is {tuple(got)}, expected {colour} +-{spec.tolerance}"
        )


GOOD_NAMES = [
    *(f"jpeg_exif_{o}" for o in range(1, 9)),
    "png_rgb", "png_rgba", "png_la", "png_palette", "png_palette_transparent", "png_gray", "png_gray16",
    "tiff_gray16", "tiff_gray16_be", "png_rgb16", "tiff_rgb16", "tiff_int32", "tiff_float", "tiff_cmyk",
    "jpeg_cmyk", "jpeg_gray", "bmp_rgb", "bmp_1bit", "png_1bit", "webp_rgb", "webp_lossy", "webp_rgba",
    "gif_frames", "tiff_pages",
]  # fmt: skip

BAD_NAMES = [
    "zero_byte", "truncated_jpeg", "truncated_png", "corrupt_png", "random_bytes", "text_as_png",
    "unsupported_format", "unreadable", "bomb", "bomb_moderate", "broken_link", "link_loop", "directory", "fifo",
]  # fmt: skip


def test_helper_covers_every_case(good, bad):
    assert sorted(good) == sorted(GOOD_NAMES)
    assert sorted(bad) == sorted(n for n in BAD_NAMES if n != "fifo" or hasattr(os, "mkfifo"))


def test_pillow_has_webp():
    from PIL import features

    assert features.check("webp"), "Pillow was built without WebP support"


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_files_decode_to_expected_pixels(good, name):
    img = read_image(good[name].path)
    _check_pixels(img, good[name])
    assert img.flags.c_contiguous and img.flags.writeable


def test_exif_orientation_6_swaps_dimensions(good):
    # Stored 48 wide x 64 high; shown rotated 90 degrees clockwise as 64 x 48.
    with Image.open(good["jpeg_exif_6"].path) as raw:
        assert raw.size == (DISPLAY_H, DISPLAY_W)
    img = read_image(good["jpeg_exif_6"].path)
    assert img.shape == (DISPLAY_H, DISPLAY_W, 3)
    assert np.abs(img[2, 2].astype(int) - (255, 0, 0)).max() <= 12  # top-left corner is red


def test_sixteen_bit_is_scaled_not_clipped(good):
    img = read_image(good["png_gray16"].path)
    assert list(img[0, :, 0]) == [0, 4, 128, 255]  # 0, 1000, 32896, 65535 of 65535


def test_transparent_pixels_become_white(good):
    img = read_image(good["png_rgba"].path)
    assert (img[:, 10:20] == 255).all()


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_files_raise_image_read_error_with_reason(bad, name):
    if name not in bad:
        pytest.skip(f"{name} cannot be created on this platform")
    case = bad[name]
    if case.skip:
        pytest.skip(case.skip)
    with pytest.raises(ImageReadError) as info:
        read_image(case.path)
    message = str(info.value)
    assert case.reason in message
    assert "\n" not in message and len(message) < 160
    assert isinstance(info.value, OSError) and isinstance(info.value, FaceIQAError)


def test_missing_file():
    with pytest.raises(ImageReadError, match="^file not found$"):
        read_image("no/such/photo.jpg")


def test_permission_denied_is_reported(good, monkeypatch):
    """Runs even as root: the OS error of open() is what the reason is built from."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fio, "open", refuse, raising=False)
    with pytest.raises(ImageReadError, match="^permission denied$"):
        read_image(good["png_rgb"].path)


def test_max_pixels_is_checked_before_decoding(good):
    message = r"^image too large: 64x48 pixels exceeds the limit of 3071 \(max_pixels\)$"
    with pytest.raises(ImageReadError, match=message):
        read_image(good["png_rgb"].path, max_pixels=64 * 48 - 1)
    assert read_image(good["png_rgb"].path, max_pixels=64 * 48).shape == (48, 64, 3)


def test_bomb_beyond_pillows_own_limit_names_that_limit(bad):
    limit = 2 * Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageReadError, match=rf"40000x40000 pixels exceeds the limit of {limit} \(2 x PIL"):
        read_image(bad["bomb"].path, max_pixels=10**10)


def test_no_decompression_bomb_warning_leaks(bad):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageReadError, match="too large"):
            read_image(bad["bomb_moderate"].path)


def test_pillow_global_state_is_untouched(good, bad):
    before = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
    for case in [*good.values(), *bad.values()]:
        if case in bad.values() and case.skip:
            continue
        with contextlib.suppress(ImageReadError):
            read_image(case.path)
    assert (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS) == before == (False, before[1])


def test_read_image_argument_errors(good):
    with pytest.raises(InvalidArgumentError, match="path"):
        read_image(123)  # type: ignore[arg-type]
    for bad_limit in (0, -5, 1.5, True):
        with pytest.raises(InvalidArgumentError, match="max_pixels"):
            read_image(good["png_rgb"].path, max_pixels=bad_limit)  # type: ignore[arg-type]
    assert DEFAULT_MAX_PIXELS >= 100_000_000


def test_every_listed_file_reads_or_fails_cleanly(good, bad):
    """What the pipeline relies on: only ImageReadError, never another exception or a hang."""
    folders = {good["png_rgb"].path.parent, bad["zero_byte"].path.parent}
    ok = errors = 0
    for folder in sorted(folders):
        for path in list_images(folder):
            try:
                read_image(path)
                ok += 1
            except ImageReadError:
                errors += 1
    readable_anyway = sum(1 for case in bad.values() if case.skip)  # e.g. chmod 000 as root
    assert ok == len(good) + readable_anyway
    # The folder "folder.jpg" is walked, not listed; the link loop is two listed links.
    assert errors == len(bad) - readable_anyway - 1 + 1


# ----------------------------------------------------------------------------------------------
# to_rgb
# ----------------------------------------------------------------------------------------------


def test_to_rgb_path_and_pil(good):
    path = good["jpeg_exif_6"].path
    from_path = to_rgb(path)
    assert from_path.shape == (DISPLAY_H, DISPLAY_W, 3)
    assert np.array_equal(to_rgb(str(path)), from_path)
    with Image.open(path) as pil:
        assert np.array_equal(to_rgb(pil), from_path)  # EXIF orientation applied to PIL input too
    rgba = Image.fromarray(np.array([[[10, 20, 30, 0], [10, 20, 30, 255]]], np.uint8), "RGBA")
    assert to_rgb(rgba).tolist() == [[[255, 255, 255], [10, 20, 30]]]
    assert to_rgb(Image.new("L", (3, 2), 9)).shape == (2, 3, 3)


def test_to_rgb_truncated_pil_image_raises_read_error(bad):
    with Image.open(bad["truncated_jpeg"].path) as pil, pytest.raises(ImageReadError, match="truncated"):
        to_rgb(pil)


def test_to_rgb_numpy():
    rgb = quadrants()
    assert to_rgb(rgb) is rgb  # already in the library's format: no copy
    gray = np.full((4, 5), 7, np.uint8)
    assert to_rgb(gray).shape == (4, 5, 3) and (to_rgb(gray) == 7).all()
    assert to_rgb(gray[..., None]).shape == (4, 5, 3)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (0, 0, 255, 255)
    out = to_rgb(rgba)
    assert out[0, 0].tolist() == [0, 0, 255] and out[1, 1].tolist() == [255, 255, 255]
    f = np.array([[[0.0, 0.5, 1.0]]], np.float32)
    assert to_rgb(f).tolist() == [[[0, 128, 255]]]
    assert to_rgb(f.astype(np.float64)).dtype == np.uint8
    strided = rgb[::2, ::3]
    out = to_rgb(strided)
    assert out.flags.c_contiguous and np.array_equal(out, strided)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 4, 5), np.uint8), r"must have shape .* got \(4, 4, 5\)"),
        (np.zeros((1, 4, 4, 3), np.uint8), r"must have shape .* got \(1, 4, 4, 3\)"),
        (np.zeros(5, np.uint8), r"must have shape .* got \(5,\)"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.zeros((4, 4, 3), np.uint16), "dtype must be uint8 or float in \\[0, 1\\], got uint16"),
        (np.zeros((4, 4, 3), np.int64), "got int64"),
        (np.full((4, 4, 3), 255.0, np.float32), r"values must be in \[0, 1\], got range \[255, 255\]"),
        (np.full((4, 4, 3), -0.1), r"values must be in \[0, 1\], got range \[-0.1, -0.1\]"),
        (np.full((4, 4), np.nan, np.float32), "NaN"),
    ],
    ids=["5-channels", "batch", "1-d", "empty", "uint16", "int64", "float-0-255", "negative", "nan"],
)
def test_to_rgb_numpy_errors(array, message):
    with pytest.raises(InvalidArgumentError, match=message):
        to_rgb(array)


def test_to_rgb_torch():
    rgb = quadrants()
    chw_float = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
    assert np.array_equal(to_rgb(chw_float), rgb)
    assert np.array_equal(to_rgb(torch.from_numpy(rgb)), rgb)  # HWC uint8
    assert np.array_equal(to_rgb(torch.from_numpy(rgb).permute(2, 0, 1)), rgb)  # CHW uint8
    assert np.array_equal(to_rgb(chw_float.permute(1, 2, 0).double()), rgb)  # HWC float64
    assert to_rgb(torch.zeros(1, 6, 7)).shape == (6, 7, 3)
    assert to_rgb(torch.zeros(6, 7)).shape == (6, 7, 3)
    if hasattr(torch, "bfloat16"):
        assert to_rgb(chw_float.to(torch.bfloat16)).shape == (DISPLAY_H, DISPLAY_W, 3)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (torch.zeros(1, 3, 8, 8), r"must have shape \(3, H, W\), .* got \(1, 3, 8, 8\)"),
        (torch.zeros(4, 8, 8), r"got \(4, 8, 8\)"),
        (torch.zeros(3, 8, 8, dtype=torch.int64), "dtype must be uint8 or float"),
        (torch.full((3, 8, 8), 2.0), r"values must be in \[0, 1\], got range \[2, 2\]"),
    ],
    ids=["batch", "4-channels-first", "int64", "out-of-range"],
)
def test_to_rgb_torch_errors(tensor, message):
    with pytest.raises(InvalidArgumentError, match=message):
        to_rgb(tensor)


@pytest.mark.parametrize("value", [[[0, 0, 0]], b"\xff\xd8", 3.0, None])
def test_to_rgb_unsupported_types(value):
    with pytest.raises(InvalidArgumentError, match="unsupported image type"):
        to_rgb(value)


# ----------------------------------------------------------------------------------------------
# list_images / expand_inputs
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    return build_tree(tmp_path / "tree")


def _rel(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_list_images_default(tree):
    found = list_images(tree.root)
    assert _rel(found, tree.root) == [
        "A.png", "b.jpg", "broken.jpg", "c.JPG", "folder.jpg/inner.png", "loop1.jpg", "loop2.jpg",
        "sub/deeper/y.tif", "sub/x.png", "sub2/z.webp",
    ]  # fmt: skip
    assert _rel(found, tree.root) == list(tree.visible)
    assert all(p.parent == tree.root or tree.root in p.parents for p in found)
    # Deterministic and independent of how the root is spelled.
    assert list_images(str(tree.root)) == found


def test_list_images_options(tree):
    assert _rel(list_images(tree.root, recursive=False), tree.root) == list(tree.top_level)
    with_hidden = _rel(list_images(tree.root, include_hidden=True), tree.root)
    assert sorted(set(with_hidden) - set(tree.visible)) == sorted(tree.hidden)
    assert with_hidden[:2] == [".hidden.jpg", ".hiddendir/h.jpg"]
    pngs = _rel(list_images(tree.root, extensions=["PNG"]), tree.root)
    assert pngs == ["A.png", "folder.jpg/inner.png", "sub/x.png"]
    assert _rel(list_images(tree.root, extensions=[".jpg"], recursive=False), tree.root) == [
        "b.jpg", "broken.jpg", "c.JPG", "loop1.jpg", "loop2.jpg",
    ]  # fmt: skip
    assert ".jpg" in IMAGE_EXTENSIONS and ".webp" in IMAGE_EXTENSIONS


def test_list_images_does_not_follow_folder_links(tree):
    found = _rel(list_images(tree.root), tree.root)
    assert not any(p.startswith("link_to_sub/") or "/up/" in p for p in found)


def test_list_images_errors(tmp_path, tree):
    with pytest.raises(InvalidArgumentError, match="folder not found"):
        list_images(tmp_path / "missing")
    with pytest.raises(InvalidArgumentError, match="not a folder"):
        list_images(tree.root / "A.png")
    with pytest.raises(InvalidArgumentError, match="extension"):
        list_images(tree.root, extensions=[""])


def test_expand_inputs(tree):
    root = tree.root
    out = expand_inputs([root / "sub", root / "notes.txt", root / ".hidden.jpg", root / "broken.jpg", root / "sub"])
    assert _rel(out, root) == ["sub/deeper/y.tif", "sub/x.png", "notes.txt", ".hidden.jpg", "broken.jpg"]
    assert expand_inputs(str(root / "A.png")) == [root / "A.png"]
    assert expand_inputs([root / "link_to_sub"]) == [root / "link_to_sub" / "deeper" / "y.tif",
                                                      root / "link_to_sub" / "x.png"]  # named: followed
    assert _rel(expand_inputs([root], recursive=False), root) == list(tree.top_level)
    assert expand_inputs([]) == []


def test_expand_inputs_missing_path(tree):
    with pytest.raises(InvalidArgumentError, match=r"path does not exist: .*nope\.jpg"):
        expand_inputs([tree.root / "A.png", tree.root / "nope.jpg"])
    with pytest.raises(InvalidArgumentError, match="str or path-like"):
        expand_inputs([tree.root, 5])  # type: ignore[list-item]


def test_orientation_helper_matches_exif_meaning():
    """Independent check of the helper: orientation 6 is stored rotated 90 degrees counter-clockwise."""
    q = quadrants()
    stored = stored_for_orientation(q, 6)
    assert stored.shape == (DISPLAY_W, DISPLAY_H, 3)
    assert np.array_equal(stored, np.rot90(q, 1))
    assert np.array_equal(stored_for_orientation(q, 8), np.rot90(q, -1))
    assert QUADRANT_PIXELS[0][1] == (255, 0, 0)


def test_check_rgb_names_what_is_wrong_and_is_shared_by_every_stage():
    from faceiqa.evaluation.baselines import sharpness
    from faceiqa.evaluation.degrade import degrade
    from faceiqa.face.alignment import align_face, get_template

    ok = np.zeros((10, 12, 3), np.uint8)
    assert check_rgb(ok) is ok
    with pytest.raises(InvalidArgumentError, match=r"crop must be an \(H, W, 3\) uint8 RGB numpy array, got list"):
        check_rgb([[0]], "crop")
    with pytest.raises(InvalidArgumentError, match=r"got shape \(10, 12, 3\) dtype float32"):
        check_rgb(ok.astype(np.float32))
    with pytest.raises(InvalidArgumentError, match="is empty"):
        check_rgb(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(InvalidArgumentError, match=r"too small: 12x10 \(min 16x16\)"):
        check_rgb(ok, min_side=16)
    with pytest.raises(InvalidArgumentError, match="image to degrade too small"):
        degrade(np.zeros((5, 5, 3), np.uint8), "blur", 1)
    with pytest.raises(InvalidArgumentError, match="face crop must be"):
        sharpness(np.zeros((5, 5), np.uint8))
    with pytest.raises(InvalidArgumentError, match="image must be"):
        align_face(np.zeros((5, 5)), np.zeros((5, 2)), get_template("dlib-150"))
