"""The discharge worklist: inpatients expected to leave in the next 48 hours, highest readmission risk
first, each with the factors behind the risk and the interventions the rules recommend."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from models.domain import Permission, RiskAssessment
from services.risk.assessment import AssessmentService
from services.capacity.census import CensusService, InpatientEstimate
from services.risk.interventions import InterventionService, Recommendation
from services.site.session import Session


@dataclass(frozen=True)
class WorklistRow:
    inpatient: InpatientEstimate
    risk: RiskAssessment
    interventions: tuple[Recommendation, ...]

    @property
    def open_interventions(self) -> int:
        return sum(1 for r in self.interventions if r.status == "recommended")


class WorklistService:
    def __init__(self, session: Session, census: CensusService, assessments: AssessmentService,
                 interventions: InterventionService) -> None:
        self.s = session
        self.census, self.assessments, self.interventions = census, assessments, interventions

    def inpatient_risks(self, inpatients: list[InpatientEstimate]) -> dict[int, RiskAssessment]:
        """Readmission risk of every inpatient 'if discharged today', in one batch."""
        return self.assessments.readmission_many({p.encounter_nbr: p.patient_id for p in inpatients})

    def discharge_worklist(self, hours: int = 48, ward: str | None = None, today: dt.date | None = None,
                           inpatients: list[InpatientEstimate] | None = None) -> list[WorklistRow]:
        self.s.require(Permission.READ_PATIENT, "work the discharge list")
        today = today or dt.date.today()
        horizon = today + dt.timedelta(days=max(1, hours // 24))
        inpatients = self.census.inpatients(today) if inpatients is None else inpatients
        # a stay beyond the LOS model's range has no expected date: it is not "due", whatever the day
        due = [p for p in inpatients if p.expected_discharge is not None and p.expected_discharge <= horizon
               and (ward is None or p.ward == ward)]
        risks = self.inpatient_risks(due)
        records = self.assessments.records({p.encounter_nbr: p.patient_id for p in due})
        rows = []
        for p in due:
            recs = self.interventions.refresh(p.patient_id, p.encounter_nbr, records[p.encounter_nbr], risks[p.encounter_nbr])
            rows.append(WorklistRow(p, risks[p.encounter_nbr], tuple(recs)))
        rows.sort(key=lambda r: (-(r.risk.probability or 0.0), r.inpatient.expected_discharge))
        self.s.log("read", "worklist", ward or "", f"{len(rows)} patients due within {hours} h")
        return rows
