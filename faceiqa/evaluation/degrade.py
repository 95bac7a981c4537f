"""Deterministic, seeded image degradations with 5 severity levels.

Every degradation takes an (H, W, 3) uint8 RGB image and returns a new image of the same
shape and dtype. Level 0 returns an unchanged copy (the pristine reference); levels 1 (mild)
to 5 (severe) apply the parameter in the table below. Randomness (noise fields, the motion
direction, the colour-cast hue, the occluded region and its colour) comes from a
``numpy.random.Generator`` built from the seed, and is drawn the same way at every level, so
for one image and seed the levels differ only in strength: each kind is monotone in severity
by construction (same direction, same noise field, nested occluders).

Size. Geometric parameters are given in units of the inter-eye distance (IED, pixels between
the eye centres) so that one level does similar harm to a 150-pixel chip and to a
1000-pixel photo. The IED is, in this order: the ``eye_distance`` argument; the distance
between the eyes of ``landmarks``; that of the ``template`` argument, or of the one
registered alignment template (``faceiqa.face.alignment.TEMPLATES``) whose square size equals
the image's (a 150-px ``dlib-150`` chip, a 224-px ``hyperiqa-224`` crop); otherwise 0.2 x
the short side (a face-centred photo such as an LFW 250 x 250 image, IED ~ 50 px).
Photometric kinds (noise, exposure, contrast, colour, JPEG) act per pixel and are not
scaled: they describe the capture or the file, not the face's size.

===============  ==========================================  =====  =====  =====  =====  =====
kind             parameter                                   1      2      3      4      5
===============  ==========================================  =====  =====  =====  =====  =====
blur             Gaussian sigma / IED                        0.02   0.04   0.06   0.09   0.13
motion_blur      blur length / IED (direction from seed)     0.08   0.15   0.25   0.35   0.5
defocus          disk radius / IED                           0.03   0.06   0.09   0.13   0.18
noise            Gaussian sigma, 8-bit levels                5      10     17     26     38
low_light        exposure change, EV (stops)                 -1     -1.5   -2     -2.5   -3
jpeg             JPEG quality (OpenCV / libjpeg, 4:2:0)      40     25     15     10     5
resolution       IED after down-sampling, pixels             32     22     16     11     8
underexposure    exposure change, EV (stops)                 -0.75  -1.5   -2.25  -3     -3.75
overexposure     exposure change, EV (stops)                 0.5    1      1.5    2      2.5
contrast         contrast kept (1 = unchanged)               0.7    0.5    0.35   0.22   0.12
colour_cast      channel gain amplitude (hue from seed)      0.1    0.2    0.3    0.45   0.6
occlusion        patch width / IED (eyes or mouth, by seed)  0.6    1.0    1.5    2.0    2.6
side_light       EV lost on the far side (side by seed)      1.0    1.75   2.5    3.25   4.0
hard_shadow      EV lost in the shadow (side, tilt by seed)  1.0    1.75   2.5    3.25   4.0
low_key          EV lost away from the key light             1.5    2.25   3.0    3.75   4.5
print_aging      fading towards the paper tone               0.15   0.25   0.35   0.45   0.55
scan_blur        short-axis sigma / IED (axis by seed)       0.008  0.015  0.025  0.035  0.05
recompress       rounds of resize + JPEG                     1      2      3      4      5
sensor_noise     EV of missing light, gained back            1.0    1.75   2.5    3.25   4.0
upscaled_small   IED before enlarging, pixels                24     18     14     10     7
===============  ==========================================  =====  =====  =====  =====  =====

The first twelve (:data:`CLASSIC_KINDS`) are what faceiqa-face v1 was trained on and what the
EDC's ``mix`` plan draws from. :data:`LIGHTING_KINDS` are directional light and shadow;
:data:`REAL_WORLD_KINDS` imitate real low-quality photos (old prints, scans, re-shared files,
phones at night, small faces enlarged by apps).

Details:

- Exposure and low light work in linear light (gamma 2.2): ``lin * 2**EV``, clipped. Low
  light adds signal-dependent (shot) noise after darkening: the signal is expressed in
  photo-electrons with a full well of 800, 400, 200, 100, 50 e- at white for levels 1..5,
  plus 1 e- of read noise; the shot noise is the Gaussian approximation of Poisson noise,
  so one standard-normal field serves every level.
- Noise is independent per channel.
- Resolution loss shrinks with area averaging until the IED measures the given number of
  pixels, then enlarges back bilinearly; a face already smaller than that is left unchanged.
- Contrast blends every pixel towards the image's mean grey value.
- Colour cast multiplies the channels by gains 1 + a * v (v a unit chroma direction of
  random hue, |v| <= 1 per channel), rescaled so the Rec. 601 luma weights of the gains sum
  to 1 (brightness is kept, up to clipping).
- Occlusion draws a flat patch of random colour, aligned with the eye line, centred on the
  eye midpoint or the mouth-corner midpoint; its height is 0.35, 0.45, 0.55, 0.7, 0.9 IED.
  Landmarks are taken from ``landmarks`` (MTCNN order), else the matching alignment template,
  else fixed fractions of the image (eyes at 40 % / 60 % of the width, 46 % of the height;
  mouth corners at 42 % / 58 %, 64 %).

- Lighting kinds change exposure per pixel in linear light, in the face's frame (IED units,
  origin midway between the eye and mouth midpoints, x along the eye line): ``side_light`` a
  logistic ramp of width 0.25 IED across the nose line; ``hard_shadow`` the same with a 0.04 IED
  penumbra and a tilt of up to 20 degrees; ``low_key`` -value/2 EV everywhere and a further
  -value/2 EV away from a Gaussian key light (sigma 0.6 IED) on one cheek.
- ``print_aging`` blends towards a warm paper tone (222, 205, 170) after a half sepia toning,
  softens (sigma 0.02 * fading * IED) and adds blurred film grain of sigma 25 * fading levels.
- ``scan_blur`` is a Gaussian three times longer along a random axis than across it.
- ``recompress`` applies the first L rounds of a fixed chain of (resize, JPEG quality):
  (0.85, 55), (0.8, 45), (0.9, 38), (0.75, 30), (0.85, 22), then resizes back.
- ``sensor_noise`` removes light in linear space, adds shot noise (full well 200 e-) and 2 e-
  read noise, gains back and applies a 3x3 median filter (the camera's denoising).
- ``upscaled_small`` shrinks like ``resolution`` but enlarges bicubically and sharpens
  (unsharp mask, amount 0.8).

Composition: :func:`compose` applies steps in order; step ``i`` draws from the generator
seeded with ``[seed, i]`` (a single step therefore equals :func:`degrade` with that seed).
Specs are strings ``"kind:level,kind:level"`` (:func:`parse_spec`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from faceiqa._util import Registry, check_int
from faceiqa.errors import InvalidArgumentError
from faceiqa.face.alignment import TEMPLATES, AlignmentTemplate, get_template
from faceiqa.images import check_rgb

log = logging.getLogger("faceiqa.degrade")

LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)
"""Severity levels accepted in specs; :func:`degrade` also accepts 0 (no change)."""

_GAMMA = 2.2
_FALLBACK_IED_FRACTION = 0.2
# (x, y) as fractions of width and height, MTCNN order: eyes, nose, mouth corners.
_FALLBACK_POINTS = np.array([[0.40, 0.46], [0.60, 0.46], [0.50, 0.55], [0.42, 0.64], [0.58, 0.64]], dtype=np.float64)


@dataclass(frozen=True)
class FaceGeometry:
    """Where the face is, as far as a degradation needs to know.

    Attributes:
        landmarks: (5, 2) float array, MTCNN order, in image pixels.
        ied: inter-eye distance in pixels used to scale geometric parameters (> 0).
        source: ``"landmarks"``, ``"template:<name>"`` or ``"fractions"``.
    """

    landmarks: np.ndarray
    ied: float
    source: str


DegradeFn = Callable[[np.ndarray, float, np.random.Generator, FaceGeometry, int], np.ndarray]


@dataclass(frozen=True)
class Degradation:
    """One registered degradation kind.

    Attributes:
        name: the kind's name in specs.
        description: one line.
        parameter: what ``values`` hold, with its unit.
        values: the parameter for levels 1..5.
        scaled: True when the parameter is relative to the inter-eye distance.
        func: ``func(image, value, rng, geometry, level) -> image`` (internal).
    """

    name: str
    description: str
    parameter: str
    values: tuple[float, ...]
    scaled: bool
    func: DegradeFn


# ---------------------------------------------------------------------------------------
# helpers


def _check_image(image: np.ndarray) -> np.ndarray:
    return check_rgb(image, "image to degrade", min_side=8)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _to_linear(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float64) / 255.0) ** _GAMMA


def _from_linear(lin: np.ndarray) -> np.ndarray:
    return _to_uint8(255.0 * np.clip(lin, 0.0, 1.0) ** (1.0 / _GAMMA))


def _template_for(image: np.ndarray, template: AlignmentTemplate | str | None) -> AlignmentTemplate | None:
    if template is not None:
        tpl = get_template(template) if isinstance(template, str) else template
        if not isinstance(tpl, AlignmentTemplate):
            raise InvalidArgumentError("template must be an AlignmentTemplate or a registered template name")
        return tpl
    h, w = image.shape[:2]
    if h != w:
        return None
    matches = [t for t in TEMPLATES.values() if t.size == h]
    return matches[0] if len(matches) == 1 else None


def face_geometry(
    image: np.ndarray,
    landmarks: np.ndarray | None = None,
    eye_distance: float | None = None,
    template: AlignmentTemplate | str | None = None,
) -> FaceGeometry:
    """Work out the landmarks and inter-eye distance a degradation uses (see module docstring)."""
    _check_image(image)
    h, w = image.shape[:2]
    tpl = None
    if landmarks is not None:
        pts = np.asarray(landmarks, dtype=np.float64)
        if pts.shape != (5, 2) or not np.all(np.isfinite(pts)):
            raise InvalidArgumentError(f"landmarks must be a finite (5, 2) array, got shape {pts.shape}")
        source = "landmarks"
        ied = float(np.linalg.norm(pts[1] - pts[0]))
    elif (tpl := _template_for(image, template)) is not None:
        scale = h / tpl.size
        pts = tpl.points * scale
        source = f"template:{tpl.name}"
        ied = tpl.eye_distance * scale
    else:
        pts = _FALLBACK_POINTS * [w, h]
        source = "fractions"
        ied = _FALLBACK_IED_FRACTION * min(h, w)
    if eye_distance is not None:
        if not np.isfinite(eye_distance) or eye_distance <= 0:
            raise InvalidArgumentError(f"eye_distance must be a positive number of pixels, got {eye_distance}")
        ied = float(eye_distance)
    if ied <= 1.0:
        raise InvalidArgumentError(f"inter-eye distance {ied:.2f} px is too small to scale degradations")
    return FaceGeometry(pts, float(ied), source)


def _filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    out = cv2.filter2D(image.astype(np.float32), -1, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)
    return _to_uint8(out)


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    """Anti-aliased line of ``length`` pixels at ``angle`` radians, normalised to sum 1."""
    half = int(np.ceil(length / 2.0)) + 1
    size = 2 * half + 1
    kernel = np.zeros((size, size), dtype=np.float64)
    n = max(2, int(np.ceil(4 * length)) + 1)
    t = np.linspace(-length / 2.0, length / 2.0, n)
    xs = half + t * np.cos(angle)
    ys = half + t * np.sin(angle)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    # Bilinear splatting keeps the kernel continuous in length and angle.
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + dy, x0 + dx), wgt)
    return kernel / kernel.sum()


def _disk_kernel(radius: float) -> np.ndarray:
    """Anti-aliased disk (pillbox) of ``radius`` pixels, normalised to sum 1."""
    half = int(np.ceil(radius)) + 1
    sub = 8  # sub-samples per pixel and axis for the pixel coverage
    coords = (np.arange((2 * half + 1) * sub) + 0.5) / sub - half - 0.5
    xx, yy = np.meshgrid(coords, coords)
    inside = (xx**2 + yy**2) <= radius**2
    cover = inside.reshape(2 * half + 1, sub, 2 * half + 1, sub).mean(axis=(1, 3))
    cover[half, half] = max(cover[half, half], 1e-6)
    return cover / cover.sum()


# ---------------------------------------------------------------------------------------
# the kinds; each: (image, value, rng, geometry, level) -> image


def _gaussian_blur(image, value, rng, geo, level):
    sigma = value * geo.ied
    out = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT_101)
    return _to_uint8(out)


def _motion_blur(image, value, rng, geo, level):
    angle = rng.uniform(0.0, np.pi)
    return _filter(image, _motion_kernel(value * geo.ied, angle))


def _defocus(image, value, rng, geo, level):
    return _filter(image, _disk_kernel(value * geo.ied))


def _noise(image, value, rng, geo, level):
    field = rng.standard_normal(image.shape)
    return _to_uint8(image.astype(np.float64) + value * field)


_LOW_LIGHT_FULL_WELL = (800.0, 400.0, 200.0, 100.0, 50.0)
_READ_NOISE_E = 1.0


def _low_light(image, value, rng, geo, level):
    shot = rng.standard_normal(image.shape)
    read = rng.standard_normal(image.shape)
    full_well = _LOW_LIGHT_FULL_WELL[level - 1]
    electrons = _to_linear(image) * (2.0**value) * full_well
    noisy = electrons + np.sqrt(electrons) * shot + _READ_NOISE_E * read
    return _from_linear(noisy / full_well)


def _jpeg(image, value, rng, geo, level):
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(value)])
    if not ok:
        raise InvalidArgumentError("JPEG encoding failed")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(decoded[:, :, ::-1])


def _resolution(image, value, rng, geo, level):
    factor = value / geo.ied
    if factor >= 1.0:
        log.debug("resolution: face IED %.1f px already <= %.0f px; image unchanged", geo.ied, value)
        return image.copy()
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _exposure(image, value, rng, geo, level):
    lut = _from_linear(_to_linear(np.arange(256, dtype=np.uint8)) * (2.0**value))
    return lut[image]


def _contrast(image, value, rng, geo, level):
    pixels = image.astype(np.float64)
    grey = pixels.mean()
    return _to_uint8(grey + value * (pixels - grey))


_LUMA = np.array([0.299, 0.587, 0.114])


def _colour_cast(image, value, rng, geo, level):
    hue = rng.uniform(0.0, 2.0 * np.pi)
    # Two orthonormal directions orthogonal to grey (1, 1, 1).
    e1 = np.array([2.0, -1.0, -1.0]) / np.sqrt(6.0)
    e2 = np.array([0.0, 1.0, -1.0]) / np.sqrt(2.0)
    direction = np.cos(hue) * e1 + np.sin(hue) * e2
    direction /= np.abs(direction).max()
    gains = 1.0 + value * direction
    gains /= float(_LUMA @ gains)
    return _to_uint8(image.astype(np.float64) * gains)


_OCCLUSION_HEIGHT = (0.35, 0.45, 0.55, 0.7, 0.9)


def _occlusion(image, value, rng, geo, level):
    region = "eyes" if rng.uniform() < 0.5 else "mouth"
    colour = rng.integers(0, 256, size=3)
    return _draw_patch(image, geo, region, value, _OCCLUSION_HEIGHT[level - 1], colour)


def _draw_patch(
    image: np.ndarray, geo: FaceGeometry, region: str, width: float, height: float, colour: np.ndarray
) -> np.ndarray:
    pts = geo.landmarks
    centre = pts[0:2].mean(0) if region == "eyes" else pts[3:5].mean(0)
    axis = pts[1] - pts[0]
    norm = float(np.linalg.norm(axis))
    u = axis / norm if norm > 1e-6 else np.array([1.0, 0.0])
    v = np.array([-u[1], u[0]])
    hw, hh = width * geo.ied / 2.0, height * geo.ied / 2.0
    corners = np.array(
        [centre - hw * u - hh * v, centre + hw * u - hh * v, centre + hw * u + hh * v, centre - hw * u + hh * v]
    )
    # Draw at 1/16 pixel precision so that the patch grows smoothly with the level.
    shift = 4
    poly = np.rint(corners * (1 << shift)).astype(np.int32)
    out = image.copy()
    cv2.fillConvexPoly(out, poly, [int(c) for c in colour], lineType=cv2.LINE_AA, shift=shift)
    return out


def occlude(
    image: np.ndarray,
    level: int,
    *,
    region: str = "eyes",
    colour: tuple[int, int, int] = (0, 0, 0),
    landmarks: np.ndarray | None = None,
    eye_distance: float | None = None,
    template: AlignmentTemplate | str | None = None,
) -> np.ndarray:
    """Occlusion with a chosen region (``"eyes"`` or ``"mouth"``) and patch colour (RGB 0..255).

    Same patch sizes as the ``occlusion`` kind, without randomness.
    """
    image = _check_image(image)
    level = _check_level(level, allow_zero=True)
    if region not in ("eyes", "mouth"):
        raise InvalidArgumentError(f"occlusion region must be 'eyes' or 'mouth', got {region!r}")
    if level == 0:
        return image.copy()
    geo = face_geometry(image, landmarks, eye_distance, template)
    width = KINDS["occlusion"].values[level - 1]
    return _draw_patch(image, geo, region, width, _OCCLUSION_HEIGHT[level - 1], np.asarray(colour))


# --------------------------------------------------------------------------- lighting kinds


def _face_frame(geo: FaceGeometry, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel coordinates in the face's frame, in IED units: (along the eye line, across it,
    distance from the face centre). The centre is midway between the eye and mouth midpoints."""
    pts = geo.landmarks
    centre = 0.5 * (pts[0:2].mean(0) + pts[3:5].mean(0))
    axis = pts[1] - pts[0]
    norm = float(np.linalg.norm(axis))
    u = axis / norm if norm > 1e-6 else np.array([1.0, 0.0])
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    dx, dy = xx - centre[0], yy - centre[1]
    along = (dx * u[0] + dy * u[1]) / geo.ied
    across = (-dx * u[1] + dy * u[0]) / geo.ied
    return along, across, np.hypot(along, across)


