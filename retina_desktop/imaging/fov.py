"""Field-of-view standardisation: every camera's fundus photograph framed the same way.

A fundus camera images a disc of retina on a black frame, but each camera frames it its own
way: a full circle in a square (ODIR), a circle clipped at the top and bottom with a notch on
the rim (EyePACS), an oval from a photograph stretched to a square, a circle wider than a raw
1000 x 1000 sensor. A network trained on one framing learns the frame. So, before anything
else, `find_field_of_view` fits the fundus's rim (a circle, or an axis-aligned ellipse where a
photograph was stretched) from the rim points that lie inside the picture, and
`standardise_field_of_view` centres it in a square whose side is its diameter, pads what the
camera cut off, blacks out everything outside it and resizes: the AutoMorph-style framing.
Images without a rim (a zoomed-in photograph, an OCT scan, a cat) come back as None and are
left to the caller's ordinary fitting.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

# Changes whenever the same file would be framed differently (training's array cache keys on it).
FOV_VERSION = 5
# Rim detection runs on a copy this size: the fit is sub-pixel there, and full 12-megapixel
# photographs would cost 100x the time for no better circle.
DETECT_SIDE = 256
# A fundus rim is where the picture turns into the frame's colour; JPEG noise on the frame
# differs from it by up to about 10, the dimmest gradable retina edges by 20-30.
MIN_THRESHOLD, MAX_THRESHOLD = 10.0, 30.0
# Rim points closer than this to the picture's edge are the camera's cut, not the rim.
EDGE_MARGIN = 2
# A field of view is believed only if its rim points spread over at least this much of its
# turn (a third: four corners of a circle clipped on every side will do, one short arc will
# not), it is not tiny, and its fit explains the rim to within a few per cent.
MIN_ARC_FRACTION = 1 / 3
MIN_RADIUS_FRACTION = 0.2
MAX_RESIDUAL_FRACTION = 0.03
MIN_FILL = 0.85
# A row or column of the rim longer than this fraction of the disc's width is a straight cut.
STRAIGHT_CUT = 0.3
# Below this axis ratio a rim is called a circle; above, the photograph was stretched.
ELLIPSE_RATIO = 1.04
# No camera or resize in our data stretches a fundus beyond 1.51 (fundus4's small set, ODIR);
# a wilder ellipse is a fit to the four dark corners of a photograph whose disc fills the frame
# (47 EyePACS photographs were squeezed into a strip by it), so it is no rim at all.
MAX_ELLIPSE_RATIO = 1.6


@dataclass(frozen=True)
class Circle:
    """A field of view in pixels of the image it was found in: centre and radii.

    `ry` differs from `r` only for a stretched photograph (its circle became an ellipse).
    """

    cx: float
    cy: float
    r: float
    ry: float | None = None

    @property
    def radius_y(self) -> float:
        return self.r if self.ry is None else self.ry


class _Unsearched:
    """The type of UNSEARCHED (a sentinel that type checkers can tell from None)."""

    def __repr__(self) -> str:
        return "UNSEARCHED"


# Passed where a field of view may be given: "nobody has looked yet", unlike None, which says
# "looked, and there is none", so a caller that searched once never makes the next step search
# again (an image without a rim was searched three times per prediction).
UNSEARCHED = _Unsearched()


def find_field_of_view(rgb: np.ndarray | Image.Image) -> Circle | None:
    """The fundus's field of view in `rgb` (an (h, w, 3) uint8 array or an RGB picture), or None
    when there is no rim."""
    return _search(rgb)[0]


def _search(rgb: np.ndarray | Image.Image) -> tuple[Circle | None, np.ndarray]:
    """(the field of view in `rgb`'s pixels or None, the retina mask at detection size it was
    fitted to)."""
    if isinstance(rgb, Image.Image):
        width, height = rgb.size
    else:
        height, width = rgb.shape[:2]
    small = _detection_copy(rgb)
    region = _retina_mask(small)
    return _to_picture(_fit_rim(region), small.shape[:2], (height, width)), region


def _to_picture(found: Circle | None, small_shape: tuple[int, int], shape: tuple[int, int]) -> Circle | None:
    """A field of view found on the detection copy, in the picture's pixels."""
    if found is None:
        return None
    height, width = shape
    sy, sx = small_shape[0] / height, small_shape[1] / width
    # Pixel centres: index i covers [i, i+1) in the small image and maps back by 1/scale.
    cx, cy = (found.cx + 0.5) / sx - 0.5, (found.cy + 0.5) / sy - 0.5
    if found.ry is None:  # a circle stays a circle (the two scales differ only by rounding)
        return Circle(cx, cy, 2 * found.r / (sx + sy))
    return Circle(cx, cy, found.r / sx, found.ry / sy)


