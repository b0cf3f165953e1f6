"""The domain: plain dataclasses and enums. No Qt, no I/O, nothing of the project imported."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime


class Role(str, enum.Enum):
    ADMIN = "admin"
    CLINICIAN = "clinician"
    NURSE = "nurse"
    ANALYST = "analyst"


class Permission(str, enum.Enum):
    READ_PATIENT = "read_patient"          # names and identifiers included
    READ_DEIDENTIFIED = "read_deidentified"
    EDIT_PATIENT = "edit_patient"
    IMPORT = "import"
    EXPORT = "export"
    PRINT = "print"
    MANAGE_USERS = "manage_users"
    BACKUP = "backup"
    READ_AUDIT = "read_audit"
    MANAGE_MODELS = "manage_models"
    MANAGE_BEDS = "manage_beds"            # place waiting admissions, acknowledge capacity alerts


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.CLINICIAN: frozenset({Permission.READ_PATIENT, Permission.READ_DEIDENTIFIED, Permission.EDIT_PATIENT,
                               Permission.EXPORT, Permission.PRINT, Permission.MANAGE_BEDS}),
    Role.NURSE: frozenset({Permission.READ_PATIENT, Permission.READ_DEIDENTIFIED, Permission.PRINT,
                           Permission.MANAGE_BEDS}),
    Role.ANALYST: frozenset({Permission.READ_DEIDENTIFIED, Permission.EXPORT}),
}


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    display_name: str = ""
    active: bool = True


@dataclass
class Patient:
    id: int | None
    mrn: str                       # the hospital's patient number (patient_nbr in the UCI data)
    given_name: str | None = None  # None where the viewer may not see names
    family_name: str | None = None
    birth_date: date | None = None
    sex: str = "Unknown/Invalid"
    race: str = "?"
    age_band: str = ""
    version: int = 0               # the stored row's version when read: a save over a newer one is refused

    @property
    def display_name(self) -> str:
        if self.given_name is None and self.family_name is None:
            return f"Patient {self.mrn}"
        return f"{self.family_name or ''}, {self.given_name or ''}".strip(", ")


@dataclass
class Diagnosis:
    code: str
    system: str = "ICD9"   # ICD9, ICD10, SNOMED, or the source's code system URL as given
    position: int = 1      # 1 = primary
    description: str = ""


@dataclass
class Medication:
    drug: str
    status: str  # No / Steady / Up / Down, as the UCI data records the change during the stay


@dataclass
class LabResult:
    name: str
    value_text: str | None = None
    value_num: float | None = None
    unit: str = ""
    taken_at: datetime | None = None


@dataclass
class Encounter:
    id: int | None
    patient_id: int
    encounter_nbr: int                 # encounter_id in the UCI data
    admit_time: datetime
    discharge_time: datetime | None    # None while the patient is still in hospital
    admission_type_id: int = 1
    admission_source_id: int = 7
    discharge_disposition_id: int | None = None
    ward_id: int | None = None
    bed_id: int | None = None
    medical_specialty: str = "?"
    payer_code: str = "?"
    weight: str = "?"
    age_band: str = ""
    num_lab_procedures: int = 0
    num_procedures: int = 0
    num_medications: int = 0
    number_outpatient: int = 0
    number_emergency: int = 0
    number_inpatient: int = 0
    number_diagnoses: int = 0
    max_glu_serum: str = "None"
    a1c_result: str = "None"
    change: str = "No"
    diabetes_med: str = "No"
    readmitted: str = ""              # NO / >30 / <30 once known, else empty
    ward_name: str = ""
    bed_label: str = ""
    diagnoses: list[Diagnosis] = field(default_factory=list)
    medications: list[Medication] = field(default_factory=list)
    labs: list[LabResult] = field(default_factory=list)
    comorbidities: list[str] = field(default_factory=list)
    status: str = ""                  # "inpatient" / "discharged"; empty: judged from the discharge time
    encounter_class: str = "inpatient"   # inpatient (a hospital stay), emergency, ambulatory or other
    from_feed: bool = False           # from a hospital's system (FHIR, HL7, mapped CSV): history counted in the store
    source_status: str = ""           # the source's own status ("cancelled" for an admission entered in error)
    version: int = 0                  # the stored row's version when read (services.records.patients)

    @property
    def kind(self) -> str:
        """What the encounter was, in words."""
        if self.source_status == "cancelled":
            return "Cancelled admission"
        return {"inpatient": "Hospital stay", "emergency": "Emergency visit", "ambulatory": "Outpatient visit"}.get(
            self.encounter_class, "Other encounter")

    @property
    def is_inpatient(self) -> bool:
        # Imported historical stays have no dates at all, so the recorded status decides when there is one.
        return self.status == "inpatient" if self.status else self.discharge_time is None

    def length_of_stay(self, now: datetime | None = None) -> int:
        """Whole days of a finished stay (at least 1, as the UCI data counts them)."""
        end = self.discharge_time or now or datetime.now()
        return max(1, (end.date() - self.admit_time.date()).days)

    def days_in_hospital(self, now: datetime | None = None) -> int:
        """The one "days in hospital" every screen shows: for a current stay the days since the admission date
        (0 on the day of admission, as the census and the LOS model count them), for a finished one its length."""
        if self.discharge_time is None:
            return days_in_hospital((now or datetime.now()).date(), self.admit_time.date())
        return self.length_of_stay()


def days_in_hospital(today: date, admitted: date) -> int:
    """Days since the admission date for a patient still in hospital: 0 on the day of admission. The one
    definition the stay table, the census, the worklist and the reports share."""
    return max(0, (today - admitted).days)


@dataclass(frozen=True)
class Ward:
    id: int
    name: str
    ward_type: str      # medical, surgical, cardiology, icu, ...
    capacity: int


@dataclass(frozen=True)
class Bed:
    id: int
    ward_id: int
    label: str
    isolation: bool = False
    sex_bay: str | None = None   # "Female"/"Male" for single-sex bays, else None


@dataclass(frozen=True)
class AuditEvent:
    id: int
    ts: str
    username: str
    action: str
    entity: str
    entity_id: str
    detail: str


@dataclass(frozen=True)
class PatientRow:
    """One line of the patient list: light enough to hold 100,000 of them."""
    patient_id: int
    mrn: str
    name: str
    sex: str
    age_band: str
    ward: str
    last_admit: str
    encounters: int
    primary_dx: str
    inpatient: bool
    found_by: str = ""     # why a search found this patient ("name", "diagnosis 428 Heart failure", …)


@dataclass(frozen=True)
class RiskFactor:
    text: str            # plain words, e.g. "3 inpatient stays in the year before"
    contribution: float  # on the log-odds scale; positive raises the risk


@dataclass(frozen=True)
class RiskAssessment:
    """30-day readmission risk of one encounter at discharge, with the clinical scores beside it."""
    encounter_nbr: int
    eligible: bool
    probability: float | None
    band: str
    factors: tuple[RiskFactor, ...]
    lace: int
    lace_components: dict[str, int]
    hospital: int
    hospital_band: str
    hospital_components: dict[str, int]
    model_version: str
    threshold: float
    at_discharge: bool   # False: an inpatient, scored with the stay so far
    not_eligible_reason: str = ""   # why a stay gets no risk (death, hospice, transfer to another acute hospital)
    measured: dict[str, str] = field(default_factory=dict)   # score parts from the record, not proxies ("lace.E" -> words)
    unknown_inputs: tuple[str, ...] = ()   # inputs the model could not read (a diagnosis coded only in SNOMED CT)
    outside_population: str = ""   # why this stay is outside the population the model was trained on ("" if inside)

    @property
    def percent(self) -> str:
        return "—" if self.probability is None else f"{100 * self.probability:.0f}%"

    @property
    def lace_band(self) -> str:
        return "high" if self.lace >= 10 else "moderate" if self.lace >= 5 else "low"


@dataclass(frozen=True)
class XrayStudy:
    """A chest radiograph kept inside the encrypted store, with what the model said when it was read."""
    id: int
    patient_id: int
    source_name: str
    format: str
    width: int
    height: int
    created_at: str
    created_by: str
    model_version: str
    refused: bool                       # out of distribution: not read as a chest radiograph
    findings: tuple[tuple[str, float, bool], ...]   # (finding, probability, over its threshold), highest first
    refusal_reasons: tuple[str, ...] = ()
