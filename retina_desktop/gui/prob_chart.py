"""The bar chart of every class's probability (matplotlib embedded with FigureCanvasTkAgg).

matplotlib takes about half a second to import, so the canvas is created by `attach()` once the
window is up (the import itself can be done ahead on a worker thread); until then, and before
any result, the frame shows a short text.
"""

from __future__ import annotations

from tkinter import ttk
from typing import TYPE_CHECKING

from retina_desktop.core.model_card import OperatingPoint
from retina_desktop.services.report import draw_probabilities

if TYPE_CHECKING:  # imported when the chart attaches (matplotlib is slow to import)
    from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
    from matplotlib.figure import Figure


class ProbabilityChart(ttk.Frame):
    def __init__(self, parent) -> None:
        super().__init__(parent)
        self.figure: Figure | None = None
        self.canvas: FigureCanvasTkAgg | None = None
        self._waiting = ttk.Label(self, text="Class probabilities appear here.", foreground="#555555")
        self._waiting.pack(expand=True)
        # What is on display, for tests: probabilities (name -> p), the reported class, the
        # operating point marked, and whether the bars are greyed (image not judged).
        self.values: dict[str, float] = {}
        self.label: str | None = None
        self.operating_point: OperatingPoint | None = None
        self.greyed = False

    def attach(self) -> None:
        """Create the matplotlib canvas. Tk thread only; does nothing the second time."""
        if self.canvas is not None:
            return
        from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
        from matplotlib.figure import Figure

        dpi = self.winfo_fpixels("1i")
        figure = Figure(figsize=(3.6, 1.9), dpi=dpi, layout="constrained")
        figure.patch.set_facecolor(self._background())
        canvas = FigureCanvasTkAgg(figure, master=self)
        self.figure, self.canvas = figure, canvas
        self._waiting.pack_forget()
        canvas.get_tk_widget().configure(highlightthickness=0, height=int(1.9 * dpi), width=int(3.6 * dpi))
        canvas.get_tk_widget().pack(fill="both", expand=True)
        self.show(self.values, self.label, operating_point=self.operating_point, greyed=self.greyed)

    def _background(self) -> str:
        colour = ttk.Style(self).lookup("TFrame", "background") or "#dcdad5"
        try:
            red, green, blue = (v // 257 for v in self.winfo_rgb(colour))
        except Exception:
            return "#dcdad5"
        return f"#{red:02x}{green:02x}{blue:02x}"

    def show(self, probabilities: dict[str, float], label: str | None = None, *, operating_point=None,
             greyed: bool = False) -> None:
        """Draw one bar per class, the reported one highlighted, the operating threshold (if any)
        marked on the positive class's bar, and every bar grey when the image was not judged;
        an empty dict clears. Tk thread only."""
        self.values = dict(probabilities)
        self.label, self.operating_point, self.greyed = label, operating_point, greyed
        if self.figure is None or self.canvas is None:
            return  # not attached yet: attach() draws what was kept
        self.figure.clear()
        axes = self.figure.add_subplot()
        axes.set_facecolor(self._background())
        if probabilities:
            draw_probabilities(axes, probabilities, label, operating_point=operating_point, greyed=greyed,
                               fontsize=9)
        else:
            axes.set_yticks([])
            axes.text(0.5, 0.5, "No result yet", ha="center", va="center", fontsize=9, color="0.45",
                      transform=axes.transAxes)
        axes.set_xlim(0, 1)
        axes.set_xticks([0, 0.5, 1], ["0%", "50%", "100%"], fontsize=8)
        title = "For reference only: not judged" if greyed and probabilities else "Probability per class"
        axes.set_title(title, fontsize=9, loc="left", color="0.45" if greyed else "black")
        for side in ("top", "right"):
            axes.spines[side].set_visible(False)
        self.canvas.draw_idle()
