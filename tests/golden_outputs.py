"""Everything the app gives for a fixed set of real inputs, written to one folder: the check that a
change meant to keep behaviour (issue #37's redesign) kept it, bit for bit.

    python3 tests/golden_outputs.py runs/golden-before      # on the code before the change
    python3 tests/golden_outputs.py runs/golden-after       # after it
    diff -r runs/golden-before runs/golden-after            # silent when nothing moved

Run from the repository root, with `../shared/data` beside it and the shipped models in place.
What it writes, for the shipped fundus and OCT models (their default, compiled path):

- `cli/`: what `python -m retina_desktop` prints: `info` (text and `--json`), `predict` (text and
  `--json`) on real photographs and scans of both kinds and on wrong inputs (angiograms, a lens
  photo, OCT-A), and `batch`'s CSV of one folder of each kind;
- `heatmaps/`: the Grad-CAM of each judged image for its answer, as `.npy`;
- `reports/`: the PDF report of each judged image, as the Analyse tab writes it (PNG too, since
  a PDF's bytes could hide a change a picture shows);
- `synthesis/`: what the Augment tab makes with each shipped generator: sampled images of every
  class, a variation and an interpolation strip (PNG files with their text chunks, as the tab
  exports them), and the vessel-to-fundus generator's picture of a random vessel tree in every
  colour style.

The user's own settings are not read (a fresh settings folder for the run), and every date is
fixed (the report's, and the one a PDF stamps through `SOURCE_DATE_EPOCH`), so two runs of the
same code write the same bytes. Not a pytest module: it takes a minute or two and needs the shared data.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's code, whatever an editable install points at
DATA = Path("..") / "shared" / "data"  # as a user types it from the repository root: printed paths stay short

# (folder under DATA, how many files from its sorted listing)
FUNDUS_INPUTS = (("messidor2/diabetic_retinopathy", 2), ("messidor2/normal", 2),
                 ("fundus-external/diabetic_retinopathy", 2), ("fundus-external/normal", 2),
                 ("wrong-inputs/fluorescein-angiogram", 1), ("wrong-inputs/lens-photo", 1),
                 ("wrong-inputs/oct-angiography", 1), ("oct-dme/DME", 1))
OCT_INPUTS = (("oct-dme/DME", 2), ("oct-dme/NO_DME", 2), ("messidor2/normal", 1))
BATCH_FOLDERS = {"fundus": "wrong-inputs/lens-photo", "oct": "oct-dme/DME"}
SEED = 0
# The date a report prints (the app prints the time it was made, which two runs would not share).
REPORT_DATE = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def inputs(folders) -> list[str]:
    """The first files of each folder, sorted: the same list on every machine with the data."""
    from retina_desktop.imaging.decode import list_images

    return [str(path) for folder, count in folders for path in list_images(DATA / folder)[:count]]


def cli_output(argv: list[str]) -> str:
    """What `python -m retina_desktop ARGV` prints on stdout, and its exit status."""
    from retina_desktop.cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        status = main(argv)
    return printed.getvalue() + f"[exit {status}]\n"


def write_cli(out: Path, name: str, model: Path, images: list[str], batch_folder: str) -> None:
    folder = out / "cli"
    folder.mkdir(parents=True, exist_ok=True)
    model_args = ["--model", str(model)]
    (folder / f"info-{name}.txt").write_text(cli_output(["info", *model_args]))
    (folder / f"info-{name}.json").write_text(cli_output(["info", "--json", *model_args]))
    (folder / f"predict-{name}.txt").write_text(cli_output(["predict", *model_args, *images]))
    (folder / f"predict-{name}.jsonl").write_text(cli_output(["predict", "--json", *model_args, *images]))
    with tempfile.TemporaryDirectory() as scratch:  # batch refuses to write inside the folder it reads
        csv = Path(scratch) / "batch.csv"
        printed = cli_output(["batch", *model_args, "--out", str(csv), str(DATA / batch_folder)])
        (folder / f"batch-{name}.txt").write_text(printed.replace(scratch, "<out>"))
        shutil.copyfile(csv, folder / f"batch-{name}.csv")


def write_heatmaps_and_reports(out: Path, name: str, model: Path, images: list[str]) -> None:
    import numpy as np
    from PIL import Image

    from retina_desktop.core.errors import UserError
    from retina_desktop.services.classify import Classifier
    from retina_desktop.services.report import export_report

    classifier = Classifier(model)
    (out / "heatmaps").mkdir(parents=True, exist_ok=True)
    (out / "reports").mkdir(parents=True, exist_ok=True)
    metadata = classifier.bundle().metadata
    for image in images:
        stem = f"{name}-{Path(image).parent.name}-{Path(image).stem}"
        try:
            prediction = classifier.predict_file(image)
        except UserError as err:
            (out / "reports" / f"{stem}.txt").write_text(f"{err}\n")
            continue
        try:  # as the Analyse tab asks for it: every prediction, for its own label
            heat = classifier.heatmap(prediction, prediction.label)
            np.save(out / "heatmaps" / f"{stem}.npy", heat)
        except ValueError as err:  # a model it cannot explain
            heat = None
            (out / "heatmaps" / f"{stem}.txt").write_text(f"{err}\n")
        picture = Image.fromarray(prediction.picture)
        picture.thumbnail((512, 512), Image.Resampling.LANCZOS)  # as the Analyse tab shows it
        for suffix in (".pdf", ".png"):
            export_report(out / "reports" / f"{stem}{suffix}", prediction, image=np.asarray(picture), heatmap=heat,
                          metadata=metadata, opacity=0.45, heatmap_class=prediction.label, created=REPORT_DATE)


def write_synthesis(out: Path) -> None:
    from PIL import Image

    from retina_desktop.inference.generator_runtime import CONDITIONAL
    from retina_desktop.services import synthetic_samples as samples
    from retina_desktop.services.vessel_synthesis import generator_input, random_vessel_tree

    folder = out / "synthesis"
    folder.mkdir(parents=True, exist_ok=True)
    for info in samples.shipped_generators():
        generator = samples.open_generator(info.path)
        tag = info.path.parent.name if info.path.parent.name != "models" else "fundus"
        if info.kind == CONDITIONAL:
            made = [image for label in info.classes for image in samples.sample(generator, label, 2, SEED)]
            made += samples.vary(generator, made[0], 2, 0.3, SEED)
            made += samples.interpolate(generator, (info.classes[0], SEED, 0), (info.classes[-1], SEED, 1), steps=4)
            target = folder / tag
            # Named from the repository root, so that two checkouts (before and after) write the same.
            samples.export_images(made, target, info.path.relative_to(ROOT))
            continue
        vessels, fov = random_vessel_tree(info.size, SEED)
        for style in info.styles:
            planes = generator_input(vessels, fov, style, info.styles, info.size)
            Image.fromarray(generator.translate(planes)[0]).save(folder / f"{tag}-{style}.png")


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print(__doc__)
        return 2
    out = Path(sys.argv[1]).resolve()
    if out.exists() and any(out.iterdir()):
        print(f'error: "{out}" is not empty: give a new folder, so that nothing of an older run stays in it')
        return 1
    os.chdir(ROOT)
    if not DATA.is_dir():
        print(f'error: "{DATA}" is missing: this check reads the shared data beside the repository')
        return 1
    os.environ["SOURCE_DATE_EPOCH"] = "0"  # matplotlib's PDF dates
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="golden-settings-")  # default settings
    models = {"fundus": ROOT / "models" / "keras_model.h5", "oct": ROOT / "models" / "oct" / "keras_model.h5"}
    for name, images in (("fundus", inputs(FUNDUS_INPUTS)), ("oct", inputs(OCT_INPUTS))):
        model = models[name].relative_to(ROOT)
        print(f"{name}: {len(images)} images", flush=True)
        write_cli(out, name, model, images, BATCH_FOLDERS[name])
        write_heatmaps_and_reports(out, name, model, images)
    print("synthesis", flush=True)
    write_synthesis(out)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    print(f"wrote {len(files)} files to {out}; compare two such folders with diff -r")
    return 0


if __name__ == "__main__":
    sys.exit(main())