def _detection_copy(rgb: np.ndarray | Image.Image) -> np.ndarray:
    """`rgb` box-filtered down to at most DETECT_SIDE on its long side (unchanged if smaller)."""
    picture = rgb if isinstance(rgb, Image.Image) else None
    width, height = rgb.size if isinstance(rgb, Image.Image) else (rgb.shape[1], rgb.shape[0])
    scale = DETECT_SIDE / max(height, width)
    if scale >= 1:
        return np.asarray(rgb, np.uint8)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    picture = picture if picture is not None else Image.fromarray(np.asarray(rgb, np.uint8))
    return np.asarray(picture.resize(size, Image.Resampling.BOX))


def _retina_mask(rgb: np.ndarray) -> np.ndarray:
    """The retina: what differs from the frame (the corners' colour), specks wiped by an
    opening, and filled between its first and last pixel along every row and column (a disc is
    convex, so dark lesions inside it stay retina). Pillow and numpy only: the packaged app
    ships without scipy."""
    frame = frame_colour(rgb)
    # One channel at a time, in float32: numpy broadcasting over a length-3 last axis runs its
    # inner loop three elements at a time (three times slower), and the frame's colour, a
    # float64 median, would promote every pixel to float64. Whole and half values are exact.
    channels = [np.abs(rgb[..., c].astype(np.float32) - np.float32(frame[c])) for c in range(3)]
    value = np.maximum(np.maximum(channels[0], channels[1]), channels[2])
    value = median3(np.clip(value, 0, 255).astype(np.uint8))
    threshold = float(np.clip(0.1 * percentile_uint8(value, 90), MIN_THRESHOLD, MAX_THRESHOLD))
    lit = square_filter(square_filter(value > threshold, 5, np.logical_and), 5, np.logical_or)  # an opening
    return _span_fill(lit) & _span_fill(lit.T).T


def percentile_uint8(values: np.ndarray, q: float) -> float:
    """`np.percentile(values, q)` (linear interpolation) of uint8 values, to the last bit, from
    their histogram: a fifth of the time, as no sort is needed."""
    n = values.size
    cumulative = np.cumsum(np.bincount(values.ravel(), minlength=256))
    # numpy's arithmetic, step by step, so that the result is the same float.
    virtual = (n - 1) * (np.float64(q) / 100)
    below = np.floor(virtual)
    gamma = virtual - below
    a = np.float64(np.searchsorted(cumulative, int(below), side="right"))
    b = np.float64(np.searchsorted(cumulative, min(int(below) + 1, n - 1), side="right"))
    return float(b - (b - a) * (1 - gamma) if gamma >= 0.5 else a + (b - a) * gamma)


# Pillow's rank filters (MedianFilter, MinFilter, MaxFilter) cost 6-10 ms each on a 256-px copy;
# these numpy equivalents give the same pixels (edges replicated, as Pillow's are) in 0.2 ms.
# The median of 9 by Devillard's 19-exchange network (opt_med9): only the middle value is sorted.
_MEDIAN9_EXCHANGES = ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3), (5, 8),
                      (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2))


