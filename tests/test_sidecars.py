"""Sidecars typed by kind: old kinds upgraded in one place, each kind checked by its schema."""

from __future__ import annotations

import json

import pytest

from retina_desktop.core.card_schema import ClassifierSidecar
from retina_desktop.inference import sidecars


@pytest.mark.parametrize("written, kind", [
    ({"classes": ["a", "b"]}, "classifier"),  # classifiers' sidecars carried no kind
    ({"kind": "conditional generator (EMA weights)", "classes": ["a"], "size": 16, "latent_dim": 8}, "conditional-gan"),
    ({"kind": "conditional generator (EMA weights), combined: each class drawn by its own part", "classes": ["a"],
      "size": 16, "latent_dim": 8}, "conditional-gan"),
    ({"kind": "vessel-to-fundus pix2pix", "size": 32, "styles": ["drive"]}, "vessel-to-fundus"),
    ({"kind": "vessel-to-fundus", "size": 32, "styles": ["drive"]}, "vessel-to-fundus"),
])
def test_old_and_new_sidecars_parse_to_their_exact_kind(written, kind):
    parsed = sidecars.parse(written)
    assert sidecars.kind_of(parsed) == kind
    if "kind" in written and written["kind"] != kind:
        assert parsed.description == written["kind"]  # the old description is kept


def test_a_sidecar_is_checked_by_its_kinds_schema_and_the_kind_a_caller_needs():
    with pytest.raises(ValueError, match='"latent_dim" is missing'):
        sidecars.parse({"kind": "conditional-gan", "classes": ["a"], "size": 16})
    with pytest.raises(ValueError, match='"kind" must be one of classifier, conditional-gan, vessel-to-fundus'):
        sidecars.parse({"kind": "diffusion"})
    with pytest.raises(sidecars.WrongKind, match="describes a vessel-to-fundus, not a classifier"):
        sidecars.parse({"kind": "vessel-to-fundus", "size": 32, "styles": ["drive"]}, ClassifierSidecar)
    with pytest.raises(ValueError, match="expected a JSON object, found a list"):
        sidecars.parse([1, 2])


def test_read_kind_names_the_kind_beside_a_model_file(tmp_path):
    model = tmp_path / "generator.keras"
    assert sidecars.read_kind(model) is None  # no sidecar
    model.with_suffix(".json").write_text(json.dumps({"kind": "vessel-to-fundus", "size": 32, "styles": ["a"]}))
    assert sidecars.read_kind(model) == "vessel-to-fundus"


@pytest.mark.parametrize("edit, message", [
    ({"temperature": float("inf")}, '"temperature" must be a finite number'),
    ({"familiarity": {"threshold": float("inf")}}, '"familiarity.threshold" must be a finite number'),
    ({"checks": {"thresholds": {"min_brightness": float("nan")}}},
     '"checks.thresholds.min_brightness" must be a finite'),
])
def test_json_infinities_and_nans_are_refused(edit, message):
    """Python's json reads NaN and Infinity: a temperature of Infinity would flatten every answer
    and a NaN check limit would switch its check off."""
    from retina_desktop.core.model_card import ModelMetadata

    with pytest.raises(ValueError, match=message):
        ModelMetadata.from_dict({"classes": ["a", "b"], **edit})


def test_a_shipped_generator_whose_compiled_copy_changed_is_refused(tiny_generator, tmp_path, monkeypatch):
    import shutil
    import sys

    from retina_desktop.core.errors import UserError
    from retina_desktop.inference.generator_export import compile_generator_beside
    from retina_desktop.inference.open_model import open_generator

    folder = tmp_path / "shipped"
    folder.mkdir()
    for suffix in (".keras", ".json"):
        shutil.copy(tiny_generator.with_suffix(suffix), folder / f"generator{suffix}")
    compiled = compile_generator_beside(folder / "generator.keras")
    (folder / "generator.keras").unlink()  # the packaged app ships the compiled copy alone
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert open_generator(folder / "generator.keras").compiled == compiled
    compiled.write_bytes(compiled.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(UserError, match="cannot be opened: .*bytes changed after compiling"):
        open_generator(folder / "generator.keras")
