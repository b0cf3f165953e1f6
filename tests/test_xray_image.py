"""services.imaging.xray_image: format allow-list by content, guards, DICOM decoding, shared preprocessing."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from services.imaging import xray_image as xi
from services.imaging.xray_image import (CorruptImage, ImageTooLarge, UnsupportedImageFormat, XrayImageError, load_xray,
                                 load_xray_bytes, normalize, preprocess, sniff_format, to_model_size)
from tests.conftest import shared_path

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def pydicom_file(name: str) -> Path:
    # Read the shipped file directly: get_testdata_file would try to download missing ones.
    p = PYDICOM_FILES / name
    if not p.exists():
        pytest.skip(f"pydicom test file {name} is not installed")
    return p


def png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares a huge size: the classic decompression bomb shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return xi.PNG_MAGIC + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def gradient(h: int = 300, w: int = 260) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return ((x + y) % 256).astype(np.uint8)


def test_sniff_format_by_content() -> None:
    assert sniff_format(xi.PNG_MAGIC + b"rest") == "png"
    assert sniff_format(b"\xff\xd8\xff\xe0" + b"\0" * 10) == "jpeg"
    assert sniff_format(b"\0" * 128 + b"DICM") == "dicom"
    assert sniff_format(b"GIF89a....") is None
    assert sniff_format(b"%PDF-1.7") is None


def test_png_and_jpeg_load_grayscale_and_colour(tmp_path: Path) -> None:
    g = gradient()
    im = load_xray_bytes(png_bytes(g))
    assert im.source_format == "png" and im.pixels.shape == g.shape and im.colourfulness == 0
    np.testing.assert_array_equal(im.pixels, g.astype(np.float32))
    rgb = np.stack([g, 255 - g, np.full_like(g, 128)], axis=2)
    assert load_xray_bytes(png_bytes(rgb)).colourfulness > 50
    grey_rgba = np.stack([g, g, g, np.full_like(g, 255)], axis=2)  # NIH stores a few films as RGBA
    assert load_xray_bytes(png_bytes(grey_rgba)).colourfulness == 0
    buf = io.BytesIO()
    Image.fromarray(g).save(buf, format="JPEG", quality=90)
    p = tmp_path / "film.png"  # wrong extension on purpose: the content decides
    p.write_bytes(buf.getvalue())
    im = load_xray(p)
    assert im.source_format == "jpeg" and im.pixels.shape == g.shape


def test_16bit_png_is_stretched_to_0_255() -> None:
    arr = (np.arange(200 * 100, dtype=np.uint16).reshape(200, 100) * 3).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    im = load_xray_bytes(buf.getvalue())
    assert im.pixels.min() == 0 and abs(im.pixels.max() - 255) < 1e-3


def test_decompression_bomb_header_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLarge, match="decompression bomb"):
        load_xray_bytes(png_header_only(100_000, 100_000), "bomb.png")


def test_pillow_bomb_guard_also_reported_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's own guard fires first
    with pytest.raises(ImageTooLarge):
        load_xray_bytes(png_bytes(gradient(100, 100)), "big.png")


def test_pixel_limit_applies_to_real_images(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xi, "MAX_PIXELS", 5000)
    with pytest.raises(ImageTooLarge):
        load_xray_bytes(png_bytes(gradient(100, 100)), "big.png")


def test_truncated_png_and_jpeg_refused() -> None:
    data = png_bytes(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8))
    with pytest.raises(CorruptImage, match="damaged or truncated"):
        load_xray_bytes(data[: len(data) // 2], "half.png")
    buf = io.BytesIO()
    Image.fromarray(gradient()).save(buf, format="JPEG")
    with pytest.raises(CorruptImage):
        load_xray_bytes(buf.getvalue()[:400], "half.jpg")


@pytest.mark.parametrize("payload", [b"hello, not an image", b"%PDF-1.7\n...", b"GIF89a" + b"\0" * 200, b"BM" + b"\0" * 200])
def test_non_images_and_other_formats_refused(tmp_path: Path, payload: bytes) -> None:
    p = tmp_path / "x.png"
    p.write_bytes(payload)
    with pytest.raises(UnsupportedImageFormat, match="not a PNG, JPEG or DICOM"):
        load_xray(p)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(CorruptImage, match="empty"):
        load_xray(tmp_path / "empty.png")
    with pytest.raises(XrayImageError, match="cannot be read"):
        load_xray(tmp_path / "missing.png")


def test_corrupt_png_body_refused() -> None:
    data = bytearray(png_bytes(gradient()))
    data[60:200] = b"\0" * 140  # damage the compressed stream, keep the header
    with pytest.raises(CorruptImage):
        load_xray_bytes(bytes(data), "bad.png")


def _dicom(arr: np.ndarray, **attrs: object) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = SecondaryCaptureImageStorage, meta.MediaStorageSOPInstanceUID, "CR"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = arr.astype(np.uint16).tobytes()
    for k, v in attrs.items():
        setattr(ds, k, v)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_dicom_rescale_and_window_applied() -> None:
    arr = np.tile(np.linspace(0, 4000, 64).astype(np.uint16), (32, 1))
    # slope 2 / intercept -1000 gives -1000..7000; the window 2000 +- 1000 must clip both ends
    im = load_xray_bytes(_dicom(arr, RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=2000, WindowWidth=2000))
    px = im.pixels
    assert im.source_format == "dicom" and px.shape == (32, 64)
    assert px[0, 0] == 0 and px[0, -1] == 255
    hu = arr[0] * 2.0 - 1000
    inside = (hu > 1100) & (hu < 2900)
    assert np.all(np.diff(px[0, inside]) > 0)  # linear ramp inside the window
    assert np.all(px[0, hu < 1000] == 0) and np.all(px[0, hu > 3000] == 255)


def test_dicom_monochrome1_is_inverted() -> None:
    arr = np.tile(np.arange(0, 4000, 50, dtype=np.uint16), (10, 1))
    m2 = load_xray_bytes(_dicom(arr)).pixels
    m1 = load_xray_bytes(_dicom(arr, PhotometricInterpretation="MONOCHROME1")).pixels
    np.testing.assert_allclose(255 - m1, m2, atol=1e-4)


def test_dicom_huge_header_refused_before_decoding() -> None:
    data = _dicom(np.zeros((8, 8), np.uint16), Rows=60000, Columns=60000)
    with pytest.raises(ImageTooLarge):
        load_xray_bytes(data, "huge.dcm")


def test_dicom_without_image_or_truncated() -> None:
    with pytest.raises(UnsupportedImageFormat, match="without an image"):
        load_xray(pydicom_file("rtplan.dcm"))
    with pytest.raises(CorruptImage):
        load_xray(pydicom_file("MR_truncated.dcm"))
    data = pydicom_file("CT_small.dcm").read_bytes()
    with pytest.raises(CorruptImage):
        load_xray_bytes(data[: len(data) - 3000], "cut.dcm")


def test_shared_dicom_samples_decode_to_the_same_picture() -> None:
    mono2 = load_xray(shared_path("dicom", "rsna_pneumonia_example.dcm"))
    mono1 = load_xray(shared_path("dicom", "Fake_MONOHR1.dcm"))
    assert mono2.pixels.shape == (1024, 1024) and mono2.meta["PhotometricInterpretation"] == "MONOCHROME2"
    assert mono2.pixels.std() > 20  # a real picture, not a blank decode of the JPEG stream
    np.testing.assert_allclose(255.0 - mono1.pixels, mono2.pixels, atol=1e-4)


def test_preprocess_shape_and_per_image_standardisation() -> None:
    g = gradient(400, 300).astype(np.float32)
    x = preprocess(g)
    assert x.shape == (1, 1, 128, 128) and x.dtype == np.float32
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-2
    # brightness/contrast changes (as in the JPEG-routed copies) barely move the input
    u8 = to_model_size(g)
    a, b = normalize(u8), normalize(np.clip(u8 * 0.8 + 20, 0, 255))
    assert float(np.abs(a - b).mean()) < 0.02
    batch = np.stack([u8, 255 - u8])
    np.testing.assert_allclose(normalize(batch)[1], normalize(255 - u8), atol=1e-6)
    assert to_model_size(u8) is not None and np.array_equal(to_model_size(u8), u8)
    assert np.isfinite(preprocess(np.zeros((50, 50)))).all()  # blank input stays finite


def test_a_refused_file_is_told_plainly_not_as_an_unexpected_fault():
    from services.imaging.xray_image import UnsupportedImageFormat
    from viewmodels.session_vm import user_message
    exc = UnsupportedImageFormat("wardlens.svg is not a PNG, JPEG or DICOM image.")
    assert user_message(exc) == "wardlens.svg is not a PNG, JPEG or DICOM image." and isinstance(exc, ValueError)


@pytest.mark.parametrize("name,syntax", [("JPEG2000.dcm", "JPEG 2000"), ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS"),
                                         ("JPEGLSNearLossless_16.dcm", "JPEG-LS")])
def test_pacs_compressions_are_decoded(name: str, syntax: str) -> None:
    """JPEG 2000 (pylibjpeg-openjpeg) and JPEG-LS (pyjpegls), which PACS exports and CDs use, decode to pixels."""
    from pydicom.data import get_testdata_file
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not among pydicom's bundled test files here")
    assert syntax in pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID.name
    im = xi.load_xray(path)
    assert im.source_format == "dicom" and im.pixels.ndim == 2 and im.pixels.std() > 0


def test_twelve_bit_jpeg_is_refused_with_what_to_do() -> None:
    from pydicom.data import get_testdata_file
    path = get_testdata_file("JPEG-lossy.dcm", download=False)
    if path is None:
        pytest.skip("JPEG-lossy.dcm is not among pydicom's bundled test files here")
    with pytest.raises(xi.CorruptImage, match="export it from the PACS uncompressed, as JPEG 2000 or as JPEG-LS"):
        xi.load_xray(path)


def test_a_dicom_film_says_its_view_body_part_and_study_date() -> None:
    assert xi.film_description({"ViewPosition": "pa", "BodyPartExamined": "CHEST", "StudyDate": "20190502"}) == \
        "PA view · chest · study of 2019-05-02"
    assert xi.film_description({}) == "" and xi.film_description({"StudyDate": "garbage"}) == ""


def test_a_stored_dicom_keeps_the_film_and_nothing_that_names_the_patient() -> None:
    """Names and numbers planted wherever a PACS may write them (free-text descriptions, order numbers, alerts, an
    insurance code's meaning, a UID built from the record number and birth date, a private tag, the preamble) are
    not in the stored bytes at all; the picture, the file's window, view, body part and study date are."""
    from pydicom.dataset import Dataset as Item
    from services.imaging.xray_image import film_description, without_identity
    arr = np.tile(np.linspace(0, 4000, 64).astype(np.uint16), (48, 1))
    code = Item()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "X1", "99LOCAL", "Plan of Qwertyfamily"
    lut = Item()
    lut.LUTDescriptor, lut.LUTExplanation = [4, 0, 16], "Secretname's LUT"
    lut.add_new("LUTData", "US", [0, 1000, 3000, 4000])
    planted = dict(
        PatientName="Qwertyfamily^Ada", PatientID="MRN4711999", PatientBirthDate="19800312",
        StudyDescription="CHEST PA Secretname Ada MRN4711999", RequestedProcedureDescription="Chest for Qwertyfamily",
        PerformedProcedureStepDescription="Secretname chest", MedicalAlerts="Qwertyfamily allergic",
        Occupation="Secretname's job", AdmissionID="MRN4711999-ADM", CurrentPatientLocation="Ward Secretname",
        InstitutionalDepartmentName="Qwertyfamily wing", PlacerOrderNumberImagingServiceRequest="MRN4711999-P",
        FillerOrderNumberImagingServiceRequest="MRN4711999-F", DeviceSerialNumber="SN-Secretname",
        StudyInstanceUID="1.2.826.0.1.4711999.19800312", SeriesInstanceUID="1.2.826.0.1.4711999.19800312.1",
        PatientInsurancePlanCodeSequence=[code], ImageComments="Qwertyfamily", WindowCenter=2000, WindowWidth=2000,
        ViewPosition="PA", BodyPartExamined="CHEST", StudyDate="20190502", VOILUTSequence=[lut])
    ds = pydicom.dcmread(io.BytesIO(_dicom(arr, **planted)))
    ds.add_new(0x00091010, "LO", "Secretname private")
    ds.preamble = b"MRN4711999".ljust(128, b"\0")
    buf = io.BytesIO()
    ds.save_as(buf)
    data = buf.getvalue()
    assert b"Secretname" in data and b"4711999" in data and b"Qwertyfamily" in data   # planted where they can be
    stored = without_identity(data, "dicom", "film.dcm")
    for secret in (b"Secretname", b"Qwertyfamily", b"4711999", b"19800312"):
        assert secret not in stored, secret
    before, after = load_xray_bytes(data), load_xray_bytes(stored)
    np.testing.assert_array_equal(after.pixels, before.pixels)
    assert film_description(after.meta) == film_description(before.meta) == "PA view · chest · study of 2019-05-02"
    kept = pydicom.dcmread(io.BytesIO(stored))
    assert kept.StudyInstanceUID != planted["StudyInstanceUID"] and kept.file_meta.MediaStorageSOPInstanceUID == \
        kept.SOPInstanceUID
    assert list(kept.VOILUTSequence[0].keys()) and "LUTExplanation" not in kept.VOILUTSequence[0]


@pytest.mark.parametrize("name", ["ExplVR_BigEnd.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm",
                                  "MR_small_jpeg_ls_lossless.dcm"])
def test_the_stored_copy_of_a_pacs_file_shows_the_same_picture(name: str) -> None:
    """Big endian, RLE, JPEG 2000, JPEG-LS: stored in the encoding it came in."""
    from services.imaging.xray_image import without_identity
    data = pydicom_file(name).read_bytes()
    np.testing.assert_array_equal(load_xray_bytes(without_identity(data, "dicom", name)).pixels,
                                  load_xray_bytes(data).pixels)
