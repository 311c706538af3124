"""Labelled image folders: discovery, patient-grouped splits, and cached decoded arrays.

A data set is a folder of class sub-folders (`DIR/<class>/<image>`), optionally with a
`splits.csv` (`file,label,group,split`, and optionally `source`: which camera or public data set
an image came from, so that figures can be reported per source). Without one, `make_group_split` assigns whole groups
(patients, found by a regex over file names) to train/val/test, stratified by class, so that no
patient is on both sides. Pixels come from the app's own loader and `fit_image`, so training and
the app preprocess identically. A data set may hold only some of a model's classes (an external
test set): `class_indices` maps its class names onto the model's and refuses one the model lacks.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retina_desktop.core.errors import UserError
from retina_desktop.core.model_card import InputSpec
from retina_desktop.core.paths import user_cache_dir
from retina_desktop.imaging.decode import IMAGE_EXTENSIONS, load_image
from retina_desktop.imaging.preprocessing import fit_image

SPLITS = ("train", "val", "test")
# Not a split of its own: every image of a data set, for judging an external set whole.
ALL_SPLITS = "all"
# Optional per-image diabetic-retinopathy grades beside the class folders (Messidor-2's
# adjudicated grades are shipped this way): `file,grade` and optionally `group`.
GRADES_FILE = "grades.csv"
ICDR_GRADES = range(5)
UNGRADED = -1  # an ungraded eye in grade arrays (`grades_of`)
# ODIR-style "123_left.jpg" / "123_right.jpg", OCT "1887_OI_o_1.jpg": the leading number is
# the patient. Files without one are their own group.
DEFAULT_GROUP_PATTERN = r"^(\d+)[_-]"


@dataclass(frozen=True)
class Sample:
    file: str  # relative to the data set's root, with forward slashes
    label: str
    group: str
    split: str
    # The camera or public data set the image came from ("" when the splits.csv has no source
    # column): evaluation reports figures per source from it.
    source: str = ""
    # The ICDR diabetic-retinopathy grade (0 none .. 4 proliferative) where the data set gives
    # one (a `grade` column of splits.csv, or a grades.csv); None when it does not.
    grade: int | None = None


@dataclass
class Dataset:
    root: Path
    classes: list[str]
    samples: list[Sample]

    def subset(self, split: str) -> list[Sample]:
        """The samples of one split; "all" is every sample (an external set judged whole)."""
        if split == ALL_SPLITS:
            return list(self.samples)
        return [s for s in self.samples if s.split == split]

    def counts(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {c: dict.fromkeys(SPLITS, 0) for c in self.classes}
        for sample in self.samples:
            table[sample.label][sample.split] += 1
        return table


def discover_classes(root: Path) -> list[str]:
    """Class names: the sub-folders of `root` (hidden ones aside), sorted.

    A sub-folder without images is refused rather than skipped: skipping it would train a model
    with one class fewer than the data set shows. A data set may lack a folder for one of a
    model's classes (an external test set), which `class_indices` allows.
    """
    if not root.is_dir():
        raise UserError(f'Data folder not found: "{root}"')
    folders = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)
    for folder in folders:
        if not any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir()):
            raise UserError(
                f'The class folder "{folder}" holds no images ({", ".join(IMAGE_EXTENSIONS)}); '
                "add its images or remove the folder"
            )
    classes = [d.name for d in folders]
    if len(classes) < 2:
        raise UserError(
            f'"{root}" needs at least two class sub-folders with images in them '
            f"(found {classes or 'none'})"
        )
    return classes


def load_dataset(
    root: str | Path,
    *,
    group_pattern: str = DEFAULT_GROUP_PATTERN,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """Read `root`, using its splits.csv when present and a grouped split otherwise."""
    root = Path(root)
    classes = discover_classes(root)
    splits_file = root / "splits.csv"
    grades, groups = _read_grades(root, root / GRADES_FILE) if (root / GRADES_FILE).exists() else ({}, {})
    if splits_file.exists():
        samples = _read_splits(root, splits_file, classes)
    else:
        files = [
            (f"{label}/{p.name}", label)
            for label in classes
            for p in sorted((root / label).iterdir())
            if p.suffix.lower() in IMAGE_EXTENSIONS
        ]
        # A grades.csv's group (a patient's exam) wins over the file-name guess.
        samples = make_group_split(files, group_pattern, val_fraction, test_fraction, seed, groups=groups)
    if grades:
        samples = [dataclasses.replace(s, grade=grades.get(s.file, s.grade)) for s in samples]
    return Dataset(root=root, classes=classes, samples=samples)


def _parse_grade(value: str | None, where: str) -> int | None:
    """An ICDR grade from a CSV cell: empty means ungraded; anything but 0-4 is refused."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        grade = int(float(text))
    except ValueError:
        grade = -1
    if grade not in ICDR_GRADES or float(text) != grade:
        raise UserError(f"{where}: grade must be a whole ICDR grade from 0 to 4 or empty, not {text!r}")
    return grade


