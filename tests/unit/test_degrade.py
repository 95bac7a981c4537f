"""Degradations: deterministic per seed, right shape, monotone in a simple statistic."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

import faceiqa.evaluation.degrade as D
from faceiqa.errors import InvalidArgumentError

LEVELS = range(6)


def _textured(size: int = 128, seed: int = 0) -> np.ndarray:
    """A deterministic image with smooth shading, edges and fine texture, away from 0 and 255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 70 + 80 * xx + 30 * yy
    checker = 25 * (((np.arange(size)[:, None] // 6) + (np.arange(size)[None, :] // 6)) % 2)
    texture = cv2.GaussianBlur(rng.normal(0, 12, (size, size)), (0, 0), 0.8)
    grey = base + checker + texture
    img = np.stack([grey, grey * 0.9 + 12, grey * 0.8 + 20], axis=-1)
    return np.clip(img, 30, 225).astype(np.uint8)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return _textured()


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)


def _laplacian_var(img):
    return cv2.Laplacian(_grey(img), cv2.CV_64F).var()


def _high_freq_energy(img):
    f = np.fft.fftshift(np.abs(np.fft.fft2(_grey(img) - _grey(img).mean())) ** 2)
    h, w = f.shape
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2))
    return f[r > 0.1].sum()  # above 10 % of Nyquist: every level removes part of it


def _blockiness(img):
    """Mean step across 8x8 block boundaries relative to the mean step inside blocks."""
    g = _grey(img)
    ratios = []
    for axis in (0, 1):
        d = np.abs(np.diff(g, axis=axis))
        boundary = np.take(d, np.arange(7, d.shape[axis], 8), axis=axis).mean()
        inside = np.delete(d, np.s_[7::8], axis=axis).mean()
        ratios.append((boundary + 0.5) / (inside + 0.5))
    return float(np.mean(ratios))


