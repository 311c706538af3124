"""`python -m training export`: compile Keras models for the TensorFlow-free (LiteRT) path.

For each model file this writes `<stem>.tflite` and its manifest `<stem>.tflite.json` (the
SHA-256 of the model file it was compiled from, the heatmap head) beside the model, or into
`--out`, which then receives the model file, `labels.txt` and the sidecar too, so that the
folder is a complete bundle. The compiled model is checked against Keras before it is kept.
Generators (`generator.keras` with a sidecar saying so) are compiled beside themselves by
`retina_desktop.inference.generator_export`, for the Augment tab.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from retina_desktop.core.errors import UserError
from retina_desktop.inference.bundle import load_bundle
from retina_desktop.inference.litert_backend import compiled_path_for, read_manifest
from retina_desktop.inference.litert_export import compile_model
from retina_desktop.inference.model_files import labels_path_for, sidecar_path_for
from retina_desktop.inference.sidecars import CONDITIONAL, VESSEL_TO_FUNDUS, read_kind
from training.classifier.config import ExportOptions

logger = logging.getLogger(__name__)


def export_model(model_path: Path, out: Path | None = None, *, trust_model: bool = False) -> Path:
    """Compile one model (into `out` with its bundle files, or beside it); returns the .tflite."""
    model_path = Path(model_path)
    if out is not None and Path(out).resolve() != model_path.parent.resolve():
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for source in (model_path, labels_path_for(model_path), sidecar_path_for(model_path)):
            if source.exists():
                shutil.copy2(source, out / source.name)
        model_path = out / model_path.name
    bundle = load_bundle(model_path, trust_model=trust_model, backend="keras")
    return compile_model(bundle.model, model_path, compiled_path_for(model_path), scaling=bundle.metadata.input.scaling)


def is_generator(path: Path) -> bool:
    """A `.keras` file whose sidecar says it generates images (GAN or pix2pix)."""
    return Path(path).suffix == ".keras" and read_kind(path) in (CONDITIONAL, VESSEL_TO_FUNDUS)


def run_export(options: ExportOptions) -> list[Path]:
    """`export`: compile every model of `options` (a classifier to `options.out` or beside it, a
    generator beside it); returns the compiled files."""
    models = [Path(m) for m in options.model]
    done = []
    for path in models:
        if not path.is_file():
            raise UserError(f'Model file not found: "{path}"')
    for path in models:
        start = time.perf_counter()
        logger.info(f"compiling {path} ...")
        if is_generator(path):
            from retina_desktop.inference.generator_export import compile_generator_beside

            if options.out:
                raise UserError(f'"{path}" is a generator; it is compiled beside itself (leave out --out)')
            compiled = compile_generator_beside(path)
            seconds = time.perf_counter() - start
            logger.info(f"  -> {compiled} ({compiled.stat().st_size / 1e6:.1f} MB) in {seconds:.1f} s")
            done.append(compiled)
            continue
        compiled = export_model(path, Path(options.out) if options.out else None, trust_model=options.trust_model)
        manifest = read_manifest(compiled) or {}
        heat = manifest.get("heatmap") or {}
        heat_note = (
            f"heatmap from layer {heat.get('layer')!r} ({heat.get('score')})"
            if heat.get("head") is not None
            else f"no heatmap on the compiled path: {heat.get('problem')}"
        )
        logger.info(
            f"  -> {compiled} ({compiled.stat().st_size / 1e6:.1f} MB, source sha256 "
            f"{manifest.get('source_sha256', '?')[:12]}..., {heat_note}) in {time.perf_counter() - start:.1f} s"
        )
        done.append(compiled)
    return done
