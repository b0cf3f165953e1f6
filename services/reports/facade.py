"""The reports façade: the patient and ward reports as PDF, drawn from what the other façades return
(services.reports.pdf renders; it runs no query and loads no model of its own)."""
from __future__ import annotations

import datetime as dt

from services.capacity.facade import Capacity
from services.imaging.facade import Imaging
from services.records.facade import Records
from services.reports import pdf
from services.risk.facade import Risk
from services.site.session import Session


class Reports:
    def __init__(self, session: Session, records: Records, risk: Risk, capacity: Capacity, imaging: Imaging) -> None:
        self.session, self.records, self.risk, self.capacity, self.imaging = session, records, risk, capacity, imaging

    def patient_pdf(self, patient_id: int, encounter_nbr: int | None = None, now: dt.datetime | None = None) -> bytes:
        return pdf.patient_report_pdf(self, patient_id, encounter_nbr, now)

    def patient_data(self, patient_id: int, encounter_nbr: int | None = None,
                     now: dt.datetime | None = None) -> pdf.PatientReportData:
        return pdf.collect_patient_report(self, patient_id, encounter_nbr, now)

    def ward_pdf(self, ward: str | None = None, today: dt.date | None = None, now: dt.datetime | None = None) -> bytes:
        return pdf.ward_report_pdf(self, ward, today, now)
