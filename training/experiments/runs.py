"""The pipeline experiment's options and its run folder's layout, read by both sides.

`pipeline` runs the experiment and `report` reads what it finished; both need the
options (`PipelineConfig`, saved as pipeline.json), the runs they plan (`RunKey`,
`planned_runs`) and where each run's result lies (`read_result`). They live here so that
neither of the two imports the other's work.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from retina_desktop.core.errors import UserError

# The four conditions of the experiment, and the confidence-filtered GAN conditions (the lever of
# issue #21: GAN images that a classifier trained on real images does not take for their own
# class are dropped before use). Only the frozen classifier runs the filtered ones.
CORE_CONDITIONS = ("none", "traditional", "gan", "gan+traditional")
FILTERED_CONDITIONS = ("filtered-gan", "filtered-gan+traditional")
CONDITIONS = CORE_CONDITIONS + FILTERED_CONDITIONS
CLASSIFIERS = ("small", "frozen-lite0")
SETTINGS = ("cut", "full")
# Options that only choose which runs to do; they may change between invocations on one folder.
SELECTION = ("settings", "conditions", "seeds")
CONFIG_FILE = "pipeline.json"
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class PipelineConfig:
    """Every option of one experiment; saved as pipeline.json in the run folder."""

    data: str
    scarce: tuple[str, ...]
    scarce_n: int = 50
    cut_seed: int = 0
    settings: tuple[str, ...] = SETTINGS
    conditions: tuple[str, ...] = CORE_CONDITIONS
    seeds: tuple[int, ...] = (0, 1, 2)
    modality: str = "fundus"
    # The classifier: `small` (training.classifier.trainer, trained end to end) or `frozen-lite0`
    # (ImageNet EfficientNet-Lite0 features and a softmax head, training.experiments.features);
    # square input either way.
    classifier: str = "small"
    views: int = 3  # frozen-lite0: augmented views per training image in the traditional conditions
    size: int = 64
    fit: str = "crop"
    width_multiplier: float = 1.0
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 2e-3
    patience: int = 10
    class_weighting: bool = True
    # The GAN: training.gan.trainer's ConditionalGAN.
    gan_size: int = 64
    gan_width: int = 16
    gan_latent_dim: int = 128
    gan_epochs: int = 100
    gan_batch_size: int = 16
    gan_loss: str = "hinge"
    gan_r1_gamma: float = 0.0
    gan_classes: str = "all"  # "all": scarce classes borrow from plentiful ones; or "scarce"
    gan_target: int = 0  # images per scarce class after topping up; 0: the largest class's count
    # A generator already trained on the whole train split (same data, fit and size), used as the
    # full setting's GAN instead of training one: the shipped generator is exactly that GAN.
    gan_full: str = ""
    # A data set from another camera, judged by every run beside the test split (its test split,
    # classes a subset of the data's); never trained or tuned on.
    external: str = ""
    bootstrap: int = 1000

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PipelineConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**values)

    def cut_label(self) -> str:
        return f"{self.scarce_n} images per scarce class"


@dataclass(frozen=True)
class RunKey:
    setting: str
    condition: str
    seed: int

    def folder(self, out: Path) -> Path:
        return out / "runs" / self.setting / self.condition.replace("+", "-") / f"seed{self.seed}"

    def __str__(self) -> str:
        return f"{self.setting} / {self.condition} / seed {self.seed}"


def option_name(field: str) -> str:
    return "--no-class-weights" if field == "class_weighting" else "--" + field.replace("_", "-")


def command_line(config: PipelineConfig, out: str | Path) -> str:
    """The complete command that reproduces `config` in `out`, every option spelled out."""
    parts = ["python", "-m", "training", "pipeline", "--out", str(out)]
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name == "class_weighting":
            parts += [] if value else [option_name(field.name)]
            continue
        parts += [option_name(field.name), ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return shlex.join(parts)


def planned_runs(config: PipelineConfig) -> list[RunKey]:
    """Every run, `cut` first (the target is judged there), all conditions of a seed together."""
    return [
        RunKey(setting, condition, seed)
        for setting in SETTINGS
        if setting in config.settings
        for seed in config.seeds
        for condition in CONDITIONS
        if condition in config.conditions
    ]



# --- the run folder ------------------------------------------------------------------------


def read_config(out: Path) -> tuple[PipelineConfig, dict]:
    path = out / CONFIG_FILE
    if not path.is_file():
        raise UserError(f'"{path}" not found: {out} is not a pipeline run folder (start one without --report-only)')
    stored = json.loads(path.read_text())
    return PipelineConfig.from_dict(stored["config"]), stored


def read_result(out: Path, key: RunKey) -> dict | None:
    path = key.folder(out) / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None
