"""Every kind of file a user may hand the app: good ones decode to RGB, bad ones say why."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from retina_desktop.core.errors import ImageError
from retina_desktop.imaging.decode import MAX_PIXELS, list_images, load_image
from tests.conftest import fundus_like


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".gif", ".tif"])
def test_common_formats_decode_to_rgb(tmp_path, suffix):
    path = tmp_path / f"eye{suffix}"
    fundus_like(64).save(path)
    loaded = load_image(path)
    assert loaded.rgb.mode == "RGB"
    assert loaded.rgb.size == (64, 64)
    # The disc stays bright and the corner black, whatever the format did to the colours.
    pixels = np.asarray(loaded.rgb)
    assert pixels[32, 32].sum() > 150 and pixels[0, 0].sum() < 60


def test_greyscale_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L").save(path)
    loaded = load_image(path)
    pixels = np.asarray(loaded.rgb)
    assert loaded.was_greyscale
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    assert pixels[15, 15, 0] == 255


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_is_scaled_not_clipped(tmp_path, suffix):
    path = tmp_path / f"deep{suffix}"
    values = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(values).save(path)
    pixels = np.asarray(load_image(path).rgb)[..., 0]
    # Clipping would make everything above 255 white; scaling keeps a ramp from 0 to 255.
    assert pixels[0, 0] == 0 and pixels[-1, -1] == 255
    assert 100 < pixels[32, 0] < 160


def test_rgba_is_composited_on_black(tmp_path):
    path = tmp_path / "alpha.png"
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[:4, ..., 3] = 255  # top half opaque red, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(path)
    pixels = np.asarray(load_image(path).rgb)
    assert tuple(pixels[0, 0]) == (255, 0, 0)
    assert tuple(pixels[7, 0]) == (0, 0, 0)


def test_palette_image(tmp_path):
    path = tmp_path / "palette.png"
    fundus_like(32).convert("P", palette=Image.Palette.ADAPTIVE).save(path)
    assert load_image(path).rgb.mode == "RGB"


def test_exif_orientation_is_honoured(tmp_path):
    path = tmp_path / "rotated.jpg"
    image = Image.new("RGB", (40, 20), "black")
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(path, exif=exif)
    assert load_image(path).rgb.size == (20, 40)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ImageError, match="File not found.*nothere.png"):
        load_image(tmp_path / "nothere.png")


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty.jpg.*empty \(0 bytes\)"):
        load_image(path)


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are not pixels\n" * 20)
    with pytest.raises(ImageError, match="notes.png.*not an image file"):
        load_image(path)


def test_truncated_jpeg(tmp_path):
    good = tmp_path / "good.jpg"
    fundus_like(128).save(good, quality=95)
    data = good.read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.jpg.*damaged or truncated"):
        load_image(path)


def test_corrupt_png(tmp_path):
    good = tmp_path / "good.png"
    fundus_like(64).save(good)
    data = bytearray(good.read_bytes())
    data[60:200] = bytes(140)  # zero out part of the compressed stream
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="corrupt.png"):
        load_image(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    side = int(np.sqrt(MAX_PIXELS)) + 100
    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path)  # a few KB on disk, ~80 MP when decoded
    with pytest.raises(ImageError, match="bomb.png.*too large"):
        load_image(path)


def _write_dicom(path, pixels: np.ndarray, photometric: str):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.5.1"  # ophthalmic photography
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = 3 if pixels.ndim == 3 else 1
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if pixels.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return pydicom


def test_dicom_16_bit_greyscale(tmp_path):
    path = tmp_path / "scan.dcm"
    ramp = np.linspace(0, 4095, 32 * 48).reshape(32, 48).astype(np.uint16)
    _write_dicom(path, ramp, "MONOCHROME2")
    loaded = load_image(path)
    pixels = np.asarray(loaded.rgb)
    assert loaded.rgb.size == (48, 32)
    assert loaded.source_mode == "DICOM:MONOCHROME2"
    assert pixels[0, 0, 0] == 0 and pixels[-1, -1, 0] == 255


def test_dicom_monochrome1_is_inverted(tmp_path):
    path = tmp_path / "inverted"  # no extension: found by the DICM preamble
    pixels = np.zeros((16, 16), dtype=np.uint8)
    pixels[:8] = 255
    _write_dicom(path, pixels, "MONOCHROME1")
    out = np.asarray(load_image(path).rgb)
    assert out[0, 0, 0] == 0 and out[15, 0, 0] == 255


def test_dicom_colour(tmp_path):
    path = tmp_path / "photo.dcm"
    rgb = np.asarray(fundus_like(32))
    _write_dicom(path, rgb, "RGB")
    assert np.array_equal(np.asarray(load_image(path).rgb), rgb)


def test_dicom_without_pixels(tmp_path):
    path = tmp_path / "report.dcm"
    pydicom = _write_dicom(path, np.zeros((4, 4), np.uint8), "MONOCHROME2")
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(ImageError, match="report.dcm.*without an image"):
        load_image(path)


def test_list_images_finds_images_only(tmp_path):
    (tmp_path / "sub").mkdir()
    fundus_like(8).save(tmp_path / "a.png")
    fundus_like(8).save(tmp_path / "sub" / "b.JPG")
    (tmp_path / "readme.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.JPG"]
    with pytest.raises(ImageError, match="Folder not found"):
        list_images(tmp_path / "missing")


def _write_deflated_dicom(path, frames: int, rows: int, columns: int, bits: int = 16) -> None:
    """A deflate-compressed DICOM of zero pixels, written in bounded memory however large.

    The header comes from pydicom; the pixel data is one compressed block of zeros repeated
    (a full flush makes each block independent, so copies concatenate into a valid stream).
    """
    pytest.importorskip("pydicom")
    import struct
    import zlib

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.5.4"  # ophthalmic tomography
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds = Dataset()
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit, ds.PixelRepresentation = bits - 1, 0
    header = DicomBytesIO()
    header.is_little_endian, header.is_implicit_VR = True, False
    write_dataset(header, ds)
    length = rows * columns * frames * bits // 8
    element = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW" if bits > 8 else b"OB", 0, length)
    chunk = 1_000_000
    assert length % chunk == 0

    def deflate(data: bytes, mode: int) -> bytes:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        return compressor.compress(data) + compressor.flush(mode)

    zeros = deflate(bytes(chunk), zlib.Z_FULL_FLUSH)
    with open(path, "wb") as handle:
        handle.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(handle, meta)
        handle.write(deflate(header.getvalue() + element, zlib.Z_FULL_FLUSH))
        for _ in range(length // chunk):
            handle.write(zeros)
        handle.write(deflate(b"", zlib.Z_FINISH))


def test_a_deflated_dicom_bomb_is_refused_before_it_is_inflated(tmp_path):
    import tracemalloc

    path = tmp_path / "volume.dcm"
    _write_deflated_dicom(path, frames=50, rows=4000, columns=4000)  # 1.6 GB inflated
    assert path.stat().st_size < 5_000_000
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match=r'^"[^"]*volume.dcm" is too large to open safely') as caught:
            load_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "\n" not in str(caught.value)
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MB used to refuse it"


def test_dicom_limits_are_read_from_the_header_before_decoding(tmp_path):
    path = tmp_path / "liar.dcm"
    pydicom = _write_dicom(path, np.zeros((16, 16), np.uint8), "MONOCHROME2")
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 4000
    ds.NumberOfFrames = 50  # 800 MB of pixels claimed; 256 bytes stored
    ds.save_as(path)
    with pytest.raises(ImageError, match=r"liar.dcm.*too large to open safely \(50 frames of 4000 x 4000"):
        load_image(path)


def test_a_deflated_multiframe_dicom_gives_its_middle_frame(tmp_path):
    path = tmp_path / "small_volume.dcm"
    frames = np.zeros((5, 8, 12), np.uint8)
    for i in range(5):
        frames[i, 0, i] = 200  # each frame marks its own index
    pydicom = _write_dicom(path, frames[0], "MONOCHROME2")
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 5
    ds.PixelData = frames.tobytes()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    pixels = np.asarray(load_image(path).rgb)[..., 0]
    assert pixels.shape == (8, 12)
    assert pixels[0, 2] == 200 and pixels[0].sum() == 200


def test_a_file_name_too_long_is_an_image_error(tmp_path):
    long_name = tmp_path / ("a" * 300 + ".png")
    with pytest.raises(ImageError, match="too long"):
        load_image(long_name)
    long_path = tmp_path.joinpath(*["d" * 200] * 25, "eye.png")  # over 4,096 bytes
    with pytest.raises(ImageError, match="too long"):
        load_image(long_path)


def test_dicom_ybr_colour_is_converted_to_rgb_once(tmp_path):
    path = tmp_path / "ybr.dcm"
    rgb = np.asarray(fundus_like(32))
    pydicom = _write_dicom(path, rgb, "RGB")
    from pydicom.pixels import convert_color_space

    ds = pydicom.dcmread(path)
    ds.PixelData = convert_color_space(rgb, "RGB", "YBR_FULL").tobytes()
    ds.PhotometricInterpretation = "YBR_FULL"
    ds.save_as(path)
    assert np.abs(np.asarray(load_image(path).rgb).astype(int) - rgb).max() <= 2


def test_a_tiff_in_a_layout_pillow_cannot_read_is_named_as_such(tmp_path):
    import tifffile

    path = tmp_path / "two_channels.tif"
    pixels = np.random.default_rng(0).integers(0, 65535, (64, 64, 2), dtype=np.uint16)
    tifffile.imwrite(path, pixels, photometric="minisblack", planarconfig="contig")
    with pytest.raises(ImageError) as refused:
        load_image(path)
    message = str(refused.value)
    assert message.startswith(f'"{path}" is a TIFF in a layout that cannot be read')
    assert "not an image" not in message and "\n" not in message


def test_dicom_palette_colour_is_shown_in_its_colours(tmp_path):
    # Issue #34 item 10: the indices of a PALETTE COLOR image were shown as grey.
    path = tmp_path / "palette.dcm"
    indices = np.zeros((8, 8), np.uint8)
    indices[:4] = 1  # top half entry 1 (red), bottom half entry 2 (blue)
    indices[4:] = 2
    pydicom = _write_dicom(path, indices, "MONOCHROME2")
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    # 16-bit entries as the standard writes them: entry 0 black, 1 red, 2 blue.
    table = {"Red": [0, 65535, 0], "Green": [0, 0, 0], "Blue": [0, 0, 65535]}
    for colour, entries in table.items():
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [3, 0, 16])
        ds[f"{colour}PaletteColorLookupTableDescriptor"].VR = "US"  # "US or SS" cannot be written
        setattr(ds, f"{colour}PaletteColorLookupTableData", np.array(entries, "<u2").tobytes())
    ds.save_as(path)
    loaded = load_image(path)
    pixels = np.asarray(loaded.rgb)
    assert tuple(pixels[0, 0]) == (255, 0, 0)
    assert tuple(pixels[7, 7]) == (0, 0, 255)
    assert not loaded.was_greyscale


@pytest.mark.parametrize("keyword", ["FloatPixelData", "DoubleFloatPixelData"])
def test_dicom_float_pixel_data_is_named_not_called_missing(tmp_path, keyword):
    # Issue #34 item 11: float pixels were refused as "no PixelData", which misleads.
    path = tmp_path / "float.dcm"
    pydicom = _write_dicom(path, np.zeros((4, 4), np.uint8), "MONOCHROME2")
    ds = pydicom.dcmread(path)
    del ds.PixelData
    dtype = "<f4" if keyword == "FloatPixelData" else "<f8"
    ds.BitsAllocated = 32 if keyword == "FloatPixelData" else 64
    del ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    setattr(ds, keyword, np.linspace(0, 1, 16).astype(dtype).tobytes())
    ds.save_as(path)
    with pytest.raises(ImageError) as refused:
        load_image(path)
    message = str(refused.value)
    assert message.startswith(f'"{path}"') and "float pixel data" in message
    assert "no PixelData" not in message and "\n" not in message


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_with_rows_cut(path, rows_kept: int, finish_stream: bool) -> None:
    """A 64 x 9999 RGB PNG whose one IDAT chunk holds only its first `rows_kept` rows, every
    chunk with a correct CRC and the file ending in IEND: nothing but the row count is wrong."""
    import io
    import struct
    import zlib

    pixels = np.random.default_rng(0).integers(0, 256, (9999, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")
    data = buffer.getvalue()
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    scanlines = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    kept = scanlines[: rows_kept * (1 + 64 * 3)]
    if finish_stream:  # a whole zlib stream that simply holds fewer rows
        stream = zlib.compress(kept)
    else:  # a stream cut off mid-way
        packer = zlib.compressobj()
        stream = packer.compress(kept) + packer.flush(zlib.Z_SYNC_FLUSH)
    head = b"".join(_png_chunk(kind, body) for kind, body in chunks if kind not in (b"IDAT", b"IEND"))
    path.write_bytes(data[:8] + head + _png_chunk(b"IDAT", stream) + _png_chunk(b"IEND", b""))


@pytest.mark.parametrize("finish_stream", [True, False], ids=["whole-stream", "cut-stream"])
@pytest.mark.parametrize("load_truncated", [False, True], ids=["default", "load-truncated"])
def test_a_png_cut_after_50_of_9999_rows_is_refused(tmp_path, monkeypatch, finish_stream, load_truncated):
    # Issue #34 item 13: such a PNG decoded with the missing rows black and was judged. Pillow
    # accepts a zlib stream that ends early, and ImageFile.LOAD_TRUNCATED_IMAGES (which some
    # library may set) accepts one that is cut off: the file is refused either way.
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", load_truncated)
    path = tmp_path / "cut.png"
    _png_with_rows_cut(path, rows_kept=50, finish_stream=finish_stream)
    with pytest.raises(ImageError) as refused:
        load_image(path)
    message = str(refused.value)
    assert message.startswith(f'"{path}" is damaged or truncated') and "\n" not in message


def test_a_whole_interlaced_png_is_not_called_truncated(tmp_path):
    # The row count check must add up Adam7's seven passes; Pillow cannot write them, so
    # the file is put together here (filter 0 on every row), at an odd size for unequal passes.
    import struct
    import zlib

    pixels = np.asarray(fundus_like(61))
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    scanlines = b"".join(
        b"\0" + row.tobytes()
        for x0, y0, dx, dy in passes
        for row in pixels[y0::dy, x0::dx]
        if row.size
    )
    header = struct.pack(">IIBBBBB", 61, 61, 8, 2, 0, 0, 1)
    path = tmp_path / "interlaced.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(scanlines)) + _png_chunk(b"IEND", b"")
    )
    assert np.array_equal(np.asarray(load_image(path).rgb), pixels)