def _read_grades(root: Path, grades_file: Path) -> tuple[dict[str, int | None], dict[str, str]]:
    """({file: grade}, {file: group}) from a grades.csv (groups empty without a group column);
    a file outside `root` or not in it is refused."""
    with open(grades_file, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        if not {"file", "grade"} <= columns:
            raise UserError(f'"{grades_file}" must have the columns file and grade')
        grades: dict[str, int | None] = {}
        groups: dict[str, str] = {}
        for line, row in enumerate(reader, start=2):
            where = f'"{grades_file}" line {line}'
            file = _inside(root, row["file"], where)
            grades[file] = _parse_grade(row["grade"], where)
            if "group" in columns:
                groups[file] = (row["group"] or "").strip() or file
        return grades, groups


def drawn_order(samples: list[Sample], label: str, seed: int = 0) -> list[Sample]:
    """The samples of `label` in a reproducible random order: the first n of it are a draw of n,
    and every smaller draw is inside every larger one. Depends only on (seed, label, file names),
    not on the order the samples come in."""
    import zlib

    members = sorted((s for s in samples if s.label == label), key=lambda s: s.file)
    rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
    return [members[i] for i in rng.permutation(len(members))]


def grades_of(samples: list[Sample]) -> np.ndarray:
    """Each sample's ICDR grade as an int array, UNGRADED (-1) where the data gives none."""
    return np.array([UNGRADED if s.grade is None else s.grade for s in samples], dtype=np.int64)


def _inside(root: Path, file: str, where: str) -> str:
    """`file` as given, once it is known to name a file inside `root` (no `..`, no absolute
    path): a list of files must never make training read outside its data folder."""
    parts = Path(file).parts
    if Path(file).is_absolute() or ".." in parts or not parts:
        raise UserError(f'{where}: "{file}" is outside the data folder {root}; name files relative to it')
    if not (root / file).is_file():
        raise UserError(f'{where}: the file "{file}" is not in {root}')
    return file


def _read_splits(root: Path, splits_file: Path, classes: list[str]) -> list[Sample]:
    """The rows of `splits_file`, refusing what would train or judge on the wrong images: an
    unknown label or split, a file that is not there (found now, not hours into decoding), and
    a patient in two splits (their other eye would leak into the test set)."""
    samples = []
    first_seen: dict[str, tuple[str, int]] = {}  # group -> (split, line) where it first appears
    with open(splits_file, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"file", "label", "split"} - set(reader.fieldnames or [])
        if missing:
            raise UserError(f'"{splits_file}" lacks the column(s) {sorted(missing)}')
        for line, row in enumerate(reader, start=2):
            if row["label"] not in classes:
                raise UserError(
                    f'"{splits_file}" line {line}: label "{row["label"]}" has no folder in {root}'
                )
            if row["split"] not in SPLITS:
                raise UserError(f'"{splits_file}" line {line}: split must be one of {SPLITS}')
            _inside(root, row["file"], f'"{splits_file}" line {line}')
            group = row.get("group") or row["file"]
            split, first_line = first_seen.setdefault(group, (row["split"], line))
            if split != row["split"]:
                raise UserError(
                    f'"{splits_file}" line {line}: group "{group}" is in the {row["split"]} split here and in '
                    f"the {split} split on line {first_line}; a patient belongs to one split only"
                )
            source = (row.get("source") or "").strip()
            grade = _parse_grade(row.get("grade"), f'"{splits_file}" line {line}')
            samples.append(Sample(row["file"], row["label"], group, row["split"], source, grade))
    return samples


def group_of(file_name: str, pattern: re.Pattern[str]) -> str:
    match = pattern.search(Path(file_name).name)
    return match.group(1) if match else Path(file_name).stem


def make_group_split(
    files: list[tuple[str, str]],
    group_pattern: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    groups: dict[str, str] | None = None,
) -> list[Sample]:
    """Assign whole groups to splits, stratified by each group's majority class.

    A file's group is `groups[file]` when the data set names it, else found by `group_pattern`.

    Groups of one class are dealt out per class in a seeded random order, filling test, then
    val, then train, so every class keeps about the requested fractions.
    """
    pattern = re.compile(group_pattern)
    members: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for file, label in files:
        group = groups.get(file) if groups else None
        members[group or group_of(file, pattern)].append((file, label))
    by_class: dict[str, list[str]] = defaultdict(list)
    for group, items in sorted(members.items()):
        majority = Counter(label for _, label in items).most_common(1)[0][0]
        by_class[majority].append(group)
    rng = np.random.default_rng(seed)
    split_of_group: dict[str, str] = {}
    for label in sorted(by_class):
        groups = by_class[label]
        rng.shuffle(groups)
        total = sum(len(members[g]) for g in groups)
        targets = {"test": test_fraction * total, "val": val_fraction * total}
        filled = {"test": 0, "val": 0}
        for group in groups:
            size = len(members[group])
            split = next((s for s in ("test", "val") if filled[s] + size / 2 <= targets[s]), "train")
            if split != "train":
                filled[split] += size
            split_of_group[group] = split
    return [
        Sample(file, label, group, split_of_group[group])
        for group, items in sorted(members.items())
        for file, label in items
    ]


def write_splits(dataset: Dataset, path: Path) -> None:
    """Record the split used, so that a run can be repeated and judged on the same test set."""
    from retina_desktop.core.atomic import atomic_write

    # The source column only when there is one to keep: older readers expect four columns.
    with_source = any(s.source for s in dataset.samples)
    with atomic_write(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "group", "split"] + (["source"] if with_source else []))
        for s in dataset.samples:
            writer.writerow([s.file, s.label, s.group, s.split] + ([s.source] if with_source else []))


