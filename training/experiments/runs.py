"""The pipeline experiment's run folder's layout, read by both sides.

`pipeline` runs the experiment and `report` reads what it finished; both need the options
(`experiments.config.PipelineConfig`, saved as pipeline.json, and its command line), the runs they
plan (`RunKey`, `planned_runs`) and where each run's result lies (`read_result`). They live here
so that neither of the two imports the other's work.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from retina_desktop.core.errors import UserError
from training.experiments.config import CONDITIONS, SETTINGS, PipelineConfig
from training.options import flag

CONFIG_FILE = "pipeline.json"
RESULT_FILE = "result.json"


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
    """The flag that sets `PipelineConfig` field `field`."""
    return flag(PipelineConfig, field)


def command_line(config: PipelineConfig, out: str | Path) -> str:
    """The complete command that reproduces `config` in `out`, every option spelled out."""
    parts = ["python", "-m", "training", "pipeline", "--out", str(out)]
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name == "class_weighting":  # a switch: given only to turn the weights off
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
