"""Make the degraded example photos from examples/photos/Tom_Cruise_avp_2014_4.jpg.

    python examples/make_degraded.py

Writes examples/photos/degraded/*.jpg (never overwriting) with faceiqa's own seeded
degradation library, so the quick start has faces that a quality filter should drop.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from faceiqa.degrade import compose
from faceiqa.detection import FaceDetector
from faceiqa.io import read_image

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "photos" / "Tom_Cruise_avp_2014_4.jpg"
VERSIONS = {
    "blurred.jpg": "defocus:5",
    "dark_noisy.jpg": "low_light:5",
    "blocky.jpg": "jpeg:5",
    "low_resolution.jpg": "resolution:5",
    "occluded.jpg": "occlusion:5",
}


def main() -> None:
    image = read_image(SOURCE)
    landmarks = FaceDetector(device="cpu").detect(image)[0].landmarks  # place blur sizes and the occluder
    out_dir = HERE / "photos" / "degraded"
    out_dir.mkdir(exist_ok=True)
    for name, spec in VERSIONS.items():
        target = out_dir / name
        if target.exists():
            print(f"kept {target.relative_to(HERE)} (exists)")
            continue
        Image.fromarray(compose(image, spec, seed=1, landmarks=landmarks)).save(target, quality=95)
        print(f"wrote {target.relative_to(HERE)} ({spec})")


if __name__ == "__main__":
    main()