def _light_side(rng: np.random.Generator) -> float:
    """+1: the light comes from the image's right (the left half darkens); -1: the other way."""
    return 1.0 if rng.uniform() < 0.5 else -1.0


def _relight(image: np.ndarray, ev_map: np.ndarray) -> np.ndarray:
    """Change exposure per pixel in linear light by ``ev_map`` stops (negative darkens)."""
    return _from_linear(_to_linear(image) * np.exp2(ev_map)[..., None])


def _side_light(image, value, rng, geo, level):
    # Light from one side: a smooth ramp across the face, 0 EV on the lit side, -value EV on
    # the far side, the half-way point on the nose line (width of the ramp: 1 IED).
    side = _light_side(rng)
    along, _, _ = _face_frame(geo, image.shape)
    ramp = 1.0 / (1.0 + np.exp(side * along / 0.25))
    return _relight(image, -value * ramp)


def _hard_shadow(image, value, rng, geo, level):
    # A cast shadow with a sharp edge (penumbra 0.04 IED) through the face centre, tilted by
    # up to 20 degrees: half of the face loses ``value`` EV.
    side = _light_side(rng)
    tilt = np.deg2rad(rng.uniform(-20.0, 20.0))
    along, across, _ = _face_frame(geo, image.shape)
    edge = along * np.cos(tilt) + across * np.sin(tilt)
    shadow = 1.0 / (1.0 + np.exp(side * edge / 0.04))
    return _relight(image, -value * shadow)


