"""Chest X-ray image loading (PNG, JPEG, DICOM) with input guards, and the one shared preprocessing step.

`preprocess` is imported by training/xray.py as well as by services/imaging/xray.py so that the network sees
exactly the same pixels at training time and in the application. This module must stay free of torch
and onnxruntime so that both sides can import it cheaply.

Guards: the format is decided by the file's content (magic bytes), never by its name; only PNG, JPEG
and DICOM are accepted; images above MAX_PIXELS or MAX_DECODED_BYTES are refused before their pixels are decoded (PNG/JPEG
"decompression bombs", DICOM headers claiming huge sizes, deflated DICOM that inflates past MAX_FILE_BYTES); truncated or damaged files raise a
typed error with a message a user can act on.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from services.core.errors import WardLensError

MODEL_SIZE = 128                 # network input is MODEL_SIZE x MODEL_SIZE, like nih_cxr14_128.npz
MAX_PIXELS = 24_000_000          # a large CR/DR detector is ~4300 x 4300 = 18.5 M pixels
MAX_FILE_BYTES = 100 * 1024 * 1024
# Budget on decoded bytes, checked from headers before any pixel is decoded: the decoded array plus the float32
# working copies (grey, stretched, resized) must fit. A deflated DICOM is inflated only up to MAX_FILE_BYTES.
MAX_DECODED_BYTES = 300 * 1024 * 1024
WORKING_COPIES = 3               # grey, stretched, resized (a DICOM's values for window/level only where they fit too)
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # also guards the Pillow-based DICOM JPEG decoders
_NORM_EPS = 1e-2                 # floor for the per-image std on the 0..1 scale (blank images stay finite)
_NORM_CLIP = 5.0

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


class XrayImageError(WardLensError, ValueError):
    """The file cannot be used as an X-ray image; str(error) is a complete sentence for the user (so the
    application shows it as it is, not as an unexpected fault)."""


class UnsupportedImageFormat(XrayImageError):
    pass


class ImageTooLarge(XrayImageError):
    pass


class CorruptImage(XrayImageError):
    pass


@dataclass
class LoadedImage:
    """A decoded image ready for display and for `preprocess`.

    pixels: float32 grayscale on a 0..255 scale, already inverted for MONOCHROME1 and windowed for DICOM.
    colourfulness: mean per-pixel channel spread (0..255) of the original; 0 for grayscale sources.
    """

    pixels: np.ndarray
    source_format: str
    colourfulness: float = 0.0
    meta: dict[str, str] = field(default_factory=dict)
    # A monochrome DICOM with a linear window: its values after the modality rescale (before any window), the file's
    # own window (centre, width; None: the whole range), and whether high values are dark (MONOCHROME1). What the
    # viewer re-windows; `pixels` (what the model saw) stays as the file's window made it.
    values: np.ndarray | None = None
    window: tuple[float, float] | None = None
    inverted: bool = False

    @property
    def can_window(self) -> bool:
        return self.values is not None

    def value_range(self) -> tuple[float, float]:
        return (float(np.min(self.values)), float(np.max(self.values))) if self.values is not None else (0.0, 255.0)

    def default_window(self) -> tuple[float, float]:
        """The file's own window, else the whole range of values."""
        if self.window is not None:
            return self.window
        lo, hi = self.value_range()
        return (lo + hi) / 2.0, max(hi - lo, 1.0)


def sniff_format(head: bytes) -> str | None:
    """'png', 'jpeg' or 'dicom' from the first 132 bytes, else None (allow-list by content)."""
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    return None


