"""Risk at the bedside: the readmission model and the clinical scores for an encounter in the store."""
from __future__ import annotations

import threading
from pathlib import Path

from models.domain import Permission, RiskAssessment, RiskFactor
from services.clinical_scores import hospital_band, hospital_components, lace_components
from services.patients import PatientService
from services.readmission import ReadmissionService
from services.session import Session

_service: ReadmissionService | None = None
_lock = threading.Lock()


def readmission_service() -> ReadmissionService:
    """One hash-checked ONNX session for the whole process, created on first use."""
    global _service
    with _lock:
        if _service is None:
            _service = ReadmissionService()
        return _service


class AssessmentService:
    def __init__(self, session: Session) -> None:
        self.s = session
        self.patients = PatientService(session)

    def readmission(self, patient_id: int, encounter_nbr: int) -> RiskAssessment:
        """Score one encounter with the patient's earlier encounters as history (never later ones)."""
        self.s.require(Permission.READ_DEIDENTIFIED, "see risk scores")
        frame = self.patients.uci_frame([patient_id])
        frame = frame[frame["encounter_id"] <= encounter_nbr]
        row = frame[frame["encounter_id"] == encounter_nbr]
        if row.empty:
            raise KeyError(f"encounter {encounter_nbr} is not in this patient's record")
        record = row.iloc[0].to_dict()
        svc = readmission_service()
        pred = svc.score_frame(frame.drop(columns=["status", "admit_time", "discharge_time", "_pid", "_eid"]),
                               [encounter_nbr])[0]
        lace = lace_components(record)
        hosp = hospital_components(record)
        self.s.log("score", "encounter", encounter_nbr,
                   f"readmission {svc.version}: {pred.band} {'' if pred.probability is None else round(pred.probability, 4)}")
        return RiskAssessment(
            encounter_nbr=encounter_nbr, eligible=pred.eligible, probability=pred.probability, band=pred.band,
            factors=tuple(RiskFactor(f.text, f.contribution) for f in pred.factors),
            lace=sum(lace.values()), lace_components=lace, hospital=sum(hosp.values()),
            hospital_band=hospital_band(sum(hosp.values())), hospital_components=hosp, model_version=svc.version,
            threshold=svc.threshold, at_discharge=record.get("status") != "inpatient")

    @staticmethod
    def model_card_markdown(name: str = "readmission") -> str:
        path = Path(__file__).resolve().parents[1] / "resources" / "models" / name / "card.md"
        return path.read_text(encoding="utf-8") if path.exists() else f"No model card found for {name}."
