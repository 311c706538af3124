"""Dropping files onto the window, where tkinterdnd2 (the tkdnd extension) is available.

Optional: without tkinterdnd2, or where its Tcl extension cannot load, `enable_file_drop`
returns False and the rest of the app works as before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def enable_file_drop(root, widgets, on_drop: Callable[[list[Path]], None]) -> bool:
    """Make `widgets` accept dropped files; `on_drop` gets their paths. True if it worked."""
    try:
        from tkinterdnd2 import DND_FILES, TkinterDnD

        TkinterDnD._require(root)
    except Exception:  # not installed, or the tkdnd binary does not load on this platform
        return False

    def dropped(event):
        paths = [Path(p) for p in root.tk.splitlist(event.data) if p]
        if paths:
            on_drop(paths)
        return event.action

    try:
        for widget in widgets:
            widget.drop_target_register(DND_FILES)
            widget.dnd_bind("<<Drop>>", dropped)
    except Exception:
        return False
    return True
