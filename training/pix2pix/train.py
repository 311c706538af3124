"""The `pix2pix` verb: train the vessel-mask -> fundus-photograph generator on pairs folders.

`python -m training pix2pix --pairs DIR [DIR...] --size 256 --out OUT`. Each DIR holds image/,
vessels/ and optionally fov/ (see `pix2pix.data`); its colour style is its name (or its parent's
for a split-named folder, `drive/training` -> "drive"), or given by --styles.

Outputs in OUT: `generator.keras` (the generator only: masks in, photograph in [-1, 1] out),
`generator.json` (its sidecar: kind, size, styles, input channel layout, each style's mean
colour the photographs were evened out to, the command, data, time per epoch and in total, the
hyperparameters), `config.json`, `samples/epoch_NNNN.png`
(rows of mask | generated | real, fixed training pairs), `losses.csv`, and `checkpoint/` for
`--resume`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from retina_desktop.core.errors import UserError
from retina_desktop.inference.sidecars import VESSEL_TO_FUNDUS
from retina_desktop.services.vessel_synthesis import input_layout
from training.epochs import TrainState, refuse_changed_config
from training.pix2pix.config import Pix2PixConfig, Pix2PixOptions
from training.pix2pix.data import even_out_colour, find_pairs, load_pairs, style_indices
from training.provenance import this_run

logger = logging.getLogger(__name__)
GENERATOR_FILE = "generator.keras"


def resolve_styles(pairs: Sequence[str], given: str | None) -> list[str | None]:
    """One style per pairs folder: from --styles, or None (the folder's own name)."""
    if not given:
        return [None] * len(pairs)
    names = [s.strip().lower() for s in given.split(",")]
    if len(names) != len(pairs) or not all(names):
        raise UserError(f"--styles names {len(names)} style(s) for {len(pairs)} --pairs folder(s); give one per folder")
    return names


def run_pix2pix(options: Pix2PixOptions) -> TrainState:
    """`pix2pix`: train the generator `options` describe on the pairs folders (or resume it) and
    write it with its sidecar; returns where training stands."""
    out = Path(options.out)
    folders = [find_pairs(d, s) for d, s in zip(options.pairs, resolve_styles(options.pairs, options.style_names))]
    styles = list(dict.fromkeys(f.style for f in folders))
    try:
        config = dataclasses.replace(options.config, styles=tuple(styles))
    except ValueError as err:  # styles that cannot name a one-hot channel each
        raise UserError(f"pix2pix settings: {err}") from err
    config_file = out / "config.json"
    if options.resume and config_file.exists():
        refuse_changed_config(config_file, Pix2PixConfig.from_dict(json.loads(config_file.read_text())), config)
    counts = {str(f.root): {"style": f.style, "pairs": len(f.pairs), "fov": "masks" if f.pairs[0].fov else "estimated"}
              for f in folders}
    for root, entry in counts.items():
        logger.info(f"pairs: {root}: {entry['pairs']} ({entry['style']}, field of view {entry['fov']})")
    sources, targets, fovs = load_pairs(folders, config.size, styles)
    colours = None
    if config.even_colour:
        targets, colours = even_out_colour(targets, fovs, style_indices(sources))
        for style, colour in zip(styles, colours):
            logger.info(f"style {style}: photographs evened out to mean RGB {', '.join(f'{c:.0f}' for c in colour)} "
                        "in the field of view")
    if len(sources) < config.batch_size:
        raise UserError(f"{len(sources)} pairs are fewer than one batch (--batch-size {config.batch_size})")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(config_file) as handle:
        json.dump(config.to_dict(), handle, indent=2)

    from training.pix2pix.trainer import train_pix2pix  # loads Keras

    if options.distribute:
        from training.distribute import use_devices

        logger.info(use_devices(config.batch_size).describe())

    model, state = train_pix2pix(config, sources, targets, out, resume=options.resume,
                                 stop_after_epochs=options.stop_after)
    if state.epoch < config.epochs:
        logger.info(f"stopped after epoch {state.epoch} as asked; continue with --resume")
        return state
    per_epoch = state.seconds / max(1, state.epoch)
    logger.info(f"training time: {state.seconds / 60:.1f} min for {state.epoch} epochs ({per_epoch:.1f} s/epoch)")
    atomic_save(out / GENERATOR_FILE, model.generator.save)
    write_sidecar(out / "generator.json", config, counts, state, per_epoch, colours)
    logger.info(f"wrote {out / GENERATOR_FILE}, generator.json, samples/ and losses.csv to {out}")
    return state


def write_sidecar(path: Path, config: Pix2PixConfig, data: dict, state, per_epoch: float,
                  colours: np.ndarray | None = None) -> None:
    sidecar = {
        "kind": VESSEL_TO_FUNDUS,
        "description": "vessel-to-fundus pix2pix",
        "size": config.size,
        "styles": list(config.styles),
        "inputs": {
            "shape": f"(n, {config.size}, {config.size}, {config.channels_in}) float32",
            "channels": input_layout(config.styles),
            "preparation": "retina_desktop.services.vessel_synthesis.generator_input: masks stretched to size x size; "
                           "vessels thresholded at coverage 0.45 / reduction, field of view at 0.5",
        },
        "output": "(n, size, size, 3) in [-1, 1]; uint8 RGB = round((x + 1) * 127.5)",
        "style_colours": None if colours is None else {
            style: [round(float(c), 1) for c in colour] for style, colour in zip(config.styles, colours)
        },
        "note": "synthetic images: model output for illustration and augmentation, not patient data",
        "provenance": this_run(
            data=data,
            train_pairs=int(sum(entry["pairs"] for entry in data.values())),
            config=config.to_dict(),
            epochs_trained=state.epoch,
            seconds_per_epoch=round(per_epoch, 2),
            training_seconds=round(state.seconds, 1),
        ),
        "metrics": {},
    }
    with atomic_write(path) as handle:
        json.dump(sidecar, handle, indent=2)