def _low_key(image, value, rng, geo, level):
    # Low-key lighting: the scene darkened by value/2 EV and a narrow key light on one cheek,
    # falling off (Gaussian, sigma 0.6 IED) to a further -value/2 EV over the rest of the face.
    side = _light_side(rng)
    along, across, _ = _face_frame(geo, image.shape)
    spot = np.exp(-(((along - 0.45 * side) ** 2 + (across + 0.1) ** 2) / (2 * 0.6**2)))
    return _relight(image, -0.5 * value - 0.5 * value * (1.0 - spot))


# --------------------------------------------------------------------------- real-world kinds


def _print_aging(image, value, rng, geo, level):
    # An old print, scanned: faded towards a warm paper tone, softened, with film grain.
    # ``value`` is the fading (share of the way to the paper tone); grain sigma and blur grow with it.
    grain = cv2.GaussianBlur(rng.standard_normal(image.shape[:2]).astype(np.float32), (0, 0), sigmaX=0.6 + 0.01 * geo.ied)
    grain /= max(float(grain.std()), 1e-6)
    paper = np.array([222.0, 205.0, 170.0])
    grey = image.astype(np.float64) @ _LUMA
    sepia = grey[..., None] * (paper / 255.0)
    faded = (1.0 - value) * (0.5 * image + 0.5 * sepia) + value * paper
    soft = cv2.GaussianBlur(faded.astype(np.float32), (0, 0), sigmaX=max(0.3, 0.02 * value * geo.ied))
    return _to_uint8(soft.astype(np.float64) + (25.0 * value) * grain[..., None])


