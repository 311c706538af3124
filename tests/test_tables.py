"""The one Markdown table writer (training/evaluation/tables.py)."""

from __future__ import annotations

from training.evaluation.tables import markdown_table


def test_a_table_has_its_header_rule_and_rows():
    table = markdown_table(["class", "n", "AUC"], [["glaucoma", 12, "0.910"], ["normal", 30, 0.5]])
    assert table == "| class | n | AUC |\n|---|---|---|\n| glaucoma | 12 | 0.910 |\n| normal | 30 | 0.5 |"


def test_none_is_a_blank_cell_and_an_empty_string_is_written_as_text():
    assert markdown_table([None, "a"], [["x", None], ["y", ""]]).splitlines() == [
        "| | a |", "|---|---|", "| x | |", "| y |  |"]


def test_a_table_without_rows_is_its_header_and_rule():
    assert markdown_table(["figure", "model"], []) == "| figure | model |\n|---|---|"


def test_the_console_form_has_no_outer_pipes_and_no_rule():
    table = markdown_table(["generator", "KID a", "copies"], [["g.keras", "0.012", 3]], console=True)
    assert table == "generator | KID a | copies\ng.keras | 0.012 | 3"