def median3(values: np.ndarray) -> np.ndarray:
    """The 3 x 3 median of a 2-D uint8 array, edges replicated: Pillow's MedianFilter(3)."""
    height, width = values.shape
    padded = np.pad(values, 1, mode="edge")
    cells = [padded[i : i + height, j : j + width] for i in range(3) for j in range(3)]
    for a, b in _MEDIAN9_EXCHANGES:
        cells[a], cells[b] = np.minimum(cells[a], cells[b]), np.maximum(cells[a], cells[b])
    return cells[4]


def square_filter(mask: np.ndarray, size: int, combine) -> np.ndarray:
    """A boolean mask eroded (`np.logical_and`) or dilated (`np.logical_or`) by a size x size
    square, edges replicated: Pillow's MinFilter / MaxFilter on a 0/255 image. Separable: rows,
    then columns."""
    r = size // 2
    height, width = mask.shape
    padded = np.pad(mask, r, mode="edge")
    rows = padded[:, :width]
    for i in range(1, size):
        rows = combine(rows, padded[:, i : i + width])
    out = rows[:height]
    for i in range(1, size):
        out = combine(out, rows[i : i + height])
    return out


def _span_fill(lit: np.ndarray) -> np.ndarray:
    """Each row filled from its first lit pixel to its last."""
    width = lit.shape[1]
    first = np.argmax(lit, axis=1)
    last = width - 1 - np.argmax(lit[:, ::-1], axis=1)
    columns = np.arange(width)
    return (columns >= first[:, None]) & (columns <= last[:, None]) & np.asarray(lit.any(axis=1))[:, None]


