"""The field-of-view framing of real photographs, pinned: a faster image path frames them the same.

`tests/data/framing_reference.json` holds, for 20 real photographs (three test photographs of
each fundus4 source, two of each class of messidor2 and of fundus-external) and three camera
variants of each (training/classifier/camera_variants.py), the field of view found and the
SHA-256 of the fitted 224-px model input. The tolerance is none: circles to 1e-6 px, pixels to
the bit. The file was first written by commit 5d7db9f (FOV_VERSION 4), before the image path was
sped up, and the faster path matched all 80 framings; version 5 (straight cuts inside the
picture are not rim) changed 7, all of them wide-frame variants whose clipped disc sits inside a
larger frame. A deliberate framing change bumps FOV_VERSION and rewrites the file:

    python -m tests.test_framing_reference --write
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from retina_desktop.core.model_card import InputSpec
from retina_desktop.imaging.decode import load_image
from retina_desktop.imaging.fov import FOV_VERSION, find_field_of_view
from retina_desktop.imaging.preprocessing import fit_image
from tests.conftest import SHARED_DATA
from training.classifier.camera_variants import VARIANTS

REFERENCE = Path(__file__).with_name("data") / "framing_reference.json"
REFERENCE_FOV_VERSION = 5
SPEC = InputSpec(224, 224, "fov", "none")
VARIANT_KINDS = ("", "clipped-3:2", "wide-frame", "large")


def framing(path: Path, variant: str) -> dict:
    """The circle found in (a variant of) the photograph and the digest of its fitted input."""
    image = load_image(path).rgb
    picture = VARIANTS[variant](image) if variant else image
    circle = find_field_of_view(picture)
    fitted = fit_image(picture, SPEC)
    return {
        "circle": None if circle is None else [circle.cx, circle.cy, circle.r, circle.radius_y],
        "sha256": hashlib.sha256(fitted.tobytes()).hexdigest(),
    }


def _reference() -> list[dict]:
    return json.loads(REFERENCE.read_text())


def test_the_reference_is_for_this_framing_version():
    # A framing change without a new reference (or a new reference without a version bump)
    # would leave training's array cache or this test describing the wrong framing.
    assert FOV_VERSION == REFERENCE_FOV_VERSION


@pytest.mark.parametrize("kind", VARIANT_KINDS, ids=lambda k: k or "as-taken")
def test_real_photographs_are_framed_as_before(shared_data, kind):
    entries = [e for e in _reference() if e["variant"] == kind]
    assert len(entries) == 20
    for entry in entries:
        now = framing(shared_data / entry["file"], kind)
        assert (now["circle"] is None) == (entry["circle"] is None), entry["file"]
        if entry["circle"] is not None:
            np.testing.assert_allclose(now["circle"], entry["circle"], rtol=0, atol=1e-6, err_msg=entry["file"])
        assert now["sha256"] == entry["sha256"], f'{entry["file"]} {kind}: fitted pixels changed'


def _write() -> None:
    import csv

    rows = list(csv.DictReader((SHARED_DATA / "fundus4" / "splits.csv").open()))
    files = []
    for source in sorted({r["source"] for r in rows}):
        files += ["fundus4/" + r["file"] for r in rows if r["split"] == "test" and r["source"] == source][:3]
    for folder in ("messidor2", "fundus-external"):
        for label in ("diabetic_retinopathy", "normal"):
            files += [f"{folder}/{label}/{p.name}" for p in sorted((SHARED_DATA / folder / label).iterdir())[:2]]
    entries = [{"file": f, "variant": v, **framing(SHARED_DATA / f, v)} for f in files for v in VARIANT_KINDS]
    REFERENCE.write_text(json.dumps(entries, indent=1) + "\n")
    print(f"{REFERENCE}: {len(entries)} framings")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit(__doc__)
    _write()