def _scan_blur(image, value, rng, geo, level):
    # Scanner or shake blur: anisotropic Gaussian, 3 times longer along a random direction.
    angle = rng.uniform(0.0, 180.0)
    sigma = value * geo.ied
    size = int(2 * np.ceil(3 * 3 * sigma) + 1)
    ax = np.arange(size) - size // 2
    xx, yy = np.meshgrid(ax, ax)
    t = np.deg2rad(angle)
    a = xx * np.cos(t) + yy * np.sin(t)
    b = -xx * np.sin(t) + yy * np.cos(t)
    kernel = np.exp(-0.5 * ((a / (3 * sigma)) ** 2 + (b / sigma) ** 2))
    return _filter(image, kernel / kernel.sum())


# Each round of a re-sharing chain: (JPEG quality, resize factor before encoding).
_RECOMPRESS_CHAIN = ((55, 0.85), (45, 0.8), (38, 0.9), (30, 0.75), (22, 0.85))


def _recompress(image, value, rng, geo, level):
    # A photo shared again and again: ``value`` rounds of resize + JPEG, each round stronger,
    # back to the original size at the end (level L applies the first L rounds).
    h, w = image.shape[:2]
    out = image
    for quality, factor in _RECOMPRESS_CHAIN[: int(value)]:
        ch, cw = out.shape[:2]
        out = cv2.resize(out, (max(8, round(cw * factor)), max(8, round(ch * factor))), interpolation=cv2.INTER_AREA)
        out = _jpeg(out, quality, rng, geo, level)
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)


