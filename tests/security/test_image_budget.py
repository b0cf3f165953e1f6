"""Images: a budget on decoded bytes before decoding, for deflated DICOM, declared sizes and PNG alike."""
from __future__ import annotations

import io
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from services.imaging.xray_image import ImageTooLarge, MAX_DECODED_BYTES, load_xray_bytes
from tests.security.conftest import ROOT


def _dicom(rows: int, cols: int, ts: str, pixels: bytes | None = None, bits: int = 16) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ts
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", "PA"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PixelData = pixels if pixels is not None else bytes(rows * cols * bits // 8)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _deflate_bomb(inflated_mb: int) -> bytes:
    """A valid deflated DICOM whose dataset hides `inflated_mb` MB of zeros in a private OB element."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian
    small = _dicom(8, 8, DeflatedExplicitVRLittleEndian)
    from pydicom.filereader import _read_file_meta_info, read_preamble
    fp = io.BytesIO(small)
    read_preamble(fp, False)
    _read_file_meta_info(fp)
    head, body = small[:fp.tell()], zlib.decompress(small[fp.tell():], -zlib.MAX_WBITS)
    size = inflated_mb * 2**20
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [z.compress(b"\x09\x00\x10\x10OB\x00\x00" + size.to_bytes(4, "little"))]
    zeros = bytes(16 * 2**20)
    for _ in range(inflated_mb // 16):
        out.append(z.compress(zeros))
    out.append(z.compress(body))
    out.append(z.flush())
    return head + b"".join(out)


PROBE = """
import sys
sys.path.insert(0, {root!r})
from services.imaging.xray_image import load_xray, XrayImageError
try:
    load_xray(sys.argv[1])
    print("decoded")
except XrayImageError as exc:
    print(type(exc).__name__, str(exc)[:60].replace(" ", "_"))
# VmHWM: this process's own peak (ru_maxrss would carry the parent's peak over fork and exec)
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) // 1024)
"""


def _load_in_child(path) -> tuple[str, int]:
    r = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT)), str(path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    return lines[0], int(lines[1])


def test_a_deflated_dicom_bomb_is_refused_without_inflating_it(tmp_path):
    """Before: a 1.46 MB DICOM with the deflated transfer syntax decoded to 2.9 GB of memory."""
    bomb = tmp_path / "bomb.dcm"
    bomb.write_bytes(_deflate_bomb(1024))
    assert bomb.stat().st_size < 3 * 2**20
    said, peak_mb = _load_in_child(bomb)
    assert said.startswith("ImageTooLarge") and "inflates" in said.replace("_", " ")
    assert peak_mb < 300, peak_mb


def test_a_legitimate_deflated_dicom_still_opens():
    from pydicom.uid import DeflatedExplicitVRLittleEndian
    pixels = (np.arange(64 * 64, dtype=np.uint16) % 4096).tobytes()
    img = load_xray_bytes(_dicom(64, 64, DeflatedExplicitVRLittleEndian, pixels), "ok.dcm")
    assert img.pixels.shape == (64, 64) and img.pixels.max() == 255


@pytest.mark.parametrize("rows,cols,bits", [(20000, 20000, 16), (5000, 5000, 16), (4800, 4800, 32)])
def test_a_dicom_declaring_more_than_the_budget_is_refused_before_decoding(rows, cols, bits):
    from pydicom.uid import ExplicitVRLittleEndian
    data = _dicom(rows, cols, ExplicitVRLittleEndian, pixels=b"\x00" * 64, bits=bits)  # a huge declared size
    with pytest.raises(ImageTooLarge, match="refused"):
        load_xray_bytes(data, "big.dcm")


def test_a_png_beyond_the_budget_is_refused_before_decoding():
    buf = io.BytesIO()
    Image.new("RGB", (6000, 4800)).save(buf, "PNG")  # 28.8 M pixels, a few KB of PNG
    with pytest.raises(ImageTooLarge):
        load_xray_bytes(buf.getvalue(), "wide.png")


def test_the_largest_film_a_detector_makes_decodes_within_the_budget(tmp_path):
    """A 4300 x 4300 16-bit DX (the largest common detector) opens, and the whole process stays near the budget."""
    from pydicom.uid import ExplicitVRLittleEndian
    pixels = np.random.default_rng(0).integers(0, 4096, (4300, 4300), dtype=np.uint16).tobytes()
    film = tmp_path / "film.dcm"
    film.write_bytes(_dicom(4300, 4300, ExplicitVRLittleEndian, pixels))
    said, peak_mb = _load_in_child(film)
    assert said == "decoded"
    assert peak_mb < MAX_DECODED_BYTES // 2**20 + 100, peak_mb  # + the interpreter, numpy and pydicom themselves
