"""Reading image files into 8-bit RGB, whatever they hold.

Owns every decision about files on disk: formats (JPEG, PNG, BMP, GIF, TIFF, WebP, AVIF,
JPEG 2000, DICOM), bit depth,
colour modes, EXIF orientation, and refusing files that are missing, empty, truncated, corrupt,
not images, or so large that decoding them would exhaust memory. Training and the app both read
images through `load_image`, so they see identical pixels.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from retina_desktop.core.errors import ImageError

# Extensions offered by file dialogs and picked up by folder scans: what `load_image` reads
# (Pillow here is built with WebP, AVIF and JPEG 2000). A folder scan names what it skipped
# (`list_skipped`): HEIC, for one, needs a plug-in this app does not ship.
IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif", ".jp2", ".j2k",
    ".dcm", ".dicom",
)

# A fundus photograph from a modern camera is 10-25 megapixels; 80 MP leaves room for scans
# and stitched montages, and at 3 bytes a pixel stays near 240 MB decoded.
MAX_PIXELS = 80_000_000
# DICOM holds volumes: rows x columns x samples x bytes per sample x frames, decoded, may be at
# most this much, and a deflate-compressed DICOM may inflate to at most this much (counted in
# bounded chunks before anything is kept). The largest OCT volumes are a few hundred MB at 16
# bits. Only the middle frame is decoded, so the largest file accepted (one 80-megapixel 16-bit
# colour frame, deflated or not) peaks at 0.76 GB of memory, measured.
MAX_DICOM_BYTES = 512 * 2**20

_DICOM_MAGIC_OFFSET = 128
# DICOM values larger than this stay on disk while the header is read.
_DICOM_DEFER_BYTES = 1 << 20
# Inflate a deflated DICOM this much at a time, so that counting its size costs no memory.
_INFLATE_CHUNK = 1 << 24
# An inflated copy up to this size stays in memory; a larger one goes to a temporary file.
_SPOOL_IN_MEMORY_BYTES = 64 << 20
# Paths longer than this are shown with their middle elided: a message stays one readable line.
_SHOWN_PATH_CHARS = 200


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
    try:
        info = path.stat()
    except OSError as err:
        if err.errno == errno.ENOENT:
            raise ImageError(f'File not found: "{path}"') from err
        if err.errno == errno.ENAMETOOLONG:
            longest = max(len(os.fsencode(part)) for part in path.parts)
            total = len(os.fsencode(str(path)))
            raise ImageError(
                f'File name too long: "{shown_path(path)}" ({total} bytes, the longest part '
                f"{longest}; file systems allow 255 bytes a name and 4,096 a path)"
            ) from err
        raise ImageError(f'Cannot read "{shown_path(path)}": {err.strerror}') from err
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f'"{path}" is a folder, not an image file')
    if info.st_size == 0:
        raise ImageError(f'"{path}" is empty (0 bytes)')


def shown_path(path: str | os.PathLike) -> str:
    """`path` for a message: whole when reasonable, else its start and end (the file name)."""
    text = str(path)
    if len(text) <= _SHOWN_PATH_CHARS:
        return text
    half = _SHOWN_PATH_CHARS // 2
    return f"{text[:half]}...{text[-half:]}"


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
                if image.format == "PNG":
                    _refuse_short_png(path)
                oriented = ImageOps.exif_transpose(image)
                rgb = to_rgb(oriented if oriented is not None else image)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f'"{path}" is too large to open safely: {err}') from err
    except UnidentifiedImageError as err:
        if _starts_like_tiff(path):
            # A TIFF Pillow cannot lay out (two 16-bit channels, say): "not an image" misleads.
            raise ImageError(
                f'"{path}" is a TIFF in a layout that cannot be read (such as two channels, or an '
                "unusual bit depth or compression); save it as greyscale or RGB, 8 or 16 bits"
            ) from err
        raise ImageError(
            f'"{path}" is not an image file that can be read '
            f"(expected JPEG, PNG, BMP, GIF, TIFF, WebP, AVIF, JPEG 2000 or DICOM)"
        ) from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated",
        # "broken data stream") and some malformed headers as SyntaxError or ValueError.
        raise ImageError(f'"{path}" is damaged or truncated and cannot be decoded ({err})') from err
    return LoadedImage(rgb=rgb, source_mode=source_mode, source_size=source_size)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type
# Adam7's passes: first column, first row, column step, row step.
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _refuse_short_png(path: Path) -> None:
    """Refuse a PNG whose image data holds fewer rows than its header promises.

    Pillow accepts a zlib stream that ends (properly) before the last row, and with
    `ImageFile.LOAD_TRUNCATED_IMAGES` set anywhere in the process one that is cut off, and
    leaves the missing rows black: a picture the model would judge as if it were whole. Here
    the IDAT data is inflated once more, counted in bounded chunks and never kept.
    """
    try:
        shape, inflated = _png_image_data_size(path)
    except (OSError, struct.error, zlib.error, KeyError):
        return  # what Pillow read it will have judged; this check only adds to it
    if shape is None:
        return
    width, height, expected, row_bytes = shape
    if inflated >= expected:
        return
    where = (
        f"after {inflated // row_bytes} of {height} rows" if row_bytes else "before its last row"
    )
    raise ImageError(
        f'"{path}" is damaged or truncated and cannot be decoded (its image data ends {where})'
    )


def _png_image_data_size(path: Path) -> tuple[tuple[int, int, int, int] | None, int]:
    """((width, height, scanline bytes the header promises, bytes a row or 0 if interlaced),
    scanline bytes the IDAT chunks inflate to); (None, 0) without a header."""
    shape = None
    inflater = zlib.decompressobj()
    total = 0
    with open(path, "rb") as handle:
        if handle.read(8) != _PNG_SIGNATURE:
            return None, 0
        while True:
            head = handle.read(8)
            if len(head) < 8:
                break
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IHDR":
                width, height, depth, colour, _, _, interlace = struct.unpack(
                    ">IIBBBBB", handle.read(13)
                )
                handle.seek(length - 13, os.SEEK_CUR)
                bits = depth * _PNG_CHANNELS[colour]
                shape = _png_scanline_bytes(width, height, bits, bool(interlace))
            elif kind == b"IDAT":
                left = length
                while left > 0 and not inflater.eof:
                    data = handle.read(min(left, 1 << 20))
                    if not data:
                        break
                    left -= len(data)
                    while data:
                        total += len(inflater.decompress(data, _INFLATE_CHUNK))
                        data = inflater.unconsumed_tail
                handle.seek(left, os.SEEK_CUR)
            elif kind == b"IEND":
                break
            else:
                handle.seek(length, os.SEEK_CUR)
            handle.seek(4, os.SEEK_CUR)  # the CRC
    return shape, total


def _png_scanline_bytes(width: int, height: int, bits: int, interlaced: bool) -> tuple[int, int, int, int]:
    def size(columns: int, rows: int) -> int:
        return rows * (1 + (columns * bits + 7) // 8) if columns > 0 and rows > 0 else 0

    if not interlaced:
        return width, height, size(width, height), size(width, 1)
    expected = sum(
        size((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy) for x0, y0, dx, dy in _ADAM7
    )
    return width, height, expected, 0


def _starts_like_tiff(path: Path) -> bool:
    """Whether the file begins with a TIFF (or BigTIFF) byte-order mark and magic number."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


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
        values = np.asarray(image)
        top = 65535.0 if mode.startswith("I;16") or values.max() <= 65535 else float(values.max())
        return Image.fromarray(_rescale(values, 0.0, top), "L").convert("RGB")
    if mode == "F":
        values = np.asarray(image)
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        return Image.fromarray(_rescale(values, low, high), "L").convert("RGB")
    if mode in {"RGBA", "LA", "PA", "P", "RGBa", "La"} or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _load_dicom(path: Path) -> LoadedImage:
    """The middle frame of a DICOM file, after its size has been checked from the header."""
    try:
        from pydicom.errors import InvalidDicomError
    except ImportError as err:  # pragma: no cover - pydicom is a declared dependency
        raise ImageError(f'"{path}" is a DICOM file, and pydicom is not installed') from err
    try:
        source = _native_dicom(path)
    except ImageError:
        raise
    except (InvalidDicomError, OSError, EOFError, ValueError, zlib.error) as err:
        raise ImageError(f'"{path}" is not a readable DICOM file ({err})') from err
    try:
        pixels, photometric, samples, (columns, rows) = _dicom_frame(path, source)
    finally:
        if not isinstance(source, Path):
            source.close()
    values = _to_uint8(pixels)
    del pixels  # a 16-bit frame is twice the 8-bit one: not both beside Pillow's copy
    if samples == 3:
        rgb = Image.fromarray(values, "RGB")
    else:
        if photometric == "MONOCHROME1":  # 0 is white in MONOCHROME1
            values = 255 - values
        rgb = Image.fromarray(values, "L").convert("RGB")
    return LoadedImage(rgb=rgb, source_mode=f"DICOM:{photometric}", source_size=(columns, rows))


