"""What a hospital's codes mean in the models' (UCI) terms: FHIR admit sources, discharge dispositions and priorities,
HL7 v2 PV1-36 (UB-04 patient status) codes, RxNorm medications, LOINC labs. One table per vocabulary, each with its
source, used by every importer (FHIR, HL7 v2) and by the scoring commands; a code not in a table maps to the UCI
"not available" value, never to a guess."""
from __future__ import annotations

import re

from services.records.uci_schema import MEDICATIONS

NOT_AVAILABLE_TYPE, NOT_AVAILABLE_SOURCE, NOT_MAPPED_DISPOSITION = 5, 9, 25

# FHIR R4 encounter-admit-source (http://terminology.hl7.org/CodeSystem/admit-source) -> UCI admission_source_id
ADMIT_SOURCE = {"hosp-trans": 4, "emd": 7, "outp": 2, "born": 11, "gp": 1, "mp": 1, "nursing": 5, "psych": 6,
                "rehab": 6, "other": 9}
# FHIR R4 discharge-disposition (http://terminology.hl7.org/CodeSystem/discharge-disposition) -> UCI id
FHIR_DISPOSITION = {"home": 1, "alt-home": 1, "other-hcf": 5, "hosp": 2, "long": 23, "aadvice": 7, "exp": 11,
                    "psy": 28, "rehab": 22, "snf": 3, "oth": 25}
# HL7 v2 PV1-36 / UB-04 FL17 patient discharge status (NUBC) -> UCI id. UCI's ids follow the same list with its own
# numbering: expired is 11 there (20 in UB-04), hospice 13/14 (50/51), rehab 22 (62), long-term care 23 (63) ...
UB04_DISPOSITION = {"01": 1, "02": 2, "03": 3, "04": 4, "05": 5, "06": 6, "07": 7, "08": 8, "09": 9, "20": 11,
                    "21": 26, "30": 12, "40": 19, "41": 20, "42": 21, "43": 27, "50": 13, "51": 14, "61": 15,
                    "62": 22, "63": 23, "64": 24, "65": 28, "66": 29, "69": 30, "70": 30}
# FHIR v3 ActPriority (Encounter.priority) and HL7 v2 PV1-4 admission type -> UCI admission_type_id
PRIORITY = {"EM": 1, "UR": 2, "EL": 3, "R": 3, "A": 1, "E": 1, "U": 2, "C": 3, "N": 4, "L": 3}

# RxNorm names carry their ingredients ("24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"), so an
# order maps to the models' medication columns by the ingredient names in its RxNorm name (NLM RxNorm, the ingredient
# names of the UCI table's 23 diabetes medication columns); combinations first, so that glyburide / metformin is the
# combination column, not two single ones.
_COMBINATIONS = [c for c in MEDICATIONS if "-" in c]
_SINGLE = [c for c in MEDICATIONS if "-" not in c]


def medication_column(name: str) -> str | None:
    words = set(re.findall(r"[a-z]+", (name or "").lower()))
    for combo in _COMBINATIONS:
        if all(part in words for part in combo.split("-")):
            return combo
    return next((single for single in _SINGLE if single in words), None)


# LOINC codes the models read: HbA1c and glucose (banded as the UCI table bands them), haemoglobin and sodium (the
# HOSPITAL score). Units as LOINC's example units; values in other units are not banded.
HBA1C, GLUCOSE, HAEMOGLOBIN, SODIUM = ("4548-4", "17856-6"), ("2345-7", "2339-0"), ("718-7",), ("2951-2", "2947-0")


def a1c_band(percent: float) -> str:
    return ">8" if percent > 8 else (">7" if percent > 7 else "Norm")


def glucose_band(mg_dl: float) -> str:
    return ">300" if mg_dl > 300 else (">200" if mg_dl > 200 else "Norm")


def fhir_disposition(code: str | None) -> int | None:
    return FHIR_DISPOSITION.get(code or "", NOT_MAPPED_DISPOSITION) if code else None


def hl7_disposition(code: str | None) -> int | None:
    code = (code or "").strip()
    if not code:
        return None
    return UB04_DISPOSITION.get(code.zfill(2) if code.isdigit() else code, NOT_MAPPED_DISPOSITION)