def _sensor_noise(image, value, rng, geo, level):
    # A dim scene brightened by the camera: -value EV of light, shot and read noise at a small
    # full well, gain back up, then the camera's denoising (a median filter) smears the detail.
    shot = rng.standard_normal(image.shape)
    read = rng.standard_normal(image.shape)
    full_well = 200.0
    electrons = _to_linear(image) * (2.0 ** (-value)) * full_well
    noisy = (electrons + np.sqrt(electrons) * shot + 2.0 * read) / full_well * (2.0**value)
    out = _from_linear(noisy)
    return cv2.medianBlur(out, 3)


def _upscaled_small(image, value, rng, geo, level):
    # A small face enlarged by a camera or an app: area down-sampling to ``value`` px between
    # the eyes, bicubic up-sampling and an unsharp mask (halos, no detail).
    factor = value / geo.ied
    if factor >= 1.0:
        return image.copy()
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    soft = cv2.GaussianBlur(big, (0, 0), sigmaX=max(0.5, 0.5 / factor))
    return _to_uint8(big + 0.8 * (big - soft))


# ---------------------------------------------------------------------------------------
# registry

KINDS: Registry[Degradation] = Registry("degradation kind", {
    d.name: d
    for d in (
        Degradation("blur", "Gaussian blur", "sigma / IED", (0.02, 0.04, 0.06, 0.09, 0.13), True, _gaussian_blur),
        Degradation(
            "motion_blur",
            "linear motion blur, direction from the seed",
            "length / IED",
            (0.08, 0.15, 0.25, 0.35, 0.5),
            True,
            _motion_blur,
        ),
        Degradation("defocus", "defocus (disk) blur", "radius / IED", (0.03, 0.06, 0.09, 0.13, 0.18), True, _defocus),
        Degradation("noise", "additive Gaussian noise", "sigma, 8-bit levels", (5, 10, 17, 26, 38), False, _noise),
        Degradation(
            "low_light", "darkening with shot and read noise", "EV", (-1, -1.5, -2, -2.5, -3), False, _low_light
        ),
        Degradation("jpeg", "JPEG compression", "JPEG quality", (40, 25, 15, 10, 5), False, _jpeg),
        Degradation(
            "resolution",
            "down-sampling then up-sampling",
            "IED after down-sampling, px",
            (32, 22, 16, 11, 8),
            False,
            _resolution,
        ),
        Degradation(
            "underexposure", "exposure reduced in linear light", "EV", (-0.75, -1.5, -2.25, -3, -3.75), False, _exposure
        ),
        Degradation(
            "overexposure", "exposure raised in linear light, clipped", "EV", (0.5, 1, 1.5, 2, 2.5), False, _exposure
        ),
        Degradation(
            "contrast",
            "contrast reduced towards mean grey",
            "contrast kept",
            (0.7, 0.5, 0.35, 0.22, 0.12),
            False,
            _contrast,
        ),
        Degradation(
            "colour_cast",
            "colour cast of random hue",
            "gain amplitude",
            (0.1, 0.2, 0.3, 0.45, 0.6),
            False,
            _colour_cast,
        ),
        Degradation(
            "occlusion",
            "flat patch over the eyes or the mouth",
            "patch width / IED",
            (0.6, 1.0, 1.5, 2.0, 2.6),
            True,
            _occlusion,
        ),
        Degradation("side_light", "light from one side: a ramp across the face", "EV lost on the far side",
                    (1.0, 1.75, 2.5, 3.25, 4.0), False, _side_light),
        Degradation("hard_shadow", "a sharp cast shadow over half the face", "EV lost in the shadow",
                    (1.0, 1.75, 2.5, 3.25, 4.0), False, _hard_shadow),
        Degradation("low_key", "dark scene, narrow key light on one cheek", "EV lost away from the key light",
                    (1.5, 2.25, 3.0, 3.75, 4.5), False, _low_key),
        Degradation("print_aging", "old print: faded to paper tone, softened, film grain", "fading",
                    (0.15, 0.25, 0.35, 0.45, 0.55), False, _print_aging),
        Degradation("scan_blur", "anisotropic (scanner or shake) blur", "short-axis sigma / IED",
                    (0.008, 0.015, 0.025, 0.035, 0.05), True, _scan_blur),
        Degradation("recompress", "re-shared photo: rounds of resize + JPEG", "rounds",
                    (1, 2, 3, 4, 5), False, _recompress),
        Degradation("sensor_noise", "dim scene brightened by the camera, denoised", "EV of missing light",
                    (1.0, 1.75, 2.5, 3.25, 4.0), False, _sensor_noise),
        Degradation("upscaled_small", "small face enlarged bicubically and sharpened", "IED before enlarging, px",
                    (24, 18, 14, 10, 7), False, _upscaled_small),
    )
})

