"""The risk façade: the session's readmission model, assessments, interventions, worklist and alerts."""
from __future__ import annotations

from services.capacity.facade import Capacity
from services.records.facade import Records
from services.risk.alerts import AlertService
from services.risk.assessment import AssessmentService, ReadmissionModel
from services.risk.interventions import InterventionService
from services.risk.worklist import WorklistService
from services.site.session import Session
from services.site.settings import SettingsService


class Risk:
    def __init__(self, session: Session, records: Records, capacity: Capacity, settings: SettingsService) -> None:
        self.session = session
        self.model = ReadmissionModel()   # bundled until the model registry activates the store's version
        self.assessments = AssessmentService(session, records.patients, self.model)
        self.interventions = InterventionService(session)
        self.worklist = WorklistService(session, capacity.census, self.assessments, self.interventions)
        self.alerts = AlertService(session, settings)
