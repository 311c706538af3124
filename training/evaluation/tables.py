"""The one Markdown table writer: every table in a report, a model card or the console is made
here, so that they all look alike and none hand-counts its `|---|` rule."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(headers: Sequence[str | None], rows: Iterable[Sequence[object]], *, console: bool = False) -> str:
    """A pipe table: the header row, the `|---|` rule and one line per row, joined by newlines.

    Each cell is written as `str(cell)`; None leaves a cell blank (`| |`). `console`: the bare
    form printed to a terminal instead, cells joined by " | " with no outer pipes and no rule.
    """
    if console:
        return "\n".join(" | ".join(_text(cell) for cell in line) for line in (headers, *rows))
    lines = [_row(headers), "|" + "---|" * len(headers)]
    lines += [_row(row) for row in rows]
    return "\n".join(lines)


def _row(cells: Sequence[object]) -> str:
    return "|" + "|".join(" " if cell is None else f" {cell} " for cell in cells) + "|"


def _text(cell: object) -> str:
    return "" if cell is None else str(cell)
