"""The bar chart of every class's probability (matplotlib embedded with FigureCanvasTkAgg).

matplotlib takes about half a second to import, so the canvas is created by `attach()` once the
window is up (the import itself can be done ahead on a worker thread); until then, and before
any result, the frame shows a short text.
"""

from __future__ import annotations

from tkinter import ttk

from ..report import display_name

_TOP = "#1f5f8b"
_OTHER = "#9bb7cc"


class ProbabilityChart(ttk.Frame):
    def __init__(self, parent) -> None:
        super().__init__(parent)
        self.figure = None
        self.canvas = None
        self._waiting = ttk.Label(self, text="Class probabilities appear here.", foreground="#555555")
        self._waiting.pack(expand=True)
        # The probabilities on display (name -> p), for tests.
        self.values: dict[str, float] = {}

    def attach(self) -> None:
        """Create the matplotlib canvas. Tk thread only; does nothing the second time."""
        if self.canvas is not None:
            return
        from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
        from matplotlib.figure import Figure

        dpi = self.winfo_fpixels("1i")
        self.figure = Figure(figsize=(3.6, 1.9), dpi=dpi, layout="constrained")
        self.figure.patch.set_facecolor(self._background())
        self.canvas = FigureCanvasTkAgg(self.figure, master=self)
        self._waiting.pack_forget()
        self.canvas.get_tk_widget().configure(highlightthickness=0, height=int(1.9 * dpi), width=int(3.6 * dpi))
        self.canvas.get_tk_widget().pack(fill="both", expand=True)
        self.show(self.values)

    def _background(self) -> str:
        colour = ttk.Style(self).lookup("TFrame", "background") or "#dcdad5"
        try:
            red, green, blue = (v // 257 for v in self.winfo_rgb(colour))
        except Exception:
            return "#dcdad5"
        return f"#{red:02x}{green:02x}{blue:02x}"

    def show(self, probabilities: dict[str, float], label: str | None = None) -> None:
        """Draw one bar per class, the top one highlighted; empty dict clears. Tk thread only."""
        self.values = dict(probabilities)
        if self.figure is None:
            return
        self.figure.clear()
        axes = self.figure.add_subplot()
        axes.set_facecolor(self._background())
        if probabilities:
            names = list(probabilities)
            top = label if label in probabilities else max(probabilities, key=probabilities.get)
            positions = list(range(len(names)))[::-1]
            values = [probabilities[n] for n in names]
            axes.barh(positions, values, color=[_TOP if n == top else _OTHER for n in names], height=0.65)
            axes.set_yticks(positions, [display_name(n) for n in names], fontsize=9)
            for y, value in zip(positions, values):
                if value > 0.8:  # no room after the bar: write inside its end, white on the fill
                    axes.text(value - 0.02, y, f"{value:.0%}", va="center", ha="right", fontsize=8, color="white")
                else:
                    axes.text(value + 0.02, y, f"{value:.0%}", va="center", fontsize=8)
        else:
            axes.set_yticks([])
            axes.text(0.5, 0.5, "No result yet", ha="center", va="center", fontsize=9, color="0.45",
                      transform=axes.transAxes)
        axes.set_xlim(0, 1)
        axes.set_xticks([0, 0.5, 1], ["0%", "50%", "100%"], fontsize=8)
        axes.set_title("Probability per class", fontsize=9, loc="left")
        for side in ("top", "right"):
            axes.spines[side].set_visible(False)
        self.canvas.draw_idle()
