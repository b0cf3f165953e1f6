"""A DICOMDIR (the index on a CD or USB stick from another hospital) read as the list of its images, so that the
user picks the chest radiographs to add instead of being told "a DICOM file without an image".

pydicom's FileSet reads the index; every file it names must lie inside the folder of the DICOMDIR (a crafted index
could name ../../ anything), exist and be a plain file. Nothing is decoded here: each chosen file then goes through
the same checks as any image (services.imaging.studies.add_study: identity, header, model).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from services.core.errors import WardLensError

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"   # Media Storage Directory Storage
RADIOGRAPHY = ("CR", "DX")                  # computed and digital radiography: where chest films are
MAX_ENTRIES = 5000


class DicomdirError(WardLensError):
    pass


@dataclass(frozen=True)
class DicomdirEntry:
    path: Path
    patient_id: str
    patient_name: str
    study_date: str
    study: str
    modality: str
    series: str

    @property
    def radiograph(self) -> bool:
        return self.modality.upper() in RADIOGRAPHY

    @property
    def label(self) -> str:
        date = f"{self.study_date[:4]}-{self.study_date[4:6]}-{self.study_date[6:8]}" if len(self.study_date) == 8 \
            else self.study_date or "no date"
        what = " · ".join(x for x in (self.modality, self.study, self.series) if x)
        return f"{date} · {what} · {self.path.name}"


def is_dicomdir(path: Path) -> bool:
    """A DICOMDIR file, or a folder holding one (how a CD's root is often chosen)."""
    path = Path(path)
    if path.is_dir():
        return (path / "DICOMDIR").is_file()
    if path.name.upper() == "DICOMDIR":
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError:
        return False
    return head[128:132] == b"DICM" and DICOMDIR_CLASS.encode() in head


def read_dicomdir(path: Path) -> list[DicomdirEntry]:
    """The images the index names, radiographs first and newest first; raises DicomdirError in plain words."""
    import pydicom
    from pydicom.fileset import FileSet
    path = Path(path)
    index = path / "DICOMDIR" if path.is_dir() else path
    root = index.parent.resolve()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fs = FileSet(pydicom.dcmread(index))
            instances = list(fs)
    except Exception as exc:  # noqa: BLE001 - a damaged index raises many types
        raise DicomdirError(f"{index.name} is not a readable DICOMDIR ({type(exc).__name__}: {exc}).") from exc
    if len(instances) > MAX_ENTRIES:
        raise DicomdirError(f"{index.name} lists {len(instances):,} images; WardLens reads at most {MAX_ENTRIES:,}.")
    out = []
    for inst in instances:
        try:
            file = Path(inst.path)
            real = file.resolve()
        except (OSError, ValueError, TypeError):
            continue
        if not real.is_relative_to(root) or file.is_symlink() or not real.is_file():
            continue   # outside the medium, a link, or missing: never offered
        out.append(DicomdirEntry(real, str(getattr(inst, "PatientID", "") or ""),
                                 str(getattr(inst, "PatientName", "") or ""), str(getattr(inst, "StudyDate", "") or ""),
                                 str(getattr(inst, "StudyDescription", "") or ""),
                                 str(getattr(inst, "Modality", "") or ""),
                                 str(getattr(inst, "SeriesDescription", "") or "")))
    out.sort(key=lambda e: e.study_date, reverse=True)
    out.sort(key=lambda e: not e.radiograph)   # stable: radiographs first, each group newest first
    return out