#: The first twelve kinds: the ones the shipped faceiqa-face v1 was trained on and the EDC's
#: ``mix`` plan draws from (kept fixed so that those runs reproduce bit for bit).
CLASSIC_KINDS: tuple[str, ...] = (
    "blur", "motion_blur", "defocus", "noise", "low_light", "jpeg", "resolution", "underexposure",
    "overexposure", "contrast", "colour_cast", "occlusion",
)
#: Directional light and shadow.
LIGHTING_KINDS: tuple[str, ...] = ("side_light", "hard_shadow", "low_key")
#: Degradations that look like real low-quality photos (old prints, scans, re-shared files, phones at night).
REAL_WORLD_KINDS: tuple[str, ...] = ("print_aging", "scan_blur", "recompress", "sensor_noise", "upscaled_small")

ALIASES: dict[str, str] = {
    "gaussian_blur": "blur",
    "motion": "motion_blur",
    "disk_blur": "defocus",
    "gaussian_noise": "noise",
    "lowlight": "low_light",
    "compression": "jpeg",
    "downsample": "resolution",
    "color_cast": "colour_cast",
    "colour": "colour_cast",
    "color": "colour_cast",
}


def list_kinds() -> list[str]:
    """Names of the registered degradation kinds, in registry order."""
    return list(KINDS)


