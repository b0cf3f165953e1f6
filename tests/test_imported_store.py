"""A store filled by importing dateless historical UCI rows: every feature must cope with no dates."""
from __future__ import annotations

import datetime as dt

from services.accounts import unlock
from services.demo import SAMPLE
from services.importer import import_uci_csv
from services.local_training import known_outcome_mask, local_dataset
from services.patients import PatientService, encounters_uci_frame
from services.reports import patient_report_pdf


def test_imported_history_reports_and_local_dataset(empty_store):
    s = unlock(empty_store.path, "admin", "admin-password")
    assert import_uci_csv(s, SAMPLE).imported == 3000
    svc = PatientService(s)
    pid = svc.search("")[0].patient_id
    encounters = svc.encounters(pid)
    assert encounters and not any(e.is_inpatient for e in encounters)  # no dates, but recorded as discharged
    assert patient_report_pdf(s, pid).startswith(b"%PDF")
    frame = encounters_uci_frame(s.db.conn)
    mask = known_outcome_mask(frame, dt.date.today())
    assert mask.sum() > 2000  # dateless stays with a recorded outcome count as known
    data = local_dataset(s.db.conn)
    assert data is not None
    s.lock()
