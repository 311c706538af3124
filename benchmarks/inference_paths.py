"""Side by side: plain `model.predict`, our Keras path and our LiteRT path (and the frozen app).

    python benchmarks/inference_paths.py [--model M] [--folder DIR] [--images 100] [--repeat 30]

Each path runs in its own fresh process, which reports:
- start to first result: from the parent starting the process to the child having the first
  image's probabilities (interpreter start, imports, model load, decode, first prediction);
- warm per-image latency: one image, decode + fit + predict (`predict_file`, checks off), and
  the model call alone on an already fitted image;
- batch throughput on a folder: decoding and fitting alone (on one thread, and on two reader
  threads as `predict_files` runs them), end to end one file at a time,
  end to end the way the `batch` command and the Batch tab run it (`Classifier.predict_files`:
  reader threads decode while the model works on batches of 16), and the model alone on
  batches of 32 fitted images. Every figure is with the image checks off, so that the paths
  compare like with like (`predict_latency.py` times the checks);
- peak memory: the child's maximum resident set size (getrusage).
Plus the build's size on disk when dist/RetinaDesktop exists, and its start to first result.

(a) "plain" is the seed projects' pattern: load the model, `model.predict(x)` per image.
(b) "keras" is `Classifier(backend="keras")`: a traced tf.function.
(c) "litert" is `Classifier(backend="litert")`: the compiled model, no TensorFlow imported.
The model needs a current compiled copy for (c): `python -m training export --model M`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import timed  # noqa: E402  (benchmarks/, beside this script)

PATHS = ("plain", "keras", "litert")


def _median_ms(fn, repeat: int) -> float:
    return statistics.median(timed(fn, repeat)) * 1000


def _child(args) -> None:
    """Runs in the fresh process for one path; prints one JSON line."""
    import numpy as np

    from retina_desktop.imaging.decode import list_images, load_image
    from retina_desktop.imaging.preprocessing import fit_image, prepare_batch

    files = list_images(args.folder)[: args.images] if args.folder else []
    image = Path(args.image)
    if args.path == "plain":
        from retina_desktop.core.quiet import import_keras
        from retina_desktop.inference.bundle import load_bundle

        # Only to read the input spec without TensorFlow's help; the model is loaded below.
        from retina_desktop.inference.model_files import read_sidecar, sidecar_path_for

        import_keras()
        from retina_desktop.inference.legacy_h5 import load_h5_model

        model = load_h5_model(Path(args.model))
        sidecar = read_sidecar(sidecar_path_for(Path(args.model)))
        spec = sidecar.input if sidecar else load_bundle(args.model).metadata.input

        def predict_fitted(fitted):
            return model.predict(prepare_batch([fitted], spec), verbose=0)[0]

        def predict_file(path):
            return predict_fitted(fit_image(load_image(path).rgb, spec))

        def predict_batch(fitted):
            return model.predict(prepare_batch(list(fitted), spec), batch_size=32, verbose=0)
    else:
        from retina_desktop.core.settings import Settings
        from retina_desktop.services.classify import Classifier

        classifier = Classifier(args.model, backend=args.path, settings=Settings(checks_enabled=False))
        spec = classifier.bundle().metadata.input

        def predict_fitted(fitted):
            return classifier.predict_arrays(fitted[None], calibrated=False)[0]

        def predict_file(path):
            return classifier.predict_file(path).confidence

        def predict_batch(fitted):
            return classifier.predict_arrays(fitted, calibrated=False, batch_size=32)

    predict_file(image)
    first = time.time()
    fitted_one = fit_image(load_image(image).rgb, spec)
    result = {
        "first_result_at": first,
        "warm_file_ms": _median_ms(lambda: predict_file(image), args.repeat),
        "warm_model_ms": _median_ms(lambda: predict_fitted(fitted_one), args.repeat),
        "probabilities": [float(p) for p in predict_fitted(fitted_one)],
    }
    if files:
        start = time.perf_counter()
        fitted = np.stack([fit_image(load_image(f).rgb, spec) for f in files])
        result["decode_ips"] = len(files) / (time.perf_counter() - start)
        # The same work on two reader threads, as `predict_files` runs it (decoding, resizing and
        # most numpy work release the GIL).
        from multiprocessing.pool import ThreadPool

        with ThreadPool(2) as pool:
            start = time.perf_counter()
            pool.map(lambda f: fit_image(load_image(f).rgb, spec), files, chunksize=8)
            result["decode_threads_ips"] = len(files) / (time.perf_counter() - start)
        start = time.perf_counter()
        for f in files:
            predict_file(f)
        result["end_to_end_ips"] = len(files) / (time.perf_counter() - start)
        if args.path != "plain":
            list(classifier.predict_files(files[:16]))  # warm the batch shape
            start = time.perf_counter()
            for _ in classifier.predict_files(files):
                pass
            result["batch_files_ips"] = len(files) / (time.perf_counter() - start)
        predict_batch(fitted[:32])  # warm the batch shape
        start = time.perf_counter()
        predict_batch(fitted)
        result["model_batch_ips"] = len(files) / (time.perf_counter() - start)
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    print(json.dumps(result), flush=True)


def _run_path(path: str, args) -> dict:
    command = [sys.executable, __file__, "--child", path, "--model", args.model, "--image", str(args.image),
               "--images", str(args.images), "--repeat", str(args.repeat)]
    if args.folder:
        command += ["--folder", args.folder]
    started = time.time()
    code, out, err, peak = _measured(command)
    if code:
        return {"error": err.strip().splitlines()[-1] if err.strip() else f"exit {code}"}
    result = json.loads(out.strip().splitlines()[-1])
    result["first_result_s"] = result.pop("first_result_at") - started
    result["peak_rss_mb"] = peak
    return result


def _frozen(args) -> dict | None:
    folder = ROOT / "dist" / "RetinaDesktop"
    exe = folder / ("retina-desktop.exe" if os.name == "nt" else "retina-desktop")
    if not exe.exists():
        return None
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    model = (
        folder / "_internal" / Path(args.model).resolve().relative_to(ROOT)
        if Path(args.model).resolve().is_relative_to(ROOT)
        else Path(args.model)
    )
    times, peaks = [], []
    for _ in range(3):
        start = time.perf_counter()
        code, _, err, peak = _measured(
            [str(exe), "predict", str(args.image), "--json", "--model", str(model), "--no-checks"]
        )
        times.append(time.perf_counter() - start)
        peaks.append(peak)
        if code:
            return {"size_mb": size / 1e6, "error": err.strip()[-300:]}
    return {"size_mb": size / 1e6, "first_result_s": statistics.median(times), "peak_rss_mb": max(peaks)}


def _measured(command: list[str]) -> tuple[int, str, str, float]:
    """Run a command; (exit status, stdout, stderr, that process's peak RSS in MB)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return process.returncode, out.read(), err.read(), usage.ru_maxrss / 1024


def _default_model() -> str:
    for candidate in (ROOT / "models" / "keras_model.h5", ROOT / "models" / "oct" / "keras_model.h5"):
        if candidate.exists():
            return str(candidate)
    raise SystemExit("no model in models/: pass --model")


def _default_folder(model: str) -> str | None:
    data = ROOT.parent / "shared" / "data" / ("oct-dme" if "oct" in Path(model).parts else "fundus4")
    return str(data) if data.is_dir() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--folder", help="images for throughput (default: ../shared/data for the model)")
    parser.add_argument("--image", help="one image for latency (default: the folder's first)")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--child", choices=PATHS, dest="path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        _child(args)
        return 0
    args.model = args.model or _default_model()
    args.folder = args.folder or _default_folder(args.model)
    if not args.image:
        from retina_desktop.imaging.decode import list_images

        if not args.folder:
            raise SystemExit("pass --image or --folder")
        args.image = list_images(args.folder)[0]
    # A shared machine: run the paths one after another, each in its own process.
    results = {path: _run_path(path, args) for path in args.paths.split(",")}
    frozen = _frozen(args)

    print(f"model {args.model}; image {args.image}; folder {args.folder} ({args.images} images); "
          f"{os.cpu_count()} CPUs; warm figures are medians of {args.repeat}")
    rows = [
        ("start to first result (s)", "first_result_s", "{:.2f}"),
        ("warm per image, file -> answer (ms)", "warm_file_ms", "{:.1f}"),
        ("warm per image, model call (ms)", "warm_model_ms", "{:.2f}"),
        ("decode + fit only (images/s)", "decode_ips", "{:.0f}"),
        ("decode + fit, 2 reader threads (images/s)", "decode_threads_ips", "{:.0f}"),
        ("end to end, one by one (images/s)", "end_to_end_ips", "{:.0f}"),
        ("end to end, predict_files (images/s)", "batch_files_ips", "{:.0f}"),
        ("model only, batches of 32 (images/s)", "model_batch_ips", "{:.0f}"),
        ("peak memory (MB RSS)", "peak_rss_mb", "{:.0f}"),
        ("TensorFlow imported", "tensorflow_imported", "{}"),
    ]
    names = list(results)
    print(f"{'':40s}" + "".join(f"{n:>14s}" for n in names) + ("       frozen" if frozen else ""))
    for label, key, fmt in rows:
        cells = []
        for name in names:
            value = results[name].get(key)
            cells.append(f"{fmt.format(value) if value is not None else '-':>14s}")
        extra = ""
        if frozen and key in ("first_result_s", "peak_rss_mb") and key in frozen:
            extra = f"{fmt.format(frozen[key]):>13s}"
        print(f"{label:40s}" + "".join(cells) + extra)
    for name, result in results.items():
        if "error" in result:
            print(f"{name}: failed: {result['error']}")
    if "plain" in results and "warm_model_ms" in results["plain"]:
        base = results["plain"]
        for name in ("keras", "litert"):
            if "warm_model_ms" in results.get(name, {}):
                r = results[name]
                diff = max(abs(a - b) for a, b in zip(r["probabilities"], base["probabilities"]))
                print(f"{name}: warm model call {base['warm_model_ms'] / r['warm_model_ms']:.0f}x faster than plain "
                      f"model.predict, file -> answer {base['warm_file_ms'] / r['warm_file_ms']:.1f}x; "
                      f"max probability difference {diff:.1e}")
    if frozen:
        if "error" in frozen:
            print(f"frozen app: {frozen['error']}")
        print(f"build size on disk: {frozen['size_mb']:.0f} MB (dist/RetinaDesktop)")
    else:
        print("build size: no dist/RetinaDesktop (pyinstaller build.spec)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
