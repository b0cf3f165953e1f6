"""Code tables and choices for forms, handed to views so they never reach into services.

Forms show plain words (services.records.uci_schema's *_WORDS) and store the code; codes whose words coincide
("Not recorded" for NULL, Not Available, Not Mapped) say their code so each stays choosable."""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from services.records.uci_schema import (A1C_VALUES, ADMISSION_SOURCE_WORDS, ADMISSION_SOURCES, ADMISSION_TYPE_WORDS,
                                 ADMISSION_TYPES, AGE_BANDS, DISCHARGE_DISPOSITIONS, DISPOSITION_WORDS, GENDERS,
                                 GLU_SERUM_VALUES, MEDICATION_STATUSES, MEDICATIONS, RACES)

__all__ = ["A1C_VALUES", "ADMISSION_SOURCES", "ADMISSION_TYPES", "AGE_BANDS", "DISCHARGE_DISPOSITIONS", "GENDERS",
           "GLU_SERUM_VALUES", "MEDICATION_STATUSES", "MEDICATIONS", "RACES", "ADMISSION_TYPE_CHOICES",
           "ADMISSION_SOURCE_CHOICES", "DISPOSITION_CHOICES"]


def _choices(words: Mapping[int, str]) -> list[tuple[str, int]]:
    seen = Counter(words.values())
    return [(w if seen[w] == 1 else f"{w} (code {k})", k) for k, w in words.items()]


ADMISSION_TYPE_CHOICES: list[tuple[str, int]] = _choices(ADMISSION_TYPE_WORDS)
ADMISSION_SOURCE_CHOICES: list[tuple[str, int]] = _choices(ADMISSION_SOURCE_WORDS)
DISPOSITION_CHOICES: list[tuple[str, int]] = _choices(DISPOSITION_WORDS)
