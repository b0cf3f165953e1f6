"""Code tables and choices for forms, handed to views so they never reach into services."""
from __future__ import annotations

from services.uci_schema import (A1C_VALUES, ADMISSION_SOURCES, ADMISSION_TYPES, AGE_BANDS, DISCHARGE_DISPOSITIONS,
                                 GENDERS, GLU_SERUM_VALUES, MEDICATION_STATUSES, MEDICATIONS, RACES)

__all__ = ["A1C_VALUES", "ADMISSION_SOURCES", "ADMISSION_TYPES", "AGE_BANDS", "DISCHARGE_DISPOSITIONS", "GENDERS",
           "GLU_SERUM_VALUES", "MEDICATION_STATUSES", "MEDICATIONS", "RACES"]
