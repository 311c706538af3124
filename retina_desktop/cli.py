"""`python -m retina_desktop` / `retina-desktop`: the GUI, or `predict`, `batch` and `info`.

Exit status: 0 when every file was classified, 1 when any file or the model failed (each
failure has its own error line naming the file), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections import Counter

from retina_desktop.core.errors import UserError

NOTICE = (
    "Model output with calibrated confidence, not a diagnosis. "
    "Retina Desktop is not a medical device."
)
COMMANDS = ("predict", "batch", "info", "gui")
# What a Unix tool killed by SIGPIPE reports (128 + 13).
_EXIT_BROKEN_PIPE = 141


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model file (.h5 or .keras); default: the shipped fundus model")
    parser.add_argument("--labels", help="labels.txt, if not beside the model")
    parser.add_argument(
        "--no-checks", action="store_true", help="skip the image quality and modality checks"
    )
    parser.add_argument(
        "--trust-model",
        action="store_true",
        help="load model files that contain code (Lambda layers); only for files you trust",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retina-desktop",
        description=f"Classify retinal images (fundus photographs, OCT B-scans). {NOTICE}",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    gui = commands.add_parser("gui", help="open the desktop application (the default)")
    gui.add_argument("image", nargs="?", help="an image to analyse at once")
    _model_options(gui)

    predict = commands.add_parser("predict", help="classify image files")
    predict.add_argument("files", nargs="+", metavar="FILE")
    predict.add_argument("--json", action="store_true", help="one JSON object per line")
    _model_options(predict)

    batch = commands.add_parser("batch", help="classify every image under a folder into a CSV")
    batch.add_argument("folder", metavar="DIR")
    batch.add_argument("--out", required=True, help="CSV file to write")
    _model_options(batch)

    info = commands.add_parser("info", help="describe a model: classes, input, provenance, metrics")
    info.add_argument("--json", action="store_true")
    _model_options(info)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--self-test"]:
        from retina_desktop.services.selftest import run_self_test

        return run_self_test()
    # No command, or an image path first, means the GUI (`retina-desktop scan.png`).
    if not argv or (argv[0] not in COMMANDS and not argv[0].startswith("-")):
        argv.insert(0, "gui")
    elif argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv.insert(0, "gui")
    args = build_parser().parse_args(argv)
    # A file name that is not valid UTF-8 reaches Python as lone surrogates; printed, it would
    # raise UnicodeEncodeError. Escaped, the line still names the file.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    from retina_desktop.core import paths

    # A log or cache folder that cannot be made (no HOME) falls back to a temporary one: one line.
    paths.on_folder_fallback(lambda message: print(f"warning: {message}", file=sys.stderr))
    if args.command == "gui":
        from retina_desktop.gui.app import run_app

        return run_app(image=args.image, model=args.model, labels=args.labels, trust_model=args.trust_model)
    try:
        classifier = _classifier(args)
        if args.command == "predict":
            return _predict(classifier, args)
        if args.command == "batch":
            return _batch(classifier, args)
        return _info(classifier, args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`predict --json | head -1`): stop quietly, as Unix tools do.
        # stdout is pointed at /dev/null so that Python's own flush at exit cannot fail again.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return _EXIT_BROKEN_PIPE


def _classifier(args):
    from retina_desktop.core.settings import load_settings
    from retina_desktop.services.classify import Classifier

    settings = load_settings(warn=lambda message: print(f"warning: {message}", file=sys.stderr))
    if args.no_checks:
        settings.checks_enabled = False
    return Classifier(args.model, args.labels, trust_model=args.trust_model, settings=settings)


def _familiarity_warning(bundle) -> None:
    """A familiarity file, or a compiled copy, that could not be used: one line each; the model
    still answers (a refused compiled copy's model file serves instead)."""
    for problem in (getattr(bundle, "compiled_problem", ""), getattr(bundle, "familiarity_problem", "")):
        if problem:
            print(f"warning: {problem}", file=sys.stderr)


def _predict(classifier, args) -> int:
    _familiarity_warning(classifier.bundle())  # a bad model is one error, not one per file
    failures = 0
    for file in args.files:
        try:
            prediction = classifier.predict_file(file)
        except UserError as err:
            failures += 1
            if args.json:
                print(json.dumps({"file": file, "error": str(err)}), flush=True)
            else:
                print(f"error: {err}", file=sys.stderr, flush=True)
            continue
        if args.json:
            try:
                # Strict JSON: a NaN that got past the service is an error line, never `NaN`.
                line = json.dumps(prediction.to_json_dict(), allow_nan=False)
            except ValueError:
                failures += 1
                line = json.dumps({"file": file, "error": f'"{file}": the model output could not be written as JSON '
                                   "(NaN or infinity)"})
            print(line, flush=True)
        else:
            # The wording is records.Answer's, the same as the GUI's, the CSV's and the report's.
            print(f"{file}: {prediction.answer().text()}", flush=True)
    if not args.json:
        print(NOTICE, file=sys.stderr)
    return 1 if failures else 0


def _batch(classifier, args) -> int:
    from tqdm import tqdm

    from retina_desktop.core.output_lock import lock_path_for
    from retina_desktop.services import batch

    out = batch.BatchCsv(args.out)
    total = len(batch.images_to_classify(args.folder, out.own_files))
    skipped = batch.skipped_files(args.folder, (*out.own_files, lock_path_for(out.path)))
    if skipped:  # one line, the first few by name: not read, and not silently either
        shown = ", ".join(str(p.relative_to(args.folder)) for p in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        print(f"skipped {len(skipped)} file(s) that are not images this app reads: {shown}{more}", file=sys.stderr)
    # The output is checked (and its partial file created) before the model or any image.
    with out:
        bundle = classifier.bundle()
        _familiarity_warning(bundle)
        out.start(bundle.classes)
        errors: list[str] = []  # the first few, for the summary; the CSV has them all
        failed = flagged = unsure = unfamiliar = 0
        counts: Counter[str] = Counter()
        try:
            with tqdm(total=total, desc="classifying", unit="img", file=sys.stderr) as bar:
                for row in batch.classify_folder(args.folder, classifier.predict_files, exclude=out.own_files):
                    out.write(row)
                    bar.update(1)
                    if row.prediction is None:  # the file's error instead
                        failed += 1
                        if len(errors) < 10:
                            errors.append(row.error)
                    else:
                        answer = row.prediction.answer()
                        if answer.not_judged:
                            flagged += 1
                        else:
                            counts[str(answer.label)] += 1  # judged: it has a label
                            unsure += answer.unsure
                            unfamiliar += bool(answer.unfamiliar)
        except BaseException:
            if out.rows:
                print(f"the {out.rows} rows finished are in {out.partial}", file=sys.stderr)
            raise
    print(
        f"{out.rows} images: {out.rows - failed} classified, {failed} errors, "
        f"{flagged} flagged by the image checks -> {args.out}"
    )
    print(f"model output among images that passed the checks ({unsure} of them unsure, "
          f"below {classifier.settings.unsure_below:.0%}):")
    for label in bundle.classes:
        print(f"  {label}: {counts.get(label, 0)}")
    point = bundle.metadata.operating_point()
    if point is not None:
        print(f"  (the model {point.rule_text()})")
    if getattr(bundle, "familiarity", None) is not None:
        print(f"{unfamiliar} of them unfamiliar (unlike the images the model learned from: "
              "their output may be unreliable; column unfamiliar)")
    for error in errors:
        print(f"  error: {error}", file=sys.stderr)
    if failed > len(errors):
        print(f"  ... and {failed - len(errors)} more errors (see the CSV)", file=sys.stderr)
    print(NOTICE, file=sys.stderr)
    return 1 if failed else 0


def _finite_or_null(value):
    """`value` with every NaN or infinity replaced by None (JSON null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(v) for v in value]
    return value


def _info(classifier, args) -> int:
    bundle = classifier.bundle()
    if getattr(bundle, "compiled_problem", ""):
        print(f"warning: {bundle.compiled_problem}", file=sys.stderr)
    meta = bundle.metadata
    if args.json:
        # Strict JSON (any reader parses it): a metric recorded as NaN is written as null.
        print(json.dumps(_finite_or_null({"path": str(bundle.path), **meta.to_dict()}), allow_nan=False))
        return 0
    spec = meta.input
    print(f"model:     {meta.name} (model version {meta.version})")
    print(f"file:      {bundle.path}")
    print(f"modality:  {meta.modality}")
    print(f"classes:   {', '.join(meta.classes)}")
    print(f"input:     {spec.width}x{spec.height} RGB, fit {spec.fit}, scaling {spec.scaling}")
    print(f"calibration temperature: {meta.temperature:g}")
    point = meta.operating_point()
    if point is not None:
        chosen = f", chosen on {point.chosen_on}" if point.chosen_on else ""
        print(f"{point.threshold_name}: {point.threshold:g} for {point.positive_class}{chosen}")
    print(f"decision:  {meta.decision_text()}")
    print(f"unsure:    answers whose label has a probability below {classifier.settings.unsure_below:g} "
          "are marked unsure")
    familiarity = getattr(bundle, "familiarity", None)
    if familiarity is not None:
        print(f"unfamiliar: images whose distance from the training images exceeds {familiarity.threshold:.4g} "
              "are flagged (their output may be unreliable)")
    elif getattr(bundle, "familiarity_problem", ""):
        print(f"unfamiliar: no flag ({bundle.familiarity_problem})")
    thresholds = classifier.thresholds().to_dict()
    print("image checks: " + ", ".join(f"{k} {v:g}" for k, v in thresholds.items()))
    for key in ("command", "data", "training_seconds", "trained_at", "note"):
        if key in meta.provenance:
            print(f"{key + ':':10s} {meta.provenance[key]}")
    if meta.metrics:
        m = meta.metrics
        print(
            f"test metrics ({m.get('split', 'test')} split, n = {m.get('n')}): accuracy {m.get('accuracy')}, "
            f"balanced accuracy {m.get('balanced_accuracy')}, macro AUC {m.get('macro_auc')}, ECE {m.get('ece')}"
        )
    print(NOTICE)
    return 0
