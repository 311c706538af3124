"""Counts the command-line verbs take, bounded: a typo such as `--n 20000000` is refused in one line by the
option parser before anything runs, instead of growing for minutes and writing nothing."""

from __future__ import annotations

import argparse
from collections.abc import Callable

# Images a single `synthesize` run writes: far beyond any augmentation of scarce classes
# (hundreds to a few thousand), and still a bounded amount of disk (~10 GB at 256 px).
MAX_IMAGES = 100_000


def count(low: int, high: int) -> Callable[[str], int]:
    """An argparse `type`: a whole number from `low` to `high`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: give {low} to {high:,}")
        return value

    parse.__name__ = "count"  # argparse names the type in its messages
    return parse
