"""What one learning curve is: its options, conditions and points (`gan-curve`'s plan).

Shared by the curve's runner (`experiments.gan_curve`) and its report (`experiments.curve_report`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from retina_desktop.core.errors import UserError
from training.experiments.curve_generators import RECIPES, GeneratorRecipe

CONDITIONS = ("real", "traditional", "gan", "both")
# The shipped generator learnt from every training image, so it may join only the point that
# holds every real image.
SHIPPED = "shipped-gan"
CONFIG_FILE = "curve.json"
ALL = 0  # the point that keeps every real image of the class


@dataclass(frozen=True)
class CurveConfig:
    data: str
    modality: str = "fundus"
    scarce: tuple[str, ...] = ("glaucoma", "cataract")
    points: tuple[int, ...] = (25, 50, 100, ALL)
    seeds: int = 5
    added: int = 250  # images added to the class in every condition but `real`
    recipe: GeneratorRecipe = field(default_factory=GeneratorRecipe)
    size: int = 224  # the frozen backbone's input (the shipped screening model's)
    # The fast protocol's head: the shipped fundus head's settings (models/config.json "chosen"),
    # or, with C None, L2 strength and grade weights searched on val for every fit.
    C: float | None = 0.001
    referable_weight: float = 3.0
    mild_weight: float = 0.25
    shipped_generator: str = ""  # also judge this generator at the point of every real image
    confirm: str = "searched"
    confirm_model: str = ""  # with confirm "cnn": the shipped model whose training recipe is rerun

    def to_dict(self) -> dict:
        return asdict(self)


# What differs between the modalities' curves when an option is not given. The OCT data set
# has one scarce class (DME, 88 training scans), so its points stop at 50 before "all"; no
# shipped OCT head exists to hold, so each fit's head is searched on val, and the confirmation
# trains the shipped OCT model's own recipe (a small CNN from scratch, not frozen features).
MODALITY_DEFAULTS = {
    "fundus": {"scarce": ("glaucoma", "cataract"), "points": (25, 50, 100, ALL),
               "shipped_generator": "models/generator.keras"},
    "oct": {"scarce": ("DME",), "points": (25, 50, ALL), "C": None, "confirm": "cnn",
            "confirm_model": "models/oct/keras_model.h5", "shipped_generator": "models/oct/generator.keras"},
}


def modality_config(data: str, modality: str, **given) -> CurveConfig:
    """The curve of `modality` with its defaults, then every option `given` that is not None."""
    if modality not in MODALITY_DEFAULTS:
        raise UserError(f"--modality {modality}: one of {', '.join(MODALITY_DEFAULTS)}")
    recipe = RECIPES[modality]
    steps = {k: given.pop(k) for k in ("base_epochs", "finetune_steps") if given.get(k) is not None}
    given = {k: v for k, v in given.items() if v is not None}
    return CurveConfig(data=data, modality=modality, recipe=replace(recipe, **steps),
                       **{**MODALITY_DEFAULTS[modality], **given})


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
    return (f"python -m training gan-curve --data {config.data} --out {out}"
            + (f" --modality {config.modality}" if config.modality != "fundus" else "")
            + f" --scarce {','.join(config.scarce)} "
            f"--points {points} --seeds {config.seeds} --added {config.added} "
            f"--base-epochs {config.recipe.base_epochs} --finetune-steps {config.recipe.finetune_steps}"
            + f" --shipped-generator '{config.shipped_generator}'")
