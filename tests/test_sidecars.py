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
