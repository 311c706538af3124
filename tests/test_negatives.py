"""Non-retinal images for the modality check: sources never on both sides, real pixels."""

from __future__ import annotations

import numpy as np

from training.classifier.negatives import GENERATORS, _side, negatives, packaged_files, random_crops


def test_each_source_file_is_on_one_side_only():
    files = packaged_files()
    assert files, "installed packages ship sample images"
    sides = {_side(f.name) for f in files}
    assert sides == {"train", "val", "test"}
    assert all(_side(f.name) == _side(f.name) for f in files)  # stable, not salted
    assert not any(f.name == "retina.jpg" for f in files)  # a fundus photo is never a negative


def test_generators_make_rgb_images_that_differ_by_seed():
    for name, make in GENERATORS.items():
        a = make(np.random.default_rng(1))
        b = make(np.random.default_rng(2))
        assert a.mode == "RGB", name
        assert not np.array_equal(np.asarray(a), np.asarray(b)), name


def test_test_side_negatives_and_crops():
    items = list(negatives("test", per_generator=1))
    assert len({item.name for item in items}) == len(items)
    crops = random_crops(items[0].image, 3, np.random.default_rng(0))
    assert all(c.size[0] == c.size[1] for c in crops)
