"""`score readmission|los --input FHIR-or-HL7 --output CSV`: scores for a hospital's own records without a store or a
login. The records go through the very import the desk uses (services.records.sources) into a throwaway encrypted
store in a private temporary folder, which is deleted afterwards, so that a stay is derived, validated and scored
exactly as it would be on the desk: one use case, one place. One row per inpatient encounter, keyed by the source's
own encounter id (or visit number) and the patient's number; records the import rejected get a row with the reason."""
from __future__ import annotations

import datetime as dt
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

from services.core.outputs import csv_output
from services.records.patients import encounters_uci_frame
from services.risk.clinical_scores import hospital_band, hospital_components, lace_components
from services.site import anchors
from services.site.accounts import create_store
from services.store.keyfile import KdfParams

READMISSION_COLUMNS = ("encounter_id", "patient_nbr", "status", "risk", "band", "factor_1", "factor_2", "factor_3",
                       "los_days", "lace", "lace_l", "lace_a", "lace_c", "lace_e", "hospital", "hospital_h",
                       "hospital_o", "hospital_s", "hospital_p", "hospital_i", "hospital_t", "hospital_a",
                       "hospital_band", "error")
LOS_COLUMNS = ("encounter_id", "patient_nbr", "status", "los_days", "los_expected", "los_low", "los_high", "error")


def _days(admit: Any, discharge: Any) -> str:
    """Calendar days, discharge date minus admission date ("" while the patient is still in)."""
    if not admit or not discharge or admit != admit or discharge != discharge:
        return ""
    return str((dt.date.fromisoformat(str(discharge)[:10]) - dt.date.fromisoformat(str(admit)[:10])).days)


def score_records(model: str, inputs: Sequence[Path], output: Path, fmt: str | None = None) -> dict[str, Any]:
    from services.desk import open_desk   # the package's own entry point; imported here to keep start-up light
    folder = Path(tempfile.mkdtemp(prefix="wardlens-score-"))   # 0700, removed below whatever happens
    password = secrets.token_urlsafe(32)   # random and never stored: the throwaway key file's fast KDF is no weakness
    try:
        create_store(folder / "score.db", "scorer", password, KdfParams.fast())
        desk = open_desk(folder / "score.db", "scorer", password)
        store_id = desk.session.db.conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
        try:
            report = desk.records.import_files(list(inputs), fmt)
            frame = encounters_uci_frame(desk.session.db.conn)
            rows = _readmission_rows(desk, frame, report.sources) if model == "readmission" else \
                _los_rows(frame, report.sources)
        finally:
            desk.lock(reason="scoring finished")
            anchors.forget(store_id)   # the workstation keeps no trace of the throwaway store
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows += [{"status": "error", "error": f"{r.file} {r.where}: {r.reason}"} for r in report.rejected]
    columns = READMISSION_COLUMNS if model == "readmission" else LOS_COLUMNS
    with csv_output(output, columns, inputs=tuple(inputs)) as w:   # cells neutralised, 0600, whole or nothing
        w.writeheader()
        for row in rows:
            w.writerow({c: row.get(c, "") for c in columns})
    return {"rows": len(rows), "scored": sum(r["status"] == "ok" for r in rows),
            "not_eligible": sum(r["status"] == "not eligible" for r in rows),
            "errors": [r["error"] for r in rows if r["status"] == "error"], "import": report.lines()}


def _ids(frame, sources: dict[int, tuple[str, str]]) -> list[tuple[str, str]]:
    return [sources.get(int(e), ("", "")) for e in frame["_eid"]]


def _readmission_rows(desk, frame, sources: dict[int, tuple[str, str]]) -> list[dict[str, Any]]:
    if frame.empty:
        return []
    wanted = [int(n) for n in frame["encounter_id"]]
    preds = desk.risk.model.get().score_frame(frame, wanted)
    out = []
    for (source, number), pred, rec in zip(_ids(frame, sources), preds, frame.to_dict("records")):
        lace, hosp = lace_components(rec), hospital_components(rec)
        factors = [f.text for f in pred.factors] + ["", "", ""]
        out.append({"encounter_id": source, "patient_nbr": number,
                    "status": "ok" if pred.eligible else "not eligible",
                    "risk": "" if pred.probability is None else f"{pred.probability:.4f}", "band": pred.band,
                    "factor_1": factors[0], "factor_2": factors[1], "factor_3": factors[2],
                    "los_days": _days(rec["admit_time"], rec["discharge_time"]), "lace": sum(lace.values()),
                    **{f"lace_{k.lower()}": v for k, v in lace.items()}, "hospital": sum(hosp.values()),
                    **{f"hospital_{k.lower()}": v for k, v in hosp.items()},
                    "hospital_band": hospital_band(sum(hosp.values())), "error": ""})
    return out


def _los_rows(frame, sources: dict[int, tuple[str, str]]) -> list[dict[str, Any]]:
    from services.capacity.los import bundled_los
    if frame.empty:
        return []
    estimates = bundled_los().estimates(frame)
    return [{"encounter_id": source, "patient_nbr": number, "status": "ok",
             "los_days": _days(rec["admit_time"], rec["discharge_time"]), "los_expected": f"{est.point_days:.1f}",
             "los_low": est.low_days, "los_high": est.high_days, "error": ""}
            for (source, number), est, rec in zip(_ids(frame, sources), estimates, frame.to_dict("records"))]
