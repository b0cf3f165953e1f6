"""A store filled by importing dateless historical UCI rows: every feature must cope with no dates."""
from __future__ import annotations

import datetime as dt

from services.desk import open_desk
from services.records.demo import SAMPLE
from services.modelops.local_training import known_outcome_mask, local_dataset
from services.records.patients import PatientService, encounters_uci_frame


def test_imported_history_reports_and_local_dataset(empty_store):
    s = open_desk(empty_store.path, "admin", "admin-password")
    assert s.records.import_csv(SAMPLE).imported == 3000
    svc = s.records.patients
    pid = svc.search("")[0].patient_id
    encounters = svc.encounters(pid)
    assert encounters and not any(e.is_inpatient for e in encounters)  # no dates, but recorded as discharged
    assert s.reports.patient_pdf(pid).startswith(b"%PDF")
    frame = encounters_uci_frame(s.session.db.conn)
    mask = known_outcome_mask(frame, dt.date.today())
    assert mask.sum() > 2000  # dateless stays with a recorded outcome count as known
    data = local_dataset(s.session.db.conn, dt.date.today())
    # retraining sees exactly the known outcomes, split by patient (no patient in two parts)
    assert len(data.y) == len(data.x) == data.summary["encounters_with_known_outcome"] == int(mask.sum())
    assert set(data.split) == {"train", "cal", "test"}
    parts = {name: set(data.groups[data.part(name)]) for name in ("train", "cal", "test")}
    assert not (parts["train"] & parts["cal"]) and not (parts["train"] & parts["test"]) and not (parts["cal"] & parts["test"])
    s.lock()


def test_one_patients_frame_equals_their_rows_of_the_whole_store(demo_store):
    """The bedside reads one patient's encounters; retraining reads all: the same rows either way."""
    import pandas as pd

    s = open_desk(demo_store, "admin", "wardlens-admin")
    try:
        c = s.session.db.conn
        whole = encounters_uci_frame(c)
        assert len(whole) == c.execute("SELECT count(*) FROM encounters").fetchone()[0]
        assert (whole[["max_glu_serum", "A1Cresult"]] != "None").any().all()  # labs and
        assert (whole["insulin"] != "No").any() and (whole["diag_3"] != "?").any()  # drugs really joined
        for (pid,) in c.execute("SELECT id FROM patients ORDER BY id DESC LIMIT 25").fetchall():
            one = encounters_uci_frame(c, [pid])
            want = whole[whole["_pid"] == pid].reset_index(drop=True)
            pd.testing.assert_frame_equal(one, want, check_exact=True)
        assert encounters_uci_frame(c, [10**9]).empty
    finally:
        s.lock()


def test_days_in_hospital_are_counted_the_same_everywhere(demo_store):
    """The model's time_in_hospital for an inpatient, the Days column and the census use calendar days
    since admission (a stay admitted 19:30 ten days ago is 10 days, not 9 by elapsed hours)."""
    from services.capacity.census import CensusService

    s = open_desk(demo_store, "dr.demo", "wardlens-clinician")
    try:
        frame = encounters_uci_frame(s.session.db.conn)
        model_days = dict(zip(frame["encounter_id"], frame["time_in_hospital"]))
        census = s.capacity.census.inpatients()
        assert census
        svc = s.records.patients
        for est in census[:30]:
            enc = next(e for e in svc.encounters(est.patient_id) if e.encounter_nbr == est.encounter_nbr)
            assert model_days[est.encounter_nbr] == enc.length_of_stay() == max(1, est.days_in)
    finally:
        s.lock()
