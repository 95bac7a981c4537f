"""Per-face values a model may take besides its crop (the manifest's ``input.extra``).

Each is a function of the face's inter-eye distance in original-image pixels and the
alignment template the crop was cut with.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from faceiqa._util import Registry
from faceiqa.face.alignment import AlignmentTemplate


def log2_resolution(eye_distance: float, template: AlignmentTemplate) -> float:
    """log2 of how much of the crop's resolution real pixels back, in [-4, 0].

    The face's inter-eye distance in original-image pixels over the template's: 0 when the
    face is at least as large as the crop (it was shrunk or kept), -1 when it was enlarged
    twice, ... clipped at -4 (16 times).
    """
    ratio = eye_distance / template.eye_distance if eye_distance > 0 else 0.0
    return math.log2(min(max(ratio, 1.0 / 16.0), 1.0))


#: Per-face values a model may take besides the crop, by the name its registry entry uses
#: (``input.extra``); each is a function of the inter-eye distance in original pixels and
#: the alignment template.
FACE_FEATURES: Registry[Callable[[float, AlignmentTemplate], float]] = Registry(
    "per-face model input", {"log2_resolution": log2_resolution}
)
