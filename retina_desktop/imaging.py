"""Reading image files into 8-bit RGB, whatever they hold.

Owns every decision about files on disk: formats (JPEG, PNG, BMP, GIF, TIFF, DICOM), bit depth,
colour modes, EXIF orientation, and refusing files that are missing, empty, truncated, corrupt,
not images, or so large that decoding them would exhaust memory. Training and the app both read
images through `load_image`, so they see identical pixels.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

# Extensions offered by file dialogs and picked up by folder scans.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".dcm", ".dicom")

# A fundus photograph from a modern camera is 10-25 megapixels; 80 MP leaves room for scans
# and stitched montages, and at 3 bytes a pixel stays near 240 MB decoded.
MAX_PIXELS = 80_000_000

_DICOM_MAGIC_OFFSET = 128


@dataclass(frozen=True)
class LoadedImage:
    """An image decoded to RGB uint8, with what the file originally held."""

    rgb: Image.Image
    source_mode: str  # e.g. "RGB", "L", "I;16", "RGBA", "P", "DICOM:MONOCHROME2"
    source_size: tuple[int, int]  # width, height as stored

    @property
    def was_greyscale(self) -> bool:
        return self.source_mode in {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"} or (
            self.source_mode.startswith("DICOM:MONOCHROME")
        )


def is_dicom(path: Path) -> bool:
    """True for files with the DICOM preamble (or a .dcm name)."""
    if path.suffix.lower() in {".dcm", ".dicom"}:
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(_DICOM_MAGIC_OFFSET)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def load_image(path: str | os.PathLike) -> LoadedImage:
    """Decode `path` to RGB uint8, or raise `ImageError` saying what is wrong with the file."""
    path = Path(path)
    _check_file(path)
    if is_dicom(path):
        return _load_dicom(path)
    return _load_with_pillow(path)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageError(f'File not found: "{path}"')
    if path.is_dir():
        raise ImageError(f'"{path}" is a folder, not an image file')
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ImageError(f'Cannot read "{path}": {err.strerror}') from err
    if size == 0:
        raise ImageError(f'"{path}" is empty (0 bytes)')


def _check_pixels(path: Path, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f'"{path}" has no pixels ({width} x {height})')
    if width * height > MAX_PIXELS:
        raise ImageError(
            f'"{path}" is too large to open safely ({width} x {height} pixels, '
            f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels)"
        )


def _load_with_pillow(path: Path) -> LoadedImage:
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; we want an error either way,
            # and our own limit is checked from the header before any pixel is decoded.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_pixels(path, *image.size)
                source_mode = image.mode
                source_size = image.size
                image.seek(0)  # first frame of an animated GIF or multi-page TIFF
                image.load()
                oriented = ImageOps.exif_transpose(image)
                rgb = to_rgb(oriented if oriented is not None else image)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f'"{path}" is too large to open safely: {err}') from err
    except UnidentifiedImageError as err:
        raise ImageError(
            f'"{path}" is not an image file that can be read '
            f"(expected JPEG, PNG, BMP, GIF, TIFF or DICOM)"
        ) from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated",
        # "broken data stream") and some malformed headers as SyntaxError or ValueError.
        raise ImageError(f'"{path}" is damaged or truncated and cannot be decoded ({err})') from err
    return LoadedImage(rgb=rgb, source_mode=source_mode, source_size=source_size)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB without losing the picture.

    16-bit and 32-bit greyscale are scaled by their full range (not clipped, which would turn
    most 16-bit scans white); transparency is composited onto black, the background of a fundus
    photograph and of an OCT scan.
    """
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in {"I;16", "I;16B", "I;16L", "I;16N", "I"}:
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max() <= 65535 else float(values.max())
        grey = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        grey = np.clip(np.nan_to_num(scaled) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode in {"RGBA", "LA", "PA", "P", "RGBa", "La"} or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _load_dicom(path: Path) -> LoadedImage:
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError as err:  # pragma: no cover - pydicom is a declared dependency
        raise ImageError(f'"{path}" is a DICOM file, and pydicom is not installed') from err
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError) as err:
        raise ImageError(f'"{path}" is not a readable DICOM file ({err})') from err
    if "PixelData" not in dataset:
        raise ImageError(f'"{path}" is a DICOM file without an image (no PixelData)')
    rows, columns = int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0))
    _check_pixels(path, columns, rows)
    try:
        pixels = dataset.pixel_array
    except Exception as err:  # pydicom raises many types for unsupported compression
        raise ImageError(
            f'"{path}": the DICOM pixel data cannot be decoded ({err}); '
            "compressed DICOM may need pylibjpeg or GDCM installed"
        ) from err
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2"))
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    samples = int(dataset.get("SamplesPerPixel", 1))
    if frames > 1:
        # An OCT volume: the middle B-scan usually passes through the fovea.
        pixels = pixels[frames // 2]
    if samples == 3:
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            pixels = convert_color_space(pixels, photometric, "RGB")
        rgb = Image.fromarray(_to_uint8(pixels), "RGB")
    else:
        grey = _to_uint8(pixels)
        if photometric == "MONOCHROME1":  # 0 is white in MONOCHROME1
            grey = 255 - grey
        rgb = Image.fromarray(grey, "L").convert("RGB")
    return LoadedImage(rgb=rgb, source_mode=f"DICOM:{photometric}", source_size=(columns, rows))


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    values = pixels.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(pixels.shape, dtype=np.uint8)
    return np.clip((values - low) / (high - low) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Every file under `folder` whose extension names an image type, sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageError(f'Folder not found: "{root}"')
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
