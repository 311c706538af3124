"""What one learning curve is: its options, conditions and points (`gan-curve`'s plan).

Shared by the curve's runner (`experiments.gan_curve`) and its report (`experiments.curve_report`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from retina_desktop.errors import UserError
from training.experiments.curve_generators import GeneratorRecipe

CONDITIONS = ("real", "traditional", "gan", "both")
# The shipped generator learnt from every training image, so it may join only the point that
# holds every real image.
SHIPPED = "shipped-gan"
CONFIG_FILE = "curve.json"
ALL = 0  # the point that keeps every real image of the class


@dataclass(frozen=True)
class CurveConfig:
    data: str
    scarce: tuple[str, ...] = ("glaucoma", "cataract")
    points: tuple[int, ...] = (25, 50, 100, ALL)
    seeds: int = 5
    added: int = 250  # images added to the class in every condition but `real`
    recipe: GeneratorRecipe = field(default_factory=GeneratorRecipe)
    size: int = 224  # the shipped screening model's input
    C: float = 0.001  # the shipped head's settings (models/config.json "chosen")
    referable_weight: float = 3.0
    mild_weight: float = 0.25
    shipped_generator: str = ""  # also judge this generator at the point of every real image

    def to_dict(self) -> dict:
        return asdict(self)


def conditions_at(config: CurveConfig, n: int) -> tuple[str, ...]:
    """The conditions fitted at point `n`."""
    return CONDITIONS + ((SHIPPED,) if config.shipped_generator and n == ALL else ())


def point_name(n: int) -> str:
    return "all" if n == ALL else str(n)


def parse_points(text: str, option: str = "--points") -> tuple[int, ...]:
    values = []
    for part in text.split(","):
        part = part.strip()
        if part == "all":
            values.append(ALL)
            continue
        if not part.isdigit() or int(part) < 1:
            raise UserError(f"{option} {text}: give positive whole numbers or 'all', separated by commas")
        values.append(int(part))
    return tuple(values)


def command_line(config: CurveConfig, out: str | Path) -> str:
    """The command that makes (or resumes) this curve."""
    points = ",".join(point_name(n) for n in config.points)
    return (f"python -m training gan-curve --data {config.data} --out {out} --scarce {','.join(config.scarce)} "
            f"--points {points} --seeds {config.seeds} --added {config.added} "
            f"--base-epochs {config.recipe.base_epochs} --finetune-steps {config.recipe.finetune_steps}"
            + (f" --shipped-generator {config.shipped_generator}" if config.shipped_generator else ""))
