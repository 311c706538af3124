"""Evaluation figures into a model's sidecar: its own test figures (with the temperature and
operating point they came with), or figures on an external data set beside them under
`metrics["external"][name]`, never in place of them."""

from __future__ import annotations

from pathlib import Path

from retina_desktop.inference.model_files import read_sidecar, sidecar_path_for, write_sidecar


def store_test_metrics(model_path: Path, loaded, metrics: dict, temperature: float, decision: dict) -> None:
    """The model's own test figures, temperature and operating point into its sidecar; figures
    stored earlier on external data sets are kept."""
    sidecar = sidecar_path_for(model_path)
    metadata = read_sidecar(sidecar) or loaded
    external = metadata.metrics.get("external")
    metadata.temperature = round(temperature, 4)
    metadata.decision = decision
    metadata.metrics = {k: v for k, v in metrics.items() if k != "confusion_matrix"}
    metadata.metrics["confusion_matrix"] = metrics["confusion_matrix"]
    if external:
        metadata.metrics["external"] = external
    write_sidecar(sidecar, metadata)


def store_external_metrics(model_path: Path, loaded, metrics: dict, name: str, command: str | None) -> None:
    """Figures on an external data set under `metrics["external"][name]`, with the command that
    measured them; temperature, operating point and test figures stay as they were."""
    sidecar = sidecar_path_for(model_path)
    metadata = read_sidecar(sidecar) or loaded
    entry = dict(metrics)
    entry["command"] = command or "?"
    metadata.metrics.setdefault("external", {})[name] = entry
    write_sidecar(sidecar, metadata)  # atomic: a crash leaves the old sidecar whole
