"""One conditional generator made of several, each class drawn by the generator chosen for it
(`python -m training gan-combine`).

A generator shares its weights across its classes, and fundus4's classes pull against each
other: in the fifth attempt (docs/gan-fundus.md) cataract's images improved over the epochs
in which the other three classes' worsened. A scarce class can instead be fine-tuned on its own
(`gan --labels glaucoma --init-generator ...`), where no other class's progress undoes it. This
module joins such generators back into one file with the ordinary inputs and output, so
`synthesize`, `gan-eval`, `export` and the Augment tab run it unchanged:

    image = sum over parts k of route_k(label) * part_k(latent, label)

Part k is its generator rebuilt for all the combined classes (a one-class generator's per-class
tables copied into every row), and route_k is a fixed 0/1 Embedding: 1 for the classes part k
draws. Every lookup by label is then an Embedding, so the compiled copy's class blending
(`generator_export`) blends the routes as it blends the tables; for one class it is exact.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retina_desktop.core.errors import UserError
from retina_desktop.core.quiet import import_keras
from retina_desktop.inference.sidecars import CONDITIONAL
from training.gan.config import GanCombineOptions, GanConfig
from training.gan.generator_file import load_generator
from training.gan.trainer import build_generator
from training.gan.warm_start import copy_generator_weights
from training.provenance import this_run

logger = logging.getLogger(__name__)

# Sidecar fields the parts must agree on: a combined generator is one geometry and one framing.
MUST_AGREE = ("size", "latent_dim", "modality", "fit", "display_aspect")


def parse_class_generators(pairs: Sequence[str]) -> dict[str, Path]:
    """["glaucoma=runs/x.keras", ...] -> {"glaucoma": Path("runs/x.keras")}; one line on a bad pair."""
    chosen = {}
    for pair in pairs:
        label, sep, path = pair.partition("=")
        if not sep or not label or not path:
            raise UserError(f"--class {pair!r}: expected CLASS=GENERATOR.keras")
        if label in chosen:
            raise UserError(f"--class {label} is given twice")
        chosen[label] = Path(path)
    return chosen


def load_parts(base: Path, chosen: dict[str, Path]):
    """([(path, Keras generator, sidecar)] for each generator that draws a class, {class: part
    index}, the base's sidecar); every check made before any model is built."""
    paths = [Path(base)] + [path for path in dict.fromkeys(chosen.values()) if path != Path(base)]
    parts = [(path, *load_generator(path)) for path in paths]
    base_sidecar = parts[0][2]
    classes = list(base_sidecar["classes"])
    for label in chosen:
        if label not in classes:
            raise UserError(f"--class {label}: the base generator {base} has no class {label!r} "
                            f"(its classes: {', '.join(classes)})")
    for path, _, sidecar in parts[1:]:
        for key in MUST_AGREE:
            if sidecar.get(key) != base_sidecar.get(key):
                raise UserError(f"{path}: its {key} is {sidecar.get(key)!r}, the base generator's "
                                f"{base_sidecar.get(key)!r}; parts must draw alike")
        for label in (label for label, chosen_path in chosen.items() if chosen_path == path):
            if label not in sidecar["classes"]:
                raise UserError(f"--class {label}={path}: that generator has no class {label!r}")
    route = {label: paths.index(chosen.get(label, Path(base))) for label in classes}
    # A base whose every class is drawn by another part is only the list of classes: left out,
    # it costs the combined generator nothing to run.
    used = sorted(set(route.values()))
    route = {label: used.index(k) for label, k in route.items()}
    return [parts[k] for k in used], route, base_sidecar


def part_config(path: Path, sidecar: dict) -> GanConfig:
    """The architecture a part was trained with, from its sidecar's provenance."""
    try:
        return GanConfig.from_dict(sidecar["provenance"]["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path}: its sidecar does not record the configuration it was trained with ({err})") from err


def combine(parts, route: dict[str, int]):
    """The combined Keras generator: (latent, label) -> image, each class drawn by its part."""
    keras = import_keras()
    layers = keras.layers
    classes = list(route)
    latent_dim = int(parts[0][2]["latent_dim"])
    latent = keras.Input((latent_dim,), name="latent")
    label = keras.Input((), dtype="int32", name="label")
    drawn = []
    for k, (path, source, sidecar) in enumerate(parts):
        part = build_generator(part_config(path, sidecar), len(classes), name=f"part_{k}")
        # Row c of each table: the part's own row for class c where it has one, else its first;
        # rows of classes routed elsewhere are multiplied by 0 below.
        own = list(sidecar["classes"])
        copy_generator_weights(source, part, [own.index(c) if c in own else 0 for c in classes])
        mask = np.array([[1.0 if route[c] == k else 0.0] for c in classes], np.float32)
        routed = layers.Embedding(len(classes), 1, embeddings_initializer=keras.initializers.Constant(mask),
                                  trainable=False, name=f"route_{k}")(label)
        routed = layers.Reshape((1, 1, 1), name=f"map_route_{k}")(routed)
        drawn.append(layers.Multiply(name=f"routed_{k}")([part([latent, label]), routed]))
    image = layers.Add(name="image", dtype="float32")(drawn)
    return keras.Model([latent, label], image, name="combined_generator")


def combined_sidecar(base_sidecar: dict, parts, route: dict[str, int], command: str) -> dict:
    """The base's sidecar, with each class's part recorded in its provenance."""
    sidecar = dict(base_sidecar)
    sidecar["kind"] = CONDITIONAL
    sidecar["description"] = "conditional generator (EMA weights), combined: each class drawn by its own part"
    sidecar["provenance"] = this_run(
        command=command,
        parts=[{"generator": str(path), "classes": [c for c, k in route.items() if k == i],
                "provenance": part_sidecar.get("provenance", {})}
               for i, (path, _, part_sidecar) in enumerate(parts)],
    )
    return sidecar


def run_combine(options: GanCombineOptions) -> Path:
    """`gan-combine`: write the generator that draws each chosen class with its own generator; returns its file."""
    from training.gan.train import save_generator

    chosen = parse_class_generators(options.class_generators)
    out = Path(options.out)
    if out.suffix != ".keras":
        raise UserError(f"--out {out}: a combined generator is a .keras file")
    if out.resolve() in {Path(options.generator).resolve(), *(p.resolve() for p in chosen.values())}:
        raise UserError(f"--out {out} is one of the generators being combined; write it elsewhere first")
    parts, route, base_sidecar = load_parts(Path(options.generator), chosen)
    if len(parts) < 2 and parts[0][0] == Path(options.generator):
        raise UserError("nothing to combine: give --class CLASS=GENERATOR with a generator other than the base")
    generator = combine(parts, route)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python -m training gan-combine " + " ".join(
        [f"--generator {options.generator}"] + [f"--class {pair}" for pair in options.class_generators]
        + [f"--out {out}"])
    save_generator(generator, out, combined_sidecar(base_sidecar, parts, route, command))
    for label, k in route.items():
        logger.info(f"{label}: drawn by {parts[k][0]}")
    logger.info(f"wrote {out} and {out.with_suffix('.json').name}")
    return out