def load_xray(path: str | Path) -> LoadedImage:
    """Decode a PNG, JPEG or DICOM file into a grayscale LoadedImage, or raise an XrayImageError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageTooLarge(f"{path.name} is {size / 2**20:.0f} MB; files above {MAX_FILE_BYTES // 2**20} MB are refused.")
        data = path.read_bytes()
    except OSError as exc:
        raise XrayImageError(f"{path.name} cannot be read: {exc.strerror or exc}.") from exc
    return load_xray_bytes(data, path.name)


def load_xray_bytes(data: bytes, name: str = "image") -> LoadedImage:
    if len(data) > MAX_FILE_BYTES:
        raise ImageTooLarge(f"{name} is larger than {MAX_FILE_BYTES // 2**20} MB and is refused.")
    fmt = sniff_format(data[:132])
    if fmt is None:
        if not data:
            raise CorruptImage(f"{name} is empty.")
        raise UnsupportedImageFormat(f"{name} is not a PNG, JPEG or DICOM image (checked by content, not by name).")
    if fmt == "dicom":
        return _load_dicom(data, name)
    return _load_pil(data, name, fmt)


def _check_pixels(n: int, name: str, what: str, samples: int = 1, bytes_per_sample: int = 1) -> None:
    """Refuse before decoding what would exceed MAX_PIXELS or the decoded-bytes budget."""
    if n > MAX_PIXELS:
        raise ImageTooLarge(f"{name} declares {what} ({n / 1e6:.0f} M pixels); images above "
                            f"{MAX_PIXELS / 1e6:.0f} M pixels are refused as a possible decompression bomb.")
    need = n * samples * bytes_per_sample + WORKING_COPIES * 4 * n
    if need > MAX_DECODED_BYTES:
        raise ImageTooLarge(f"{name} declares {what}, which would take {need / 2**20:.0f} MB to decode; images above "
                            f"{MAX_DECODED_BYTES // 2**20} MB decoded are refused.")


def _check_inflated_size(data: bytes, name: str) -> None:
    """A deflated DICOM (transfer syntax 1.2.840.10008.1.2.1.99) is inflated whole by pydicom: measure it first,
    streaming and discarding, and refuse it past MAX_FILE_BYTES (1.5 MB had inflated to 2.9 GB)."""
    import zlib

    from pydicom.filereader import _read_file_meta_info, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    fp = io.BytesIO(data)
    try:
        read_preamble(fp, False)
        meta = _read_file_meta_info(fp)
    except Exception:  # noqa: BLE001 - not a Part 10 file with a readable meta group: pydicom reports it later
        return
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return
    inflater, total, rest = zlib.decompressobj(-zlib.MAX_WBITS), 0, memoryview(data)[fp.tell():]
    chunk = 1 << 20
    while rest or inflater.unconsumed_tail:
        feed = inflater.unconsumed_tail or rest[:chunk]
        if not inflater.unconsumed_tail:
            rest = rest[chunk:]
        try:
            total += len(inflater.decompress(feed, chunk))
        except zlib.error as exc:
            raise CorruptImage(f"{name}: the deflated DICOM data is damaged ({exc}).") from exc
        if total > MAX_FILE_BYTES:
            raise ImageTooLarge(f"{name} is a compressed DICOM that inflates to more than {MAX_FILE_BYTES // 2**20} MB; "
                                "it is refused as a possible decompression bomb.")
        if inflater.eof:
            break


def _load_pil(data: bytes, name: str, fmt: str) -> LoadedImage:
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; make the warning an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as im:
                w, h = im.size
                bands = len(im.getbands())
                _check_pixels(w * h, name, f"{w} x {h}", bands, 2 if im.mode.startswith("I") else 1)
                im.load()  # decode now, inside the guards
                return _from_pil(im, fmt)
    except XrayImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"{name} is refused as a possible decompression bomb ({exc}).") from exc
    except UnidentifiedImageError as exc:
        raise CorruptImage(f"{name} looks like {fmt.upper()} but cannot be decoded; the file is damaged.") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's truncated/broken-stream errors
        raise CorruptImage(f"{name} is a damaged or truncated {fmt.upper()} file ({exc}).") from exc


def _from_pil(im: Image.Image, fmt: str) -> LoadedImage:
    colour = 0.0
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float32)
        arr = _stretch(arr)  # 16-bit grayscale: map its own range to 0..255
    else:
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGBA").convert("RGB") if im.mode in ("P", "PA", "LA", "RGBA") else im.convert("RGB")
        if im.mode == "RGB":
            rgb = np.asarray(im)  # uint8: the channel spread is measured without a float copy of three channels
            colour = float(np.ptp(rgb, axis=2).mean())
            im = im.convert("L")  # ITU-R 601 luma, what Pillow used for the training images
        arr = np.asarray(im, dtype=np.float32)
    return LoadedImage(np.ascontiguousarray(arr), fmt, colour)


def _stretch(arr: np.ndarray) -> np.ndarray:
    """To 0..255 in place where `arr` is already float32 (no working copy of a large film)."""
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if hi <= lo:
        return np.zeros(arr.shape, np.float32)
    out = arr if arr.dtype == np.float32 else arr.astype(np.float32)
    out -= lo
    out *= 255.0 / (hi - lo)
    return out


def _intensities(arr: np.ndarray, ds, modality_lut, voi_lut) -> np.ndarray:
    """Rescale slope/intercept and a linear window in float32, in place (pydicom's own functions work in float64:
    a 4300 x 4300 film took 560 MB). LUT sequences and non-linear VOI functions go through pydicom."""
    if "ModalityLUTSequence" in ds or "VOILUTSequence" in ds or \
            str(ds.get("VOILUTFunction", "LINEAR")).upper() not in ("LINEAR", ""):
        return np.asarray(voi_lut(modality_lut(arr, ds), ds), dtype=np.float32)
    gray = arr.astype(np.float32)
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    if slope != 1.0:
        gray *= slope
    if intercept:
        gray += intercept
    window = file_window(ds)
    if window is not None:
        apply_window(gray, *window)
    return gray


def file_window(ds) -> tuple[float, float] | None:
    """The DICOM file's own (first) window centre and width, where it has a usable one."""
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centre is None or width is None:
        return None
    try:
        c = float(centre[0] if getattr(centre, "VM", 1) > 1 else centre)
        w = float(width[0] if getattr(width, "VM", 1) > 1 else width)
    except (TypeError, ValueError):
        return None
    return (c, w) if w >= 1 and np.isfinite(c) and np.isfinite(w) else None