def get_kind(kind: str) -> Degradation:
    """Look up a kind by name or alias (case-insensitive, ``-`` equals ``_``)."""
    if not isinstance(kind, str):
        raise InvalidArgumentError(f"degradation kind must be a string, got {type(kind).__name__}")
    name = kind.strip().lower().replace("-", "_")
    name = ALIASES.get(name, name)
    if name not in KINDS:
        raise KINDS.unknown(kind)
    return KINDS[name]


def _check_level(level: int, allow_zero: bool) -> int:
    low = 0 if allow_zero else 1
    check_int(level, "severity level", low, 5)
    return int(level)


def _check_seed(seed: int) -> int:
    check_int(seed, "seed", 0)
    return int(seed)


def _apply(image: np.ndarray, kind: str, level: int, rng: np.random.Generator, geo: FaceGeometry) -> np.ndarray:
    deg = get_kind(kind)
    level = _check_level(level, allow_zero=True)
    if level == 0:
        return image.copy()
    return deg.func(image, deg.values[level - 1], rng, geo, level)


def degrade(
    image: np.ndarray,
    kind: str,
    level: int,
    *,
    seed: int = 0,
    landmarks: np.ndarray | None = None,
    eye_distance: float | None = None,
    template: AlignmentTemplate | str | None = None,
) -> np.ndarray:
    """Apply one degradation.

    Args:
        image: (H, W, 3) uint8 RGB, at least 8 x 8.
        kind: a name from :data:`KINDS` (or an alias from :data:`ALIASES`).
        level: 0 (no change) or severity 1 (mild) .. 5 (severe).
        seed: non-negative integer; same image, kind, level and seed give identical bytes.
        landmarks: optional (5, 2) MTCNN-order landmarks in image pixels.
        eye_distance: optional inter-eye distance in pixels (overrides the estimate).
        template: optional alignment template (or name) the image is a crop of.

    Returns:
        A new (H, W, 3) uint8 RGB array.
    """
    image = _check_image(image)
    steps = [(kind, level)]
    return compose(image, steps, seed=seed, landmarks=landmarks, eye_distance=eye_distance, template=template)


