"""`gan-combine`: one generator file whose classes are drawn by the generators chosen for them."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from retina_desktop.inference.generator_runtime import Generator, latents, one_hot, read_generator_info
from tests.test_gan import TINY, _saved_generator
from training.cli import main
from training.gan.generator_file import load_generator


@pytest.fixture()
def base_and_part(tmp_path):
    """A two-class (a, b) base generator and a one-class generator of b with other weights."""
    base, base_path = _saved_generator(tmp_path / "base", TINY, seed=1)
    part, part_path = _saved_generator(tmp_path / "b-own", TINY, classes=("b",), seed=2)
    return base, base_path, part, part_path


def _draw(generator, labels):
    z = latents(4, range(len(labels)), TINY.latent_dim)
    return np.asarray(generator([z, np.asarray(labels, np.int32)], training=False))


def test_each_class_is_drawn_by_its_own_part_and_the_file_reloads_safely(tmp_path, base_and_part, capsys):
    base, base_path, part, part_path = base_and_part
    out = tmp_path / "combined" / "generator.keras"
    assert main(["gan-combine", "--generator", str(base_path), "--class", f"b={part_path}", "--out", str(out)]) == 0
    assert f"b: drawn by {part_path}" in capsys.readouterr().out
    combined, sidecar = load_generator(out)  # safe_mode: no Lambda layers, no custom objects
    assert sidecar["classes"] == ["a", "b"] and sidecar["kind"].startswith("conditional")
    assert [p["classes"] for p in sidecar["provenance"]["parts"]] == [["a"], ["b"]]
    assert np.allclose(_draw(combined, [0, 0]), _draw(base, [0, 0]), atol=1e-5)
    assert np.allclose(_draw(combined, [1, 1]), _draw(part, [0, 0]), atol=1e-5)
    assert not np.allclose(_draw(combined, [1, 1]), _draw(base, [1, 1]), atol=1e-3)
    mixed = _draw(combined, [0, 1])  # a batch of both classes: each image from its own part
    assert np.allclose(mixed[0], _draw(base, [0, 0])[0], atol=1e-5)
    assert np.allclose(mixed[1], _draw(part, [0, 0])[1], atol=1e-5)


def test_the_combined_generator_compiles_for_the_app_with_its_routes(tmp_path, base_and_part):
    from retina_desktop.inference.generator_export import compile_generator_beside

    base, base_path, part, part_path = base_and_part
    out = tmp_path / "combined.keras"
    assert main(["gan-combine", "--generator", str(base_path), "--class", f"b={part_path}", "--out", str(out)]) == 0
    compiled = Generator(read_generator_info(out), compile_generator_beside(out))  # checked against Keras
    z = latents(4, range(2), TINY.latent_dim)
    got = compiled.raw_generate(z, one_hot(np.array([0, 1]), 2))
    assert np.allclose(got[1], _draw(part, [0, 0])[1], atol=1e-4)
    # A batch of one class (the Augment tab's grid) runs only that class's part; the other part,
    # given no rows, must still compile and run (LiteRT cannot scatter an empty batch).
    for label, drawer in ((1, part), (0, base)):
        only = compiled.raw_generate(z, one_hot(np.array([label, label]), 2))
        assert np.allclose(only, _draw(drawer, [0, 0]), atol=1e-4)  # each part draws its class as its row 0


def test_combining_refuses_what_cannot_be_joined_in_one_line(tmp_path, base_and_part, capsys):
    _, base_path, _, part_path = base_and_part
    _, bigger = _saved_generator(tmp_path / "big", dataclasses.replace(TINY, size=32), classes=("b",))
    out = str(tmp_path / "out.keras")
    cases = [
        (["--class", f"c={part_path}"], "the base generator"),  # the base has no class c
        (["--class", f"a={part_path}"], "that generator has no class 'a'"),
        (["--class", f"b={bigger}"], "its size is 32"),
        (["--class", "b"], "expected CLASS=GENERATOR.keras"),
        (["--class", f"b={base_path}"], "nothing to combine"),
        (["--class", f"b={tmp_path / 'nowhere.keras'}"], "not found"),
    ]
    for extra, message in cases:
        assert main(["gan-combine", "--generator", str(base_path), "--out", out] + extra) == 1, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (extra, err)
    assert not (tmp_path / "out.keras").exists()
    assert json.loads(base_path.with_suffix(".json").read_text())["classes"] == ["a", "b"]


def test_a_base_whose_every_class_is_drawn_elsewhere_is_left_out(tmp_path, base_and_part):
    _, base_path, part_b, part_b_path = base_and_part
    part_a, part_a_path = _saved_generator(tmp_path / "a-own", TINY, classes=("a",), seed=3)
    out = tmp_path / "all-own.keras"
    assert main(["gan-combine", "--generator", str(base_path), "--class", f"a={part_a_path}",
                 "--class", f"b={part_b_path}", "--out", str(out)]) == 0
    combined, sidecar = load_generator(out)
    assert [p["generator"] for p in sidecar["provenance"]["parts"]] == [str(part_a_path), str(part_b_path)]
    assert sum(type(layer).__name__ == "Functional" for layer in combined.layers) == 2  # no third, unused part
    assert np.allclose(_draw(combined, [0, 1]), np.stack([_draw(part_a, [0, 0])[0], _draw(part_b, [0, 0])[1]]),
                       atol=1e-5)


def test_a_combined_generator_cannot_start_a_run_and_says_which_parts_can(tmp_path, base_and_part):
    from retina_desktop.core.errors import UserError
    from training.gan.warm_start import check_source_generator

    _, base_path, _, part_path = base_and_part
    out = tmp_path / "combined.keras"
    assert main(["gan-combine", "--generator", str(base_path), "--class", f"b={part_path}", "--out", str(out)]) == 0
    with pytest.raises(UserError, match=f"joins several generators .*{part_path.name}"):
        check_source_generator(out, ("a", "b"), TINY.size, TINY.latent_dim)