def apply_window(gray: np.ndarray, centre: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1, linear: clip((x - (c - 0.5)) / (w - 1) + 0.5) to 0..1, in place on float32."""
    gray -= centre - 0.5
    gray *= 1.0 / max(width - 1.0, 1.0)
    gray += 0.5
    np.clip(gray, 0.0, 1.0, out=gray)
    return gray


def windowed(image: "LoadedImage", centre: float, width: float) -> np.ndarray:
    """The film on a 0..255 scale under another window (the viewer's window/level), bone white as on screen."""
    if image.values is None:
        return image.pixels
    out = apply_window(image.values.copy(), centre, max(float(width), 1.0))
    out *= 255.0
    return 255.0 - out if image.inverted else out


class _without_window:
    """A dataset seen without its window, so that _intensities applies the modality rescale only."""

    def __init__(self, ds) -> None:
        self._ds = ds

    def __contains__(self, key) -> bool:
        return key in self._ds

    def get(self, key, default=None):
        return default if key in ("WindowCenter", "WindowWidth") else self._ds.get(key, default)


def _load_dicom(data: bytes, name: str) -> LoadedImage:
    # Every pydicom step parses untrusted bytes and raises many unrelated types (struct.error,
    # NotImplementedError, BytesLengthException, ...): each step maps all of them to one typed error.
    try:
        return _decode_dicom(data, name)
    except XrayImageError:
        raise
    except MemoryError as exc:
        raise ImageTooLarge(f"{name}: the DICOM image is too large to decode.") from exc
    except Exception as exc:  # noqa: BLE001  (see above)
        raise CorruptImage(f"{name} is a damaged or truncated DICOM file ({type(exc).__name__}: {exc}).") from exc


def _decode_dicom(data: bytes, name: str) -> LoadedImage:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on recoverable oddities; hard failures still raise
        _check_inflated_size(data, name)
        ds = pydicom.dcmread(io.BytesIO(data))
        if "PixelData" not in ds:
            raise UnsupportedImageFormat(f"{name} is a DICOM file without an image (for example a report or plan).")
        try:
            rows, cols = int(ds.Rows), int(ds.Columns)
            frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
            spp = int(getattr(ds, "SamplesPerPixel", 1) or 1)
            bits = int(getattr(ds, "BitsAllocated", 16) or 16)
        except (AttributeError, TypeError, ValueError) as exc:
            raise CorruptImage(f"{name}: the DICOM header lacks a valid image size.") from exc
        if min(rows, cols, frames, spp) <= 0:
            raise CorruptImage(f"{name}: the DICOM header declares an empty image.")
        _check_pixels(rows * cols * frames, name, f"{cols} x {rows} x {frames} frame(s) x {spp} sample(s)", spp,
                      max(1, (bits + 7) // 8))
        # one more float32 copy for window/level, only where it fits the same budget: a film that decodes at all
        # always opens; the largest ones then keep the file's window only
        room_for_window = rows * cols * frames * (spp * max(1, (bits + 7) // 8) + 4 * (WORKING_COPIES + 1)) \
            <= MAX_DECODED_BYTES
        try:
            arr = ds.pixel_array
        except Exception as exc:  # noqa: BLE001  missing codecs and short pixel data raise many types
            tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "?")
            what = getattr(tsyntax, "name", str(tsyntax))
            if "JPEG Extended" in what or "JPEG Lossless" in what:   # 12-bit JPEG: no permissively licensed decoder
                raise CorruptImage(f"{name}: the image is compressed as {what}, which WardLens cannot decode; export "
                                   "it from the PACS uncompressed, as JPEG 2000 or as JPEG-LS.") from exc
            raise CorruptImage(f"{name}: the DICOM pixel data cannot be decoded ({type(exc).__name__}: {exc}). "
                               f"Transfer syntax {tsyntax}.") from exc
        if frames > 1 and arr.ndim >= 3 and arr.shape[0] == frames:
            arr = arr[0]  # multi-frame: a radiograph has one; use the first
        photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
        colour = 0.0
        values = None
        if arr.ndim == 3:
            rgb = np.asarray(arr, dtype=np.float32)  # pydicom 3 already converts YBR to RGB in pixel_array
            colour = float((rgb.max(axis=2) - rgb.min(axis=2)).mean())
            gray = rgb[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
        elif arr.ndim == 2:
            linear = room_for_window and not ("ModalityLUTSequence" in ds or "VOILUTSequence" in ds or
                                              str(ds.get("VOILUTFunction", "LINEAR")).upper() not in ("LINEAR", ""))
            try:
                if linear:   # keep the values before the window, for the viewer's window/level
                    values = _intensities(arr, _without_window(ds), apply_modality_lut, apply_voi_lut)
                    window = file_window(ds)
                    gray = apply_window(values.copy(), *window) if window is not None else values.copy()
                else:
                    gray = _intensities(arr, ds, apply_modality_lut, apply_voi_lut)
            except Exception as exc:  # noqa: BLE001
                raise CorruptImage(f"{name}: the DICOM intensity tables are invalid ({exc}).") from exc
            del arr, ds.PixelData  # the raw copies are not needed past this point
        else:
            raise CorruptImage(f"{name}: the DICOM pixel data has an unexpected shape {arr.shape}.")
        if not np.isfinite(gray).all():
            raise CorruptImage(f"{name}: the DICOM pixel data holds invalid values.")
        if values is not None and not np.isfinite(values).all():
            values = None
        gray = _stretch(gray)
        if photometric == "MONOCHROME1":
            gray = 255.0 - gray  # MONOCHROME1: high values are dark; show bone white like MONOCHROME2
        meta = {k: str(ds.get(k, "")) for k in ("Modality", "BodyPartExamined", "ViewPosition", "PhotometricInterpretation",
                                                "PatientID", "PatientName", "PatientBirthDate", "PatientSex",
                                                "StudyDate", "StudyTime")}
    return LoadedImage(np.ascontiguousarray(gray, dtype=np.float32), "dicom", colour, meta, values,
                       file_window(ds) if values is not None else None, photometric == "MONOCHROME1")


def film_description(meta: dict[str, str]) -> str:
    """What a DICOM says of itself, in words ("PA view · chest · study of 2019-05-02"); "" for PNG and JPEG."""
    parts = []
    view = (meta.get("ViewPosition") or "").strip().upper()
    if view:
        parts.append(f"{view} view")
    part = (meta.get("BodyPartExamined") or "").strip()
    if part:
        parts.append(part.lower().replace("_", " "))
    date = (meta.get("StudyDate") or "").strip()
    if len(date) == 8 and date.isdigit():
        parts.append(f"study of {date[:4]}-{date[4:6]}-{date[6:]}")
    return " · ".join(parts)


# ---------------------------------------------------------------- shared preprocessing (training + app)

def to_model_size(gray: np.ndarray, size: int = MODEL_SIZE) -> np.ndarray:
    """uint8 size x size image: round to 8 bits, then Pillow LANCZOS resize (how the npz was made).

    Non-square images are resized without padding, as NIH did when it made its 1024 x 1024 PNGs.
    """
    u8 = np.clip(np.rint(np.asarray(gray, dtype=np.float32)), 0, 255).astype(np.uint8)
    if u8.shape == (size, size):
        return u8
    return np.asarray(Image.fromarray(u8, mode="L").resize((size, size), Image.LANCZOS), dtype=np.uint8)


def normalize(u8: np.ndarray) -> np.ndarray:
    """Per-image standardisation over the last two axes (works on one image or a batch).

    Per image because copies that went through lossy JPEG also had brightness/contrast changes.
    """
    x = np.asarray(u8, dtype=np.float32) / 255.0
    mean = x.mean(axis=(-2, -1), keepdims=True)
    std = x.std(axis=(-2, -1), keepdims=True)
    return np.clip((x - mean) / np.maximum(std, _NORM_EPS), -_NORM_CLIP, _NORM_CLIP).astype(np.float32)


def preprocess(gray: np.ndarray) -> np.ndarray:
    """Grayscale (0..255) image of any size -> float32 (1, 1, MODEL_SIZE, MODEL_SIZE) network input."""
    return normalize(to_model_size(gray))[None, None]


# ---------------------------------------------------------------- what is stored

# What a stored DICOM file keeps: only what decoding, display and the header rule read. An allow-list, because a
# name, a record number or a birth date can sit in any free-text attribute a PACS fills (study and procedure
# descriptions, order numbers, alerts, insurance codes, even a UID built from the record number): a list of the
# identifying ones can never be complete. The record says whose film it is, under the identity key.
KEPT_TAGS = frozenset((
    # image pixel module and its palettes
    "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
    "PixelRepresentation", "PlanarConfiguration", "PixelAspectRatio", "NumberOfFrames", "FrameIncrementPointer",
    "SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue", "PixelPaddingRangeLimit",
    "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData", "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData", "SegmentedBluePaletteColorLookupTableData",
    "PixelData", "FloatPixelData", "DoubleFloatPixelData", "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
    # modality and VOI LUTs (the file's own window is the viewer's default)
    "RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence", "WindowCenter", "WindowWidth",
    "VOILUTFunction", "VOILUTSequence", "PresentationLUTShape", "PixelIntensityRelationship",
    "PixelIntensityRelationshipSign",
    # what the header rule and the viewer show
    "SpecificCharacterSet", "SOPClassUID", "Modality", "BodyPartExamined", "ViewPosition", "ImageLaterality",
    "Laterality", "PatientOrientation", "ImageType", "StudyDate", "StudyTime", "PixelSpacing",
    "ImagerPixelSpacing", "BurnedInAnnotation", "LossyImageCompression", "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
))
LUT_ITEM_TAGS = frozenset(("LUTDescriptor", "LUTData", "ModalityLUTType"))   # not LUTExplanation: free text


def without_identity(data: bytes, fmt: str, name: str = "image") -> bytes:
    """The bytes to store: for a DICOM file, a new file of the KEPT_TAGS only (pixels and transfer syntax
    untouched; new study, series and instance UIDs; private tags, every sequence but the two LUTs, descriptions,
    comments, names and numbers gone). A name burned into the pixels, or in a comment inside compressed pixel data,
    is not removed. PNG and JPEG are stored as they came (their text and
    EXIF fields are not yet stripped: docs/security.md)."""
    if fmt != "dicom":
        return data
    import pydicom   # imported on first use, as for decoding (start-up stays fast)
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import generate_uid
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        for elem in list(ds):   # in place, so the file keeps the encoding it came in (big endian included)
            if elem.keyword not in KEPT_TAGS:   # private tags have no keyword
                del ds[elem.tag]
        for key in ("ModalityLUTSequence", "VOILUTSequence"):
            for item in ds.get(key, None) or []:
                for elem in list(item):
                    if elem.keyword not in LUT_ITEM_TAGS:
                        del item[elem.tag]
        source = getattr(ds, "file_meta", None) or FileMetaDataset()
        meta = FileMetaDataset()   # new: the source's meta may name the sending station
        meta.FileMetaInformationVersion = b"\x00\x01"
        meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
        meta.MediaStorageSOPClassUID = ds.get("SOPClassUID") or source.get("MediaStorageSOPClassUID") or \
            pydicom.uid.SecondaryCaptureImageStorage
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        if "TransferSyntaxUID" in source:
            meta.TransferSyntaxUID = source.TransferSyntaxUID
        ds.file_meta = meta
        ds.preamble = b"\0" * 128   # 128 free bytes (a TIFF header in dual-format files): nothing of the source
        out = io.BytesIO()
        ds.save_as(out)
        return out.getvalue()
    except Exception as exc:  # noqa: BLE001 - any failure: not stored, said so
        raise CorruptImage(f"{name}: its identifying header could not be removed for storage ({exc}).") from exc
