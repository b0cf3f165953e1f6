"""The imaging façade: a patient's chest X-ray studies, classified by the bundled model."""
from __future__ import annotations

from models.domain import Permission
from services.imaging.studies import XrayStudyService
from services.records.facade import Records
from services.site.session import Session


class Imaging:
    def __init__(self, session: Session, records: Records) -> None:
        self.session = session
        self.studies = XrayStudyService(session, records.patients)

    def count(self) -> int:
        self.session.require(Permission.READ_DEIDENTIFIED, "see the store's counts")
        return int(self.session.db.conn.execute("SELECT count(*) FROM xray_studies").fetchone()[0])

    def latest_read_study(self, patient_id: int, encounter_id: int | None) -> tuple | None:
        return self.studies.latest_read_study(patient_id, encounter_id)
