"""Every model's sidecar, typed by its kind: the one place that reads a sidecar's "kind".

A model file `<stem>.h5` / `<stem>.keras` has a JSON sidecar `<stem>.json` saying what it is.
Three kinds, each a declared schema (msgspec) keyed on an exact "kind" field:

- "classifier": `core.card_schema.ClassifierSidecar`, read into `ModelMetadata`;
- "conditional-gan": a class-conditional GAN's generator (`ConditionalGanSidecar`);
- "vessel-to-fundus": a pix2pix generator that draws a photograph from a vessel mask
  (`VesselToFundusSidecar`).

Sidecars written before the kind was exact are upgraded in one function, `upgrade`: a sidecar
with no kind is a classifier's (training wrote none), and the generators' descriptive kinds
("conditional generator (EMA weights)", "vessel-to-fundus pix2pix") name their kind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, TypeVar

from msgspec import Meta, Struct

from retina_desktop.core.card_schema import ClassifierSidecar, validated

CLASSIFIER = "classifier"
CONDITIONAL = "conditional-gan"
VESSEL_TO_FUNDUS = "vessel-to-fundus"
# A sidecar is a few KB; this bounds what is read from a file that only claims to be one.
MAX_SIDECAR_BYTES = 16 << 20


class ConditionalGanSidecar(Struct, tag_field="kind", tag=CONDITIONAL):
    """A class-conditional generator (`python -m training gan`, `gan-combine`)."""

    classes: Annotated[list[str], Meta(min_length=1)]
    size: Annotated[int, Meta(ge=8)]
    latent_dim: Annotated[int, Meta(gt=0)]
    modality: str = "fundus"
    # Width / height at which its square images are meant to be seen: 1 for fundus photographs,
    # about 2.5 for OCT B-scans that were stretched into the square.
    display_aspect: Annotated[float, Meta(ge=0.1, le=10)] = 1.0
    description: str = ""


class VesselToFundusSidecar(Struct, tag_field="kind", tag=VESSEL_TO_FUNDUS):
    """A vessel-to-fundus generator (`python -m training pix2pix`)."""

    size: Annotated[int, Meta(ge=8)]
    styles: Annotated[list[str], Meta(min_length=1)]
    description: str = ""


Sidecar = ClassifierSidecar | ConditionalGanSidecar | VesselToFundusSidecar
GENERATORS = (ConditionalGanSidecar, VesselToFundusSidecar)
T = TypeVar("T")


def sidecar_path_for(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".json")


def upgrade(data: Any) -> Any:
    """A parsed sidecar with its exact kind: older sidecars' kinds (none, or a description)
    become "classifier", "conditional-gan" or "vessel-to-fundus"; the description is kept."""
    if not isinstance(data, dict):
        return data
    kind = data.get("kind")
    if kind is None:
        return {**data, "kind": CLASSIFIER}
    if not isinstance(kind, str) or kind in (CLASSIFIER, CONDITIONAL, VESSEL_TO_FUNDUS):
        return data
    if "pix2pix" in kind or kind.startswith(VESSEL_TO_FUNDUS):
        return {**data, "kind": VESSEL_TO_FUNDUS, "description": kind}
    if kind.startswith("conditional"):
        return {**data, "kind": CONDITIONAL, "description": kind}
    return data


def read_json(path: Path) -> Any:
    """A sidecar file's JSON (bounded in size); OSError / ValueError as `json` raises them."""
    with open(path, "rb") as handle:
        raw = handle.read(MAX_SIDECAR_BYTES + 1)
    if len(raw) > MAX_SIDECAR_BYTES:
        raise ValueError(f"it is larger than {MAX_SIDECAR_BYTES // 2**20} MB")
    return json.loads(raw.decode("utf-8"))


SCHEMAS: dict[str, type[Sidecar]] = {
    CLASSIFIER: ClassifierSidecar,
    CONDITIONAL: ConditionalGanSidecar,
    VESSEL_TO_FUNDUS: VesselToFundusSidecar,
}


class WrongKind(ValueError):
    """A valid sidecar of another kind than the caller can use (a generator's, opened as a classifier)."""

    def __init__(self, kind: str, expected: str) -> None:
        super().__init__(f"it describes a {kind}, not a {expected}")
        self.kind = kind


def schema_for(data: Any, expected: type | None = None) -> type[Sidecar]:
    """The schema of a parsed sidecar's kind (after `upgrade`); `WrongKind` when it is not the
    `expected` one, ValueError with one plain line when the kind is unknown or it is no object."""
    data = upgrade(data)
    if not isinstance(data, dict):
        validated(data, ClassifierSidecar)  # raises: "expected a JSON object, found ..."
    kind = data.get("kind")
    schema = SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None:
        raise ValueError(f'"kind" must be one of {", ".join(SCHEMAS)}, not {json.dumps(kind)[:40]}')
    if expected is not None and schema is not expected:
        raise WrongKind(kind_name(schema), kind_name(expected))
    return schema


def parse(data: Any, expected: type[T] | None = None) -> T | Sidecar:
    """A parsed sidecar checked against its kind's schema (`expected`: the one kind the caller
    can use, else `WrongKind`); ValueError with one plain line when it breaks the schema."""
    return validated(upgrade(data), schema_for(data, expected))


def kind_name(schema: type) -> str:
    """A schema's kind: "classifier", "conditional-gan" or "vessel-to-fundus"."""
    return next(kind for kind, declared in SCHEMAS.items() if declared is schema)


def kind_of(sidecar: Sidecar) -> str:
    """A parsed sidecar's kind."""
    return kind_name(type(sidecar))


def read_kind(model_path: str | Path) -> str | None:
    """The kind of model at `model_path` from its sidecar; None when it has no readable one."""
    try:
        return kind_name(schema_for(read_json(sidecar_path_for(model_path))))  # the kind only: not validated
    except (OSError, ValueError):
        return None
