"""The `compare` verb: one markdown table of several models, in distribution and on an external set.

Each row is a model judged by `evaluate`: its test-split `metrics.json` and the `metrics.json`
of the same model on an external set (another camera). Several test files for one row (seeds
of one recipe) give each figure as mean ± spread. The table is what the model card and the
issue notes quote, so it is made by a command rather than by hand.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from retina_desktop.core.errors import UserError
from training.evaluation.tables import markdown_table
from training.experiments.config import CompareOptions

logger = logging.getLogger(__name__)
DISEASE = "diabetic_retinopathy"


def run_compare(options: CompareOptions) -> str:
    """`compare`: the markdown table of `options.row`, written to `options.out` or else said; returns it."""
    rows = []
    for item in options.row:
        name, files = item[0], item[1:]
        if not files:
            raise UserError(f'--row "{name}" names no metrics file')
        pairs = [tuple(part.split(",", 1)) if "," in part else (part, None) for part in files]
        rows.append((name, [(_read(test), _read(external) if external else None) for test, external in pairs]))
    table = render_table(rows)
    if options.out:
        from retina_desktop.core.atomic import atomic_write

        with atomic_write(Path(options.out)) as handle:
            handle.write(table)
        logger.info(f"wrote {options.out}")
    else:
        logger.info(table)
    return table


def _read(path: str) -> dict[str, Any]:
    file = Path(path)
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError as err:
        raise UserError(f'Metrics file not found: "{file}"') from err
    except (OSError, ValueError) as err:
        raise UserError(f'"{file}" is not a metrics.json written by evaluate ({err})') from err
    if not isinstance(data, dict) or "per_class" not in data:
        raise UserError(f'"{file}" is not a metrics.json written by evaluate (no per_class)')
    return data


def row_figures(test: dict[str, Any], external: dict[str, Any] | None) -> dict[str, float | None]:
    """The figures one table row shows, from one model's test and external metrics."""
    per_class = test.get("per_class", {})
    sources = test.get("per_source", {})
    worst = [c.get("auc") for s in sources.values() for c in s.get("classes", {}).values() if c.get("auc") is not None]
    figures: dict[str, float | None] = {
        "test macro AUC": test.get("macro_auc"),
        "test DR AUC": per_class.get(DISEASE, {}).get("auc"),
        "test glaucoma AUC": per_class.get("glaucoma", {}).get("auc"),
        "lowest class AUC in a source": min(worst) if worst else None,
        "test ECE (T-scaled)": test.get("ece"),
    }
    for source in ("odir", "eyepacs", "small"):
        figures[f"{source} macro AUC"] = sources.get(source, {}).get("macro_auc")
    dr = (external or {}).get("versus_normal", {}).get("diseases", {}).get(DISEASE, {})
    figures["external DR vs normal AUC"] = dr.get("auc")
    figures["external DR sensitivity"] = dr.get("sensitivity")
    figures["external healthy called normal"] = dr.get("specificity")
    figures["test heatmap mass in FOV (median)"] = (test.get("heatmap_in_fov") or {}).get("median")
    figures["external heatmap mass in FOV (median)"] = ((external or {}).get("heatmap_in_fov") or {}).get("median")
    return figures


def render_table(rows: list[tuple[str, list[tuple[dict, dict | None]]]]) -> str:
    """Markdown: figures down the side, one column per model (mean ± spread over its seeds)."""
    columns = []
    for name, runs in rows:
        per_run = [row_figures(test, external) for test, external in runs]
        columns.append((f"{name} ({len(runs)} seed{'s' if len(runs) > 1 else ''})" if len(runs) > 1 else name, per_run))
    rows = []
    for figure in columns[0][1][0]:
        cells = []
        for _, per_run in columns:
            values = [r[figure] for r in per_run if r[figure] is not None]
            if not values:
                cells.append("–")
            elif len(values) == 1:
                cells.append(f"{values[0]:.3f}")
            else:
                cells.append(f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}")
        rows.append([figure, *cells])
    return markdown_table(["figure", *(name for name, _ in columns)], rows) + "\n"
