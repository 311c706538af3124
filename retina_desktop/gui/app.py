"""`run_app`: open the main window (and, given an image, analyse it at once).

Called by `python -m retina_desktop [IMAGE] [--model M]`. Nothing heavy happens here: the
window comes first, TensorFlow and the model load on a worker thread afterwards.
"""

from __future__ import annotations

import sys
import tkinter as tk
from pathlib import Path

from retina_desktop.core.paths import assets_dir
from retina_desktop.gui.main_window import MainWindow
from retina_desktop.services.classify import Classifier


def run_app(
    image: str | Path | None = None,
    model: str | Path | None = None,
    labels: str | Path | None = None,
    trust_model: bool = False,
) -> int:
    """Run the desktop application until its window closes; returns the exit status."""
    try:
        root = tk.Tk(className="RetinaDesktop")
    except tk.TclError as err:
        print(f"error: cannot open the window ({err}); is a display available?", file=sys.stderr)
        return 1
    icon = assets_dir() / "icon.png"
    if icon.exists():
        root.iconphoto(True, tk.PhotoImage(file=str(icon)))
    classifier = Classifier(model, labels, trust_model=trust_model)
    MainWindow(root, classifier, image=image, classifier_factory=Classifier, trust_model=trust_model)
    root.mainloop()
    return 0