def compose(
    image: np.ndarray,
    steps: Sequence[tuple[str, int]] | str,
    *,
    seed: int = 0,
    landmarks: np.ndarray | None = None,
    eye_distance: float | None = None,
    template: AlignmentTemplate | str | None = None,
) -> np.ndarray:
    """Apply several degradations in order.

    Args:
        image: (H, W, 3) uint8 RGB.
        steps: ``[(kind, level), ...]`` or a spec string ``"kind:level,kind:level"``.
        seed, landmarks, eye_distance, template: as in :func:`degrade`; the face geometry is
            worked out once, on the input image.

    Returns:
        A new (H, W, 3) uint8 RGB array (a copy when ``steps`` is empty).
    """
    image = _check_image(image)
    seed = _check_seed(seed)
    if isinstance(steps, str):
        steps = parse_spec(steps)
    checked = []
    for step in steps:
        if not isinstance(step, (tuple, list)) or len(step) != 2:
            raise InvalidArgumentError(f"each step must be a (kind, level) pair, got {step!r}")
        checked.append((get_kind(step[0]).name, _check_level(step[1], allow_zero=True)))
    geo = face_geometry(image, landmarks, eye_distance, template)
    out = image.copy()
    for i, (kind, level) in enumerate(checked):
        out = _apply(out, kind, level, np.random.default_rng([seed, i]), geo)
    return out


def parse_spec(spec: str) -> list[tuple[str, int]]:
    """Parse ``"kind:level,kind:level"`` into ``[(kind, level), ...]``.

    Kinds are matched case-insensitively (aliases allowed, ``-`` equals ``_``); levels are
    integers 1..5. Whitespace around items is ignored.

    Raises:
        InvalidArgumentError: empty spec, unknown kind, missing or bad level (one-line message).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidArgumentError("empty degradation spec (expected 'kind:level,kind:level')")
    steps = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            raise InvalidArgumentError(f"empty item in degradation spec {spec!r}")
        kind, sep, level_text = item.partition(":")
        if not sep:
            raise InvalidArgumentError(f"degradation {item!r} has no level (expected 'kind:level', level 1..5)")
        deg = get_kind(kind)
        try:
            level = int(level_text.strip())
        except ValueError:
            raise InvalidArgumentError(
                f"bad severity level {level_text.strip()!r} for {deg.name} (expected 1..5)"
            ) from None
        steps.append((deg.name, _check_level(level, allow_zero=False)))
    return steps


def format_spec(steps: Sequence[tuple[str, int]]) -> str:
    """The spec string for ``steps`` (inverse of :func:`parse_spec`)."""
    return ",".join(f"{get_kind(k).name}:{_check_level(lv, allow_zero=False)}" for k, lv in steps)


def seed_for(key: str, seed: int = 0) -> int:
    """A stable per-item seed from a text key (e.g. an image's relative path) and a base seed.

    Uses SHA-256, so it is the same on every machine and Python run (unlike ``hash``).
    Returns an integer in [0, 2**63).
    """
    seed = _check_seed(seed)
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