def display_aspect(dataset: Dataset, samples: list[Sample], fit: str) -> float:
    """Width / height at which square images fitted by `fit` are meant to be seen.

    A crop or a pad keeps the picture's proportions, so its square is seen square. A stretch
    squeezes them (a 704 x 286 OCT B-scan into 128 x 128), and the training images' median
    proportions undo that for display: what a generator trained on them records in its sidecar.
    """
    if fit != "stretch" or not samples:
        return 1.0
    ratios = []
    for sample in samples:
        image = load_image(dataset.root / sample.file).rgb
        ratios.append(image.width / image.height)
    return round(float(np.median(ratios)), 3)


def class_indices(dataset: Dataset, classes: list[str], model: str | Path) -> dict[str, int]:
    """Each of the data set's class names -> its index in `classes` (a model's class list).

    A data set may hold a subset of the model's classes (an external set with only diabetic
    retinopathy and normal photographs); a class the model does not know cannot be judged.
    """
    unknown = [name for name in dataset.classes if name not in classes]
    if unknown:
        raise UserError(
            f'The data set "{dataset.root}" has the class(es) {unknown}, which the model "{model}" does '
            f"not know (its classes: {classes}); rename or remove those folders"
        )
    return {name: classes.index(name) for name in dataset.classes}


def load_arrays(
    dataset: Dataset,
    samples: list[Sample],
    spec: InputSpec,
    *,
    progress: bool = True,
    index_of: dict[str, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode and fit `samples` to `spec` as uint8 (n, h, w, 3) with integer labels.

    Labels index the data set's own classes, or a model's when `index_of` (from
    `class_indices`) is given. Decoded arrays are cached in the user's cache folder, keyed by
    the files, their sizes and modification times, and the input spec: a second run skips the
    decoding entirely.
    """
    key = _cache_key(dataset.root, samples, spec)
    cache = user_cache_dir() / "arrays" / f"{key}.npz"
    if index_of is None:
        index_of = {name: i for i, name in enumerate(dataset.classes)}
    labels = np.array([index_of[s.label] for s in samples], dtype=np.int32)
    if cache.exists():
        with np.load(cache) as stored:
            return stored["images"], labels
    from tqdm import tqdm

    images = np.zeros((len(samples), spec.height, spec.width, 3), dtype=np.uint8)
    for i, sample in enumerate(
        tqdm(samples, desc="decoding images", unit="img", disable=not progress, leave=False)
    ):
        images[i] = fit_image(load_image(dataset.root / sample.file).rgb, spec)
    cache.parent.mkdir(parents=True, exist_ok=True)
    from retina_desktop.core.atomic import atomic_save

    atomic_save(cache, lambda tmp: np.savez(tmp, images=images))
    return images, labels


def _cache_key(root: Path, samples: list[Sample], spec: InputSpec) -> str:
    digest = hashlib.sha256(repr(spec).encode())
    if spec.fit == "fov":  # a better rim finder frames the same files differently
        from retina_desktop.imaging.fov import FOV_VERSION

        digest.update(f"fov {FOV_VERSION}".encode())
    for s in samples:
        stat = (root / s.file).stat()
        digest.update(f"{root / s.file}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]