def _smooth(size: int = 128, seed: int = 0) -> np.ndarray:
    """Smooth shading with mild texture: where JPEG blocks show."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    g = 60 + 100 * xx + 40 * np.sin(6 * yy) + cv2.GaussianBlur(rng.normal(0, 20, (size, size)), (0, 0), 3)
    return np.clip(np.stack([g, g * 0.9 + 10, g * 0.8 + 20], -1), 20, 235).astype(np.uint8)


def _series(image, kind, stat, seed=3, **kw):
    return [stat(D.degrade(image, kind, lv, seed=seed, **kw)) for lv in LEVELS]


def _strictly(values, increasing: bool):
    diffs = np.diff(values)
    return bool(np.all(diffs > 0)) if increasing else bool(np.all(diffs < 0))


def test_registry_lists_every_kind_with_five_levels():
    expected = {
        "blur",
        "motion_blur",
        "defocus",
        "noise",
        "low_light",
        "jpeg",
        "resolution",
        "underexposure",
        "overexposure",
        "contrast",
        "colour_cast",
        "occlusion",
    }
    assert set(D.CLASSIC_KINDS) == expected and list(D.CLASSIC_KINDS) == D.list_kinds()[:12]
    assert set(D.LIGHTING_KINDS) == {"side_light", "hard_shadow", "low_key"}
    assert set(D.REAL_WORLD_KINDS) == {"print_aging", "scan_blur", "recompress", "sensor_noise", "upscaled_small"}
    assert D.list_kinds() == [*D.CLASSIC_KINDS, *D.LIGHTING_KINDS, *D.REAL_WORLD_KINDS] == list(D.KINDS)
    for deg in D.KINDS.values():
        assert len(deg.values) == 5, deg.name


def test_docstring_table_matches_registry():
    rows = {}
    for line in D.__doc__.splitlines():
        m = re.match(r"^(\w+)\s{2,}.+?\s{2,}((?:-?[\d.]+\s+){4}-?[\d.]+)\s*$", line)
        if m and m.group(1) in D.KINDS:
            rows[m.group(1)] = tuple(float(v) for v in m.group(2).split())
    assert set(rows) == set(D.KINDS)
    for name, values in rows.items():
        assert values == tuple(float(v) for v in D.KINDS[name].values), name


@pytest.mark.parametrize("kind", list(D.KINDS))
def test_deterministic_shape_dtype_and_input_untouched(image, kind):
    before = image.copy()
    a = D.degrade(image, kind, 3, seed=11)
    b = D.degrade(image, kind, 3, seed=11)
    assert a.shape == image.shape and a.dtype == np.uint8
    assert a.tobytes() == b.tobytes()
    assert np.array_equal(image, before)
    assert not np.array_equal(a, image), f"{kind} level 3 changed nothing"


@pytest.mark.parametrize(
    "kind", ["noise", "low_light", "motion_blur", "colour_cast", "hard_shadow", "print_aging", "scan_blur", "sensor_noise"]
)
def test_random_kinds_depend_on_the_seed(image, kind):
    assert not np.array_equal(D.degrade(image, kind, 4, seed=1), D.degrade(image, kind, 4, seed=2))


def test_level_zero_is_an_unchanged_copy(image):
    out = D.degrade(image, "blur", 0)
    assert np.array_equal(out, image) and out is not image


@pytest.mark.parametrize(
    "kind, stat, increasing",
    [
        ("blur", _laplacian_var, False),
        ("motion_blur", _laplacian_var, False),
        ("defocus", _laplacian_var, False),
        ("underexposure", lambda im: _grey(im).mean(), False),
        ("overexposure", lambda im: _grey(im).mean(), True),
        ("low_light", lambda im: _grey(im).mean(), False),
        ("contrast", lambda im: _grey(im).std(), False),
    ],
)
def test_monotone_in_a_simple_statistic(image, kind, stat, increasing):
    values = _series(image, kind, stat)
    assert _strictly(values, increasing), (kind, values)


def test_resolution_loss_lowers_high_frequency_energy(image):
    # IED 60 px: large enough that every level really down-samples.
    values = _series(image, "resolution", _high_freq_energy, eye_distance=60)
    assert _strictly(values, False), values


def test_noise_raises_residual_std(image):
    values = _series(image, "noise", lambda im: (im.astype(float) - image).std())
    assert values[0] == 0 and _strictly(values, True), values


def test_low_light_noise_grows_relative_to_signal(image):
    # Shot noise: the residual after removing the noiseless darkening grows relative to the mean.
    def rel_noise(level):
        noisy = D.degrade(image, "low_light", level, seed=4).astype(float)
        smooth = cv2.GaussianBlur(noisy, (0, 0), 2)
        return (noisy - smooth).std() / noisy.mean()

    values = [rel_noise(lv) for lv in range(1, 6)]
    assert _strictly(values, True), values


def test_jpeg_raises_blockiness_and_error():
    smooth = _smooth()
    block = _series(smooth, "jpeg", _blockiness)
    err = _series(smooth, "jpeg", lambda im: np.abs(im.astype(float) - smooth).mean())
    assert _strictly(block, True), block
    assert _strictly(err, True), err


def test_colour_cast_moves_mean_colour_away(image):
    ref = image.reshape(-1, 3).mean(0)
    values = _series(image, "colour_cast", lambda im: np.linalg.norm(im.reshape(-1, 3).mean(0) - ref))
    assert values[0] == 0 and _strictly(values, True), values
    # Brightness is roughly kept.
    lum = _grey(D.degrade(image, "colour_cast", 5, seed=3)).mean()
    assert abs(lum - _grey(image).mean()) < 12


def test_occlusion_grows_with_level(image):
    values = _series(image, "occlusion", lambda im: np.any(im != image, axis=2).mean())
    assert values[0] == 0 and _strictly(values, True), values


def test_occlusion_follows_landmarks():
    img = np.full((200, 300, 3), 128, np.uint8)
    lm = np.array([[200, 60], [240, 60], [220, 80], [205, 100], [235, 100]], float)
    eyes = D.occlude(img, 3, region="eyes", colour=(255, 0, 0), landmarks=lm)
    mouth = D.occlude(img, 3, region="mouth", colour=(255, 0, 0), landmarks=lm)
    assert tuple(eyes[60, 220]) == (255, 0, 0) and tuple(eyes[100, 220]) == (128, 128, 128)
    assert tuple(mouth[100, 220]) == (255, 0, 0) and tuple(mouth[60, 220]) == (128, 128, 128)
    assert tuple(eyes[60, 100]) == (128, 128, 128)  # far from the face: untouched


def test_geometry_uses_template_for_matching_chip_and_fractions_otherwise():
    chip = np.zeros((224, 224, 3), np.uint8)
    geo = D.face_geometry(chip)
    assert geo.source == "template:hyperiqa-224"
    assert geo.ied == pytest.approx(56.0, rel=0.02)
    photo = np.zeros((250, 250, 3), np.uint8)
    geo = D.face_geometry(photo)
    assert geo.source == "fractions" and geo.ied == pytest.approx(50.0)
    assert D.face_geometry(photo, eye_distance=80).ied == 80.0


def test_blur_scales_with_face_size():
    """The same level does the same harm to a face twice as large (compared at one size)."""
    small = cv2.GaussianBlur(_textured(96, seed=5), (0, 0), 1.0)
    big = cv2.resize(small, (192, 192), interpolation=cv2.INTER_CUBIC)
    for kind in ("blur", "defocus", "motion_blur"):
        a = D.degrade(small, kind, 4, seed=1, eye_distance=20).astype(float)
        b = cv2.resize(D.degrade(big, kind, 4, seed=1, eye_distance=40), (96, 96), interpolation=cv2.INTER_AREA)
        unscaled = cv2.resize(D.degrade(big, kind, 4, seed=1, eye_distance=20), (96, 96), interpolation=cv2.INTER_AREA)
        err_scaled = np.abs(a - b).mean()
        err_unscaled = np.abs(a - unscaled).mean()
        assert err_scaled < 1.5 and err_scaled < err_unscaled / 2, (kind, err_scaled, err_unscaled)


def test_resolution_is_relative_to_eye_distance(image):
    # A face already smaller than the target stays untouched.
    assert np.array_equal(D.degrade(image, "resolution", 1, eye_distance=20), image)
    assert not np.array_equal(D.degrade(image, "resolution", 1, eye_distance=60), image)


def test_compose_single_step_equals_degrade_and_order_matters(image):
    assert np.array_equal(D.compose(image, [("noise", 2)], seed=7), D.degrade(image, "noise", 2, seed=7))
    a = D.compose(image, "blur:3,jpeg:2", seed=7)
    assert np.array_equal(a, D.compose(image, [("blur", 3), ("jpeg", 2)], seed=7))
    assert not np.array_equal(a, D.compose(image, [("jpeg", 2), ("blur", 3)], seed=7))
    assert np.array_equal(D.compose(image, [], seed=7), image)


def test_parse_spec_accepts_aliases_and_spaces():
    assert D.parse_spec(" Gaussian-Blur:2 , jpeg:5") == [("blur", 2), ("jpeg", 5)]
    assert D.format_spec(D.parse_spec("color_cast:1,motion:3")) == "colour_cast:1,motion_blur:3"


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("", "empty"),
        ("sparkle:2", "unknown degradation kind 'sparkle'"),
        ("blur:6", "1..5"),
        ("blur:0", "1..5"),
        ("blur", "no level"),
        ("blur:x", "bad severity level"),
        ("blur:2,,jpeg:1", "empty item"),
    ],
)
def test_parse_spec_errors_are_one_line(spec, fragment):
    with pytest.raises(InvalidArgumentError) as err:
        D.parse_spec(spec)
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((32, 32), np.uint8),
        np.zeros((32, 32, 3), np.float32),
        np.zeros((4, 40, 3), np.uint8),
        "not an image",
    ],
)
def test_bad_images_are_rejected(bad):
    with pytest.raises(InvalidArgumentError):
        D.degrade(bad, "blur", 1)


def test_bad_level_and_seed_are_rejected(image):
    for level in (6, -1, True, 2.0):
        with pytest.raises(InvalidArgumentError):
            D.degrade(image, "blur", level)
    with pytest.raises(InvalidArgumentError):
        D.degrade(image, "blur", 1, seed=-1)


def test_seed_for_is_stable_and_key_dependent():
    assert D.seed_for("A/A_0001", 0) == D.seed_for("A/A_0001", 0)
    assert D.seed_for("A/A_0001", 0) != D.seed_for("A/A_0002", 0)
    assert D.seed_for("A/A_0001", 0) != D.seed_for("A/A_0001", 1)
    # SHA-256 based: pinned so that a change of the derivation is noticed.
    assert D.seed_for("Abel_Pacheco/Abel_Pacheco_0001", 0) == 0x2E5A600FD0CCD69F


def test_degrades_a_real_lfw_photo(lfw_dir):
    from PIL import Image

    path = sorted((lfw_dir / "images").glob("*/*_0001.jpg"))[0]
    photo = np.asarray(Image.open(path).convert("RGB"))
    assert _strictly(_series(photo, "blur", _laplacian_var), False)
    assert _strictly(_series(photo, "jpeg", _blockiness), True)
    out = D.compose(photo, "motion_blur:3,low_light:2,jpeg:3", seed=D.seed_for(path.stem))
    assert out.shape == photo.shape


# --------------------------------------------------------------------------- lighting and real-world kinds


def _halves(img):
    """Mean luminance of the left and right halves of the face region (fallback geometry: eyes at
    40 % / 60 % of the width, so the face centre is the image's vertical midline)."""
    g = _grey(img)
    h, w = g.shape
    rows = slice(int(0.3 * h), int(0.8 * h))
    return g[rows, int(0.25 * w) : w // 2].mean(), g[rows, w // 2 : int(0.75 * w)].mean()


def _flat(size: int = 128, value: int = 150) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


@pytest.mark.parametrize("kind", ["side_light", "hard_shadow"])
def test_directional_light_darkens_one_half_more_with_each_level(kind):
    ratios = []
    for level in LEVELS:
        left, right = _halves(D.degrade(_flat(), kind, level, seed=5))
        ratios.append(min(left, right) / max(left, right))
    assert ratios[0] == 1.0 and _strictly(ratios, increasing=False), ratios
    assert ratios[-1] < 0.5
    sides = {np.argmin(_halves(D.degrade(_flat(), kind, 3, seed=s))) for s in range(12)}
    assert sides == {0, 1}  # the seed picks the side


def test_a_hard_shadow_has_a_sharp_edge_and_side_light_a_soft_one():
    def edge_width(img):
        row = _grey(img)[64]
        lo, hi = row.min(), row.max()
        inside = (row > lo + 0.1 * (hi - lo)) & (row < hi - 0.1 * (hi - lo))
        return int(inside.sum())

    # Same face, same level; fallback IED = 0.2 * 128 px = 25.6 px.
    shadow, ramp = D.degrade(_flat(), "hard_shadow", 4, seed=1), D.degrade(_flat(), "side_light", 4, seed=1)
    assert edge_width(shadow) <= 6 < 12 <= edge_width(ramp)


def test_low_key_darkens_the_face_but_keeps_a_lit_cheek():
    out = [D.degrade(_flat(), "low_key", lv, seed=2) for lv in LEVELS]
    means = [_grey(o).mean() for o in out]
    assert _strictly(means, increasing=False), means
    g = _grey(out[4])
    assert g.max() > 1.5 * np.percentile(g, 10)  # the key light leaves one bright region


def test_print_aging_fades_towards_paper_and_adds_grain(image):
    paper = np.array([222.0, 205.0, 170.0])
    warmth = _series(image, "print_aging", lambda im: float(im[..., 0].mean() - im[..., 2].mean()))
    assert _strictly(warmth, increasing=True), warmth  # towards the paper's red-over-blue tone
    dist = _series(image, "print_aging", lambda im: float(np.abs(im.reshape(-1, 3).mean(0) - paper).mean()))
    assert _strictly(dist[1:], increasing=False) and dist[5] < dist[0], dist
    flat = [D.degrade(_flat(), "print_aging", lv, seed=4) for lv in LEVELS]
    grain = [float(_grey(f).std()) for f in flat]
    assert _strictly(grain, increasing=True), grain


def test_scan_blur_removes_detail_more_along_one_axis(image):
    assert _strictly(_series(image, "scan_blur", _laplacian_var), increasing=False)
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    out = _grey(D.degrade(noise, "scan_blur", 5, seed=9, eye_distance=60.0))
    gx, gy = np.abs(np.diff(out, axis=1)).mean(), np.abs(np.diff(out, axis=0)).mean()
    assert max(gx, gy) > 1.3 * min(gx, gy)


def test_recompress_rounds_accumulate_error_and_blocks():
    img = _smooth()
    err = [float(np.abs(D.degrade(img, "recompress", lv).astype(float) - img).mean()) for lv in LEVELS]
    assert _strictly(err, increasing=True), err
    assert _high_freq_energy(D.degrade(img, "recompress", 5)) < _high_freq_energy(img)


def test_sensor_noise_grows_with_missing_light():
    flat = _flat(value=120)
    noise = [float(_grey(D.degrade(flat, "sensor_noise", lv, seed=6)).std()) for lv in LEVELS]
    assert _strictly(noise[1:], increasing=True), noise
    mean = _grey(D.degrade(flat, "sensor_noise", 3, seed=6)).mean()
    assert abs(mean - 120) < 12  # gained back: the exposure is kept, the noise is not


def test_upscaled_small_loses_detail_and_is_relative_to_eye_distance(image):
    energy = _series(image, "upscaled_small", _high_freq_energy, eye_distance=60.0)
    assert _strictly(energy, increasing=False), energy
    # a face already smaller than the target is left as it is
    assert np.array_equal(D.degrade(image, "upscaled_small", 1, eye_distance=20.0), image)
    # not the same as plain resolution loss at the same size: bicubic + sharpening
    a = D.degrade(image, "upscaled_small", 3, eye_distance=60.0)
    assert _laplacian_var(a) > _laplacian_var(cv2.resize(cv2.resize(image, (30, 30), interpolation=cv2.INTER_AREA), (128, 128)))