def frame_colour(pixels: np.ndarray) -> np.ndarray:
    """The colour around the fundus: the median of the four corners (black for most cameras,
    dark grey or white for some; a corner is frame even where the sensor cut the disc)."""
    height, width = pixels.shape[:2]
    k = max(2, min(height, width) // 20)
    corners = [pixels[:k, :k], pixels[:k, -k:], pixels[-k:, :k], pixels[-k:, -k:]]
    return np.median(np.concatenate([c.reshape(-1, 3) for c in corners]), axis=0)


def _fit_rim(mask: np.ndarray) -> Circle | None:
    height, width = mask.shape
    if mask.mean() > 0.995 or mask.mean() < 0.05:
        return None  # all lit (no frame) or almost nothing lit
    eroded = square_filter(mask, 3, np.logical_and)
    rim, cut = _without_straight_cuts(mask & ~eroded, mask)
    ys, xs = np.nonzero(rim)
    inside = (xs >= EDGE_MARGIN) & (xs < width - EDGE_MARGIN) & (ys >= EDGE_MARGIN) & (ys < height - EDGE_MARGIN)
    xs, ys = xs[inside].astype(np.float64), ys[inside].astype(np.float64)
    if len(xs) < 20:
        return None
    circle = _robust_circle(xs, ys)
    if circle is None:
        return None
    cx, cy, r = circle
    residual = np.abs(np.hypot(xs - cx, ys - cy) - r)
    if _median(residual) > MAX_RESIDUAL_FRACTION * r:
        ellipse = _robust_ellipse(xs, ys)
        if ellipse is None:
            return None
        cx, cy, rx, ry = ellipse
        if max(rx / ry, ry / rx) > MAX_ELLIPSE_RATIO:
            return None
        found = Circle(cx, cy, rx, ry)
    else:
        found = Circle(cx, cy, r)
        rx = ry = r
    if max(rx / ry, ry / rx) < ELLIPSE_RATIO:
        found = Circle(found.cx, found.cy, float(np.sqrt(rx * ry)))
    if min(rx, ry) < MIN_RADIUS_FRACTION * min(height, width):
        return None
    angles = np.arctan2((ys - found.cy) / found.radius_y, (xs - found.cx) / found.r)
    if _angular_span(angles) < MIN_ARC_FRACTION * 2 * np.pi:
        return None
    # The lit region must fill the fitted disc where the picture holds it (and, where the disc
    # was cut straight, within the cuts), or it was no disc.
    disc = field_of_view_mask(height, width, found)
    if cut is not None:
        disc &= cut
    if disc.sum() == 0 or (mask & disc).sum() / disc.sum() < MIN_FILL:
        return None
    return found


def _without_straight_cuts(rim: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The rim less its straight stretches, and the region within them (None when there are
    none). A straight stretch is a cut across the disc (a sensor's or a crop's) that lies inside
    the picture, as when a clipped photograph is placed in a larger black frame: no part of the
    round rim, and the disc beyond it is missing, not dark. A round rim's flattest row, at its
    top, spans about 2 sqrt(2 r) pixels, an eighth of the disc's width at these sizes; a cut 10%
    into the disc spans 60% of it."""
    longest = STRAIGHT_CUT * max(int(mask.sum(axis=1).max()), int(mask.sum(axis=0).max()))
    straight_rows = rim.sum(axis=1) > longest
    straight_columns = rim.sum(axis=0) > longest
    if not straight_rows.any() and not straight_columns.any():
        return rim, None
    rim = rim.copy()
    rim[straight_rows] = False
    rim[:, straight_columns] = False
    # Within the cuts: the lit region's bounding box, whose edges the cuts are.
    return rim, _bounding_box(mask)


def _bounding_box(mask: np.ndarray) -> np.ndarray:
    """The smallest upright rectangle holding every True pixel of `mask`, as a mask."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = np.zeros(mask.shape, bool)
    if len(rows):
        box[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1] = True
    return box


def _angular_span(angles: np.ndarray) -> float:
    """The turn that the rim points spread over: a full turn less the largest empty gap."""
    ordered = np.sort(angles)
    gaps = np.diff(np.concatenate([ordered, ordered[:1] + 2 * np.pi]))
    return float(2 * np.pi - gaps.max())


def _median(values: np.ndarray) -> float:
    """`np.median` of a 1-D array, the same float, without its general-purpose overhead (the
    fit takes five medians of a few hundred points per image)."""
    n = len(values)
    middle = n // 2
    if n % 2:
        return float(np.partition(values, middle)[middle])
    part = np.partition(values, (middle - 1, middle))
    return float((part[middle - 1] + part[middle]) / 2)


def _robust_circle(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float, float] | None:
    """Least-squares circle (Kasa), refitted without the worst points (a camera's notch)."""
    keep = np.ones(len(xs), bool)
    for _ in range(3):
        a = np.column_stack([xs[keep], ys[keep], np.ones(keep.sum())])
        b = xs[keep] ** 2 + ys[keep] ** 2
        (p, q, s), *_ = np.linalg.lstsq(a, b, rcond=None)
        cx, cy = p / 2, q / 2
        r2 = s + cx * cx + cy * cy
        if r2 <= 0:
            return None
        r = float(np.sqrt(r2))
        residual = np.abs(np.hypot(xs - cx, ys - cy) - r)
        keep = residual <= max(1.5, 3 * _median(residual))
        if keep.sum() < 10:
            return None
    return float(cx), float(cy), r


def _robust_ellipse(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float, float, float] | None:
    """Least-squares axis-aligned ellipse A x^2 + B y^2 + C x + D y = 1, refitted likewise."""
    keep = np.ones(len(xs), bool)
    for _ in range(3):
        x, y = xs[keep], ys[keep]
        design = np.column_stack([x * x, y * y, x, y])
        (a, b, c, d), *_ = np.linalg.lstsq(design, np.ones(len(x)), rcond=None)
        if a * b <= 0:
            return None  # a hyperbola or a parabola, not a rim
        cx, cy = -c / (2 * a), -d / (2 * b)
        g = 1 + a * cx * cx + b * cy * cy
        if g / a <= 0:
            return None
        rx, ry = float(np.sqrt(g / a)), float(np.sqrt(g / b))
        distance = np.hypot((xs - cx) / rx, (ys - cy) / ry)
        residual = np.abs(distance - 1) * min(rx, ry)
        keep = residual <= max(1.5, 3 * _median(residual))
        if keep.sum() < 10:
            return None
    if _median(residual[keep]) > MAX_RESIDUAL_FRACTION * min(rx, ry):
        return None
    return float(cx), float(cy), rx, ry


def retina_mask(rgb: np.ndarray) -> np.ndarray | None:
    """Where the retina is in `rgb` (h, w, 3): inside its fitted field of view and within the
    lit region's bounding box (a disc cut straight, as a standardised photograph whose camera cut
    its sides is, has no retina beyond the cuts), or, where no rim fits, the region unlike the
    frame. None when neither exists (all frame or no frame)."""
    height, width = rgb.shape[:2]
    circle, region = _search(rgb)
    if region.shape != (height, width):  # found at detection size, enlarged back
        region = np.asarray(Image.fromarray(region).resize((width, height), Image.Resampling.NEAREST))
    if circle is not None:
        return field_of_view_mask(height, width, circle) & _bounding_box(region)
    return region if 0.05 < region.mean() < 0.995 else None


def field_of_view_mask(height: int, width: int, circle: Circle) -> np.ndarray:
    """Boolean (height, width) mask, True inside the field of view."""
    ys, xs = np.ogrid[:height, :width]
    return ((xs - circle.cx) / circle.r) ** 2 + ((ys - circle.cy) / circle.radius_y) ** 2 <= 1.0


def standardise_field_of_view(image: Image.Image, size: tuple[int, int],
                              circle: Circle | None | _Unsearched = UNSEARCHED,
                              resample: Image.Resampling = Image.Resampling.LANCZOS) -> np.ndarray | None:
    """`image` with its field of view centred in a `size` (width, height) square, black outside.

    The square's side is the field of view's diameter: what the camera cut off is padded black,
    a stretched (oval) field of view is made round again. None when no field of view is found.
    `circle`: the field of view when the caller has searched already (None: it found none).
    """
    picture = image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(circle, _Unsearched):
        circle = find_field_of_view(picture)
    if circle is None:
        return None
    # The box's edges are pixel edges; a centre at pixel index c sits at c + 0.5.
    box = (circle.cx + 0.5 - circle.r, circle.cy + 0.5 - circle.radius_y,
           circle.cx + 0.5 + circle.r, circle.cy + 0.5 + circle.radius_y)
    out = np.asarray(_extent_with_black(picture, box, size, resample), np.uint8).copy()
    out[_outside_disc(*size)] = 0
    return out


@lru_cache(maxsize=8)
def _outside_disc(width: int, height: int) -> np.ndarray:
    """Outside the disc inscribed in a (height, width) frame: the same few sizes on every call."""
    disc = field_of_view_mask(height, width, Circle((width - 1) / 2, (height - 1) / 2, width / 2, height / 2))
    outside = ~disc
    outside.setflags(write=False)
    return outside


def _extent_with_black(image: Image.Image, box: tuple[float, float, float, float], size: tuple[int, int],
                       resample: Image.Resampling) -> Image.Image:
    """The part of `image` inside `box` (which may reach beyond it) resized to `size`, black beyond."""
    left, top, right, bottom = box
    # Cut the box out at source resolution first, whole pixels, black where it reaches beyond
    # the picture (Pillow's crop fills with zeros), so the resize filters from real pixels and
    # black, never from Pillow's edge extension.
    x0, y0 = int(np.floor(left)), int(np.floor(top))
    x1, y1 = int(np.ceil(right)), int(np.ceil(bottom))
    canvas = image.crop((x0, y0, x1, y1))
    inner = (left - x0, top - y0, right - x0, bottom - y0)
    return canvas.resize(size, resample, box=inner)