def _dicom_frame(path: Path, source: Path | IO[bytes]) -> tuple[np.ndarray, str, int, tuple[int, int]]:
    """Check the header's sizes against the limits, then decode the one frame wanted:
    (pixels, photometric interpretation, samples per pixel, (width, height)); a palette
    image comes back as its colours, three samples of 8 bits."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import pixel_array

    try:
        # Large values (the pixels above all) stay on disk: only the header is read here.
        header = pydicom.dcmread(source, defer_size=_DICOM_DEFER_BYTES)
    except (InvalidDicomError, OSError, EOFError, ValueError) as err:
        raise ImageError(f'"{path}" is not a readable DICOM file ({err})') from err
    if "PixelData" not in header:
        if "FloatPixelData" in header or "DoubleFloatPixelData" in header:
            # Parametric maps keep floats with no fixed range: "no PixelData" would mislead,
            # and stretching an unknown range would show a picture that means nothing.
            raise ImageError(
                f'"{path}" is a DICOM file with float pixel data, which this app does not read '
                "(export it as an 8- or 16-bit image)"
            )
        raise ImageError(f'"{path}" is a DICOM file without an image (no PixelData)')
    try:
        rows, columns = int(header.get("Rows", 0)), int(header.get("Columns", 0))
        frames = int(header.get("NumberOfFrames", 1) or 1)
        samples = int(header.get("SamplesPerPixel", 1) or 1)
        bits = int(header.get("BitsAllocated", 8) or 8)
        photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2"))
    except (TypeError, ValueError) as err:
        raise ImageError(f'"{path}" has a DICOM header that cannot be read ({err})') from err
    _check_pixels(path, columns, rows)
    decoded = rows * columns * max(frames, 1) * max(samples, 1) * max(1, (bits + 7) // 8)
    if decoded > MAX_DICOM_BYTES:
        raise ImageError(
            f'"{path}" is too large to open safely ({frames} frame{"s" if frames != 1 else ""} of '
            f"{columns} x {rows} pixels, {decoded / 2**20:.0f} MB decoded; the limit is "
            f"{MAX_DICOM_BYTES / 2**20:.0f} MB)"
        )
    try:
        # One frame only: an OCT volume's middle B-scan usually passes through the fovea.
        # raw=False converts YBR colour to RGB; view_only spares a copy of uncompressed pixels.
        # pydicom's hints name BinaryIO; the inflated copy is a binary temporary file.
        pixels = pixel_array(
            source if isinstance(source, Path) else cast(BinaryIO, source),
            index=frames // 2 if frames > 1 else None,
            view_only=True,
        )
    except Exception as err:  # pydicom raises many types for unsupported compression
        raise ImageError(
            f'"{path}": the DICOM pixel data cannot be decoded ({err}); '
            "compressed DICOM may need pylibjpeg or GDCM installed"
        ) from err
    if photometric == "PALETTE COLOR" and samples == 1:
        return _apply_palette(path, pixels, header), photometric, 3, (columns, rows)
    return pixels, photometric, samples, (columns, rows)


def _apply_palette(path: Path, indices: np.ndarray, header) -> np.ndarray:
    """The colours a PALETTE COLOR frame's indices stand for, as RGB uint8.

    The table is applied a block of rows at a time: its 16-bit RGB copy of an 80-megapixel
    frame would take 480 MB beside the indices.
    """
    from pydicom.pixels import apply_color_lut

    out = np.empty((*indices.shape, 3), dtype=np.uint8)
    step = max(1, (1 << 20) // max(1, indices[0].size))
    try:
        for start in range(0, len(indices), step):
            colours = apply_color_lut(indices[start : start + step], header)
            if colours.dtype != np.uint8:  # 16-bit entries span 0..65535 whatever they hold
                colours = (colours.astype(np.uint32) * 255 + 32767) // 65535
            out[start : start + step] = colours
    except Exception as err:  # pydicom raises ValueError, KeyError, IndexError for bad tables
        raise ImageError(f'"{path}" has a DICOM colour palette that cannot be read ({err})') from err
    return out


def _native_dicom(path: Path) -> Path | IO[bytes]:
    """`path` itself, or for a deflate-compressed file an inflated copy (a temporary file).

    pydicom inflates a deflated file whole before reading a single header value, so a file of
    a few hundred KB can become gigabytes. Here the inflated size is counted first in bounded
    chunks, and only a file within MAX_DICOM_BYTES is inflated, into a native (Explicit VR
    Little Endian) copy that the header check and the single-frame decoder then read like any
    other file.
    """
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_file_meta_info
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

    meta = read_file_meta_info(path)
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return path
    if "FileMetaInformationGroupLength" not in meta:
        raise ImageError(f'"{path}" is not a readable DICOM file (its file meta has no group length)')
    # Preamble and "DICM", the group length element (12 bytes), then the group it measures.
    start = _DICOM_MAGIC_OFFSET + 4 + 12 + int(meta.FileMetaInformationGroupLength)
    with open(path, "rb") as handle:
        handle.seek(start)
        size = _inflate(handle, MAX_DICOM_BYTES, sink=None)
        if size > MAX_DICOM_BYTES:
            raise ImageError(
                f'"{path}" is too large to open safely (its deflate-compressed data expands to more '
                f"than {MAX_DICOM_BYTES / 2**20:.0f} MB; the limit is {MAX_DICOM_BYTES / 2**20:.0f} MB)"
            )
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        head = DicomBytesIO()
        write_file_meta_info(head, meta, enforce_standard=True)
        # A large copy goes to an unnamed temporary file: held in memory beside the frame
        # decoded from it, it would double the peak.
        native = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY_BYTES)
        native.write(b"\0" * _DICOM_MAGIC_OFFSET + b"DICM" + head.getvalue())
        handle.seek(start)
        _inflate(handle, MAX_DICOM_BYTES, sink=native)
    native.seek(0)
    return native


def _inflate(handle, limit: int, sink) -> int:
    """Inflate a raw deflate stream from `handle` into `sink` (or nowhere), stopping once more
    than `limit` bytes have come out; returns how many did. Never holds more than one chunk."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    while not inflater.eof:
        data = inflater.unconsumed_tail or handle.read(1 << 20)
        if not data:
            break  # truncated: what came out is read as is, and pydicom says what is missing
        out = inflater.decompress(data, _INFLATE_CHUNK)
        total += len(out)
        if total > limit:
            break
        if sink is not None:
            sink.write(out)
    return total


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Any integer or float frame stretched to 0-255 (uint8 frames as they are)."""
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    return _rescale(pixels, float(pixels.min()), float(pixels.max()))


def _rescale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map `low`..`high` to 0..255 uint8 (NaN to 0), a block of rows at a time: a float copy
    of a whole 80-megapixel frame would take 640 MB more, this a few MB."""
    out = np.zeros(values.shape, dtype=np.uint8)
    if not high > low:
        return out
    step = max(1, (1 << 20) // max(1, values[0].size))
    for start in range(0, len(values), step):
        block = (values[start : start + step].astype(np.float64) - low) / (high - low)
        out[start : start + step] = np.clip(np.nan_to_num(block) * 255.0 + 0.5, 0, 255)
    return out


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Every file under `folder` whose extension names an image type, sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageError(f'Folder not found: "{root}"')
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def list_skipped(folder: str | os.PathLike) -> list[Path]:
    """Every file under `folder` that `list_images` leaves out (hidden files aside), sorted:
    a folder scan says what it did not read rather than skip it silently."""
    root = Path(folder)
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in IMAGE_EXTENSIONS
    )
