"""Recommended interventions per encounter from transparent rules on the record and the risk assessment.

Every rule is a plain function of UCI-schema fields (and the readmission assessment where it has one);
each recommendation carries the rule id, a title and a `why` that quotes the values that triggered it,
so a nurse can check the reasoning against the chart. Nothing here is learned. Recommendations are
stored in the `interventions` table (one row per encounter and rule) where the care team marks them
done or declined; every change is audited.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from models.domain import Permission, RiskAssessment
from services.store import audit
from services.risk.clinical_scores import LACE_HIGH_RISK, lace_components
from services.core.errors import ValidationError
from services.site.session import Session
from services.records.uci_schema import EXPIRED_DISPOSITIONS, HOSPICE_DISPOSITIONS, MEDICATIONS, age_band_text

# Thresholds, named so the report and the tests quote the same numbers.
POLYPHARMACY_MIN = 15        # medications given during the stay (UCI median is 15)
PRIOR_STAYS_SOCIAL_WORK = 2  # inpatient stays in the year before
ED_VISITS_COORDINATION = 2   # emergency visits in the year before
LONG_STAY_DAYS = 7
HOME_DISPOSITIONS = frozenset({1})  # discharged to home without home-health services

# Acting on an intervention is care-team work: every role that sees identified patients (admin,
# clinician, nurse) may do it; analysts, who only see de-identified data, may not.
CARE_PERMISSION = Permission.READ_PATIENT
STATUSES = ("recommended", "done", "declined")


@dataclass(frozen=True)
class Recommendation:
    kind: str                 # rule id, unique per encounter
    title: str
    why: str                  # plain words citing the triggering values
    status: str = "recommended"
    id: int | None = None     # row id once stored
    done_at: str | None = None
    done_by: str | None = None
    note: str = ""


# ------------------------------------------------------------------------------ record helpers
def _int(record: Mapping[str, Any], key: str, default: int = 0) -> int:
    try:
        return int(record.get(key, default))
    except (TypeError, ValueError):
        return default


def _str(record: Mapping[str, Any], key: str, default: str = "") -> str:
    v = record.get(key, default)
    return default if v is None else str(v)


def _diag_codes(record: Mapping[str, Any]) -> list[str]:
    """The codes as the record holds them: every ICD code of a stay from a hospital's systems ("I50.9", not the
    ICD-9 group the model reads), else the UCI table's three."""
    given = [c.partition(":")[2].upper() for c in _str(record, "charlson_codes").split(";") if ":" in c]
    return given or [c for c in (_str(record, f"diag_{i}").strip().upper() for i in (1, 2, 3)) if c and c != "?"]


def _is_inpatient(record: Mapping[str, Any]) -> bool:
    return _str(record, "status") == "inpatient"


def _changed_meds(record: Mapping[str, Any]) -> list[str]:
    return [f"{m} {'increased' if _str(record, m) == 'Up' else 'decreased'}"
            for m in MEDICATIONS if _str(record, m) in ("Up", "Down")]


def _sentence(parts: list[str]) -> str:
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."


def _on_diabetes_meds(record: Mapping[str, Any]) -> bool:
    return _str(record, "diabetesMed") == "Yes" or any(_str(record, m) not in ("", "No") for m in MEDICATIONS)


# ------------------------------------------------------------------------------ the rules
# Each rule returns its `why` when it fires, else None; titles live in RULES.
RuleResult = str | None


def _follow_up(record: Mapping[str, Any], a: RiskAssessment | None) -> RuleResult:
    reasons = []
    if a is not None and a.eligible and a.band == "high" and a.probability is not None:
        reasons.append(f"readmission risk {a.percent} is in the high band (at or above {100 * a.threshold:.1f}%)")
    lace = sum(lace_components(record).values()) if a is None else a.lace
    if lace >= LACE_HIGH_RISK:
        reasons.append(f"LACE index {lace} (high risk at {LACE_HIGH_RISK} or more)")
    if not reasons:
        return None
    return _sentence(reasons)


def _med_reconciliation(record: Mapping[str, Any], a: RiskAssessment | None) -> RuleResult:
    reasons = []
    n = _int(record, "num_medications")
    if n >= POLYPHARMACY_MIN:
        reasons.append(f"{n} medications during the stay ({POLYPHARMACY_MIN} or more)")
    changed = _changed_meds(record)
    if changed:
        reasons.append("diabetes medication changed: " + ", ".join(changed))
    if not reasons:
        return None
    return _sentence(reasons)


def _diabetes_education(record: Mapping[str, Any], a: RiskAssessment | None) -> RuleResult:
    reasons = []
    a1c = _str(record, "A1Cresult", "None")
    if a1c in (">7", ">8"):
        reasons.append(f"HbA1c above {a1c[1:]}%")
    glu = _str(record, "max_glu_serum", "None")
    if glu in (">200", ">300"):
        reasons.append(f"glucose above {glu[1:]} mg/dL")
    if _str(record, "insulin") == "Up":
        reasons.append("insulin dose increased")
    if not reasons:
        return None
    return _sentence(reasons)


def _hba1c_check(record: Mapping[str, Any], a: RiskAssessment | None) -> RuleResult:
    # Kept apart from education: an unmeasured HbA1c calls for a test first, not for teaching.
    if _str(record, "A1Cresult", "None") != "None" or not _on_diabetes_meds(record):
        return None
    return "No HbA1c measured during the stay while on diabetes medication."


def _heart_failure(record: Mapping[str, Any], a: RiskAssessment | None) -> RuleResult:
    hits = [c for c in _diag_codes(record) if c.split(".")[0] == "428" or c.startswith("I50")]
    if not hits:
        return None
    return f"Heart failure coded (diagnosis {', '.join(hits)})."


def _social_work(record: Mapping[str, Any], a: RiskAssessment | None) -> RuleResult:
    prior = _int(record, "number_inpatient")
    if prior < PRIOR_STAYS_SOCIAL_WORK:
        return None
    if _is_inpatient(record):
        where = "going home is the planned destination"  # no disposition is recorded before discharge
    elif _int(record, "discharge_disposition_id", -1) in HOME_DISPOSITIONS:
        where = "discharged to home without home-health services"
    else:
        return None
    return f"{prior} inpatient stays in the year before; {where}."


def _care_coordination(record: Mapping[str, Any], a: RiskAssessment | None) -> RuleResult:
    n = _int(record, "number_emergency")
    if n < ED_VISITS_COORDINATION:
        return None
    return f"{n} emergency visits in the year before ({ED_VISITS_COORDINATION} or more)."


def _home_health(record: Mapping[str, Any], a: RiskAssessment | None) -> RuleResult:
    age = _str(record, "age")
    days = _int(record, "time_in_hospital")
    if age not in ("[80-90)", "[90-100)") or days < LONG_STAY_DAYS:
        return None
    return f"Aged {age_band_text(age)} and a stay of {days} days ({LONG_STAY_DAYS} or more)."


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    summary: str   # when it fires, for the rules list in the UI and docs
    check: Callable[[Mapping[str, Any], RiskAssessment | None], RuleResult]


RULES: tuple[Rule, ...] = (
    Rule("follow_up_7d", "Follow-up visit within 7 days of discharge", "high readmission band, or LACE 10 or more", _follow_up),
    Rule("med_reconciliation", "Medication reconciliation before discharge",
         f"{POLYPHARMACY_MIN} or more medications, or insulin/oral agents changed", _med_reconciliation),
    Rule("diabetes_education", "Diabetes self-management education", "HbA1c above 7%/8%, glucose above 200, or insulin increased",
         _diabetes_education),
    Rule("hba1c_check", "Measure HbA1c (before discharge or at follow-up)", "no HbA1c measured while on diabetes medication", _hba1c_check),
    Rule("heart_failure_clinic", "Heart-failure clinic referral", "ICD-9 428.x (or ICD-10 I50) coded", _heart_failure),
    Rule("social_work", "Social work assessment of support at home",
         f"{PRIOR_STAYS_SOCIAL_WORK} or more prior inpatient stays and going home without services", _social_work),
    Rule("care_coordination", "Community care coordination", f"{ED_VISITS_COORDINATION} or more emergency visits in the year before",
         _care_coordination),
    Rule("home_health", "Home-health or rehabilitation assessment", f"age 80 or over and a stay of {LONG_STAY_DAYS} days or more",
         _home_health),
)
RULE_TITLES: dict[str, str] = {r.id: r.title for r in RULES}


def recommend(record: Mapping[str, Any], assessment: RiskAssessment | None = None) -> list[Recommendation]:
    """The rules that fire for one encounter record (UCI field names), in RULES order.

    Encounters ending in death or hospice get none: there is no discharge to plan for. A transfer to another
    acute-care hospital gets no readmission risk but keeps its interventions (medication reconciliation and the
    hand-over matter as much when the patient goes to another hospital).
    """
    disp = _int(record, "discharge_disposition_id", -1)
    if not _is_inpatient(record) and disp in EXPIRED_DISPOSITIONS | HOSPICE_DISPOSITIONS:
        return []
    out = []
    for rule in RULES:
        why = rule.check(record, assessment)
        if why is not None:
            out.append(Recommendation(rule.id, rule.title, why))
    return out


# ------------------------------------------------------------------------------ the store
def _now() -> str:
    return dt.datetime.now().isoformat(sep=" ", timespec="seconds")


class InterventionService:
    def __init__(self, session: Session) -> None:
        self.s = session

    @property
    def _c(self):
        return self.s.db.conn

    def _encounter_id(self, patient_id: int, encounter_nbr: int) -> int:
        row = self._c.execute("SELECT id FROM encounters WHERE patient_id = ? AND encounter_nbr = ?",
                              (patient_id, encounter_nbr)).fetchone()
        if row is None:
            raise ValidationError({"encounter": f"encounter {encounter_nbr} is not in this patient's record"})
        return int(row[0])

    def refresh(self, patient_id: int, encounter_nbr: int, record: Mapping[str, Any],
                assessment: RiskAssessment | None = None) -> list[Recommendation]:
        """Store what the rules recommend now and return the encounter's list with statuses.

        Rows already done or declined keep their status (and their recorded reason); open rows whose
        rule no longer fires (the record changed) are removed.
        """
        self.s.require(CARE_PERMISSION, "record recommended interventions")
        eid = self._encounter_id(patient_id, encounter_nbr)
        recs = recommend(record, assessment)
        kinds = [r.kind for r in recs]
        with self.s.db.transaction() as c:
            for r in recs:
                c.execute("INSERT INTO interventions (encounter_id, kind, reason, status, created_at) "
                          "VALUES (?,?,?,'recommended',?) ON CONFLICT (encounter_id, kind) DO UPDATE SET "
                          "reason = excluded.reason WHERE interventions.status = 'recommended'", (eid, r.kind, r.why, _now()))
            c.execute(f"DELETE FROM interventions WHERE encounter_id = ? AND status = 'recommended' "
                      f"AND kind NOT IN ({','.join('?' * len(kinds)) or 'NULL'})", (eid, *kinds))
            audit.append(c, self.s.user.username, "recommend", "encounter", encounter_nbr,
                         f"{len(recs)} interventions: {', '.join(kinds)}"[:200])
        return self.for_encounter(patient_id, encounter_nbr, log=False)

    def for_encounter(self, patient_id: int, encounter_nbr: int, log: bool = True) -> list[Recommendation]:
        """Stored interventions of one encounter in RULES order (unknown kinds last)."""
        self.s.require(Permission.READ_DEIDENTIFIED, "see interventions")
        eid = self._encounter_id(patient_id, encounter_nbr)
        rows = self._c.execute("SELECT id, kind, reason, status, done_at, done_by, note FROM interventions "
                               "WHERE encounter_id = ?", (eid,)).fetchall()
        order = {r.id: i for i, r in enumerate(RULES)}
        text = self.s.codec.text_out
        out = [Recommendation(kind, RULE_TITLES.get(kind, kind.replace("_", " ").capitalize()), reason, status,
                              int(iid), done_at, done_by, text("interventions", "note", eid, note))
               for iid, kind, reason, status, done_at, done_by, note in rows]
        out.sort(key=lambda r: (order.get(r.kind, len(order)), r.kind))
        if log:
            self.s.log("read", "interventions", encounter_nbr, f"{len(out)} interventions")
        return out

    def mark(self, intervention_id: int, status: str, note: str = "") -> Recommendation:
        """Mark an intervention done or declined (or reopen it with 'recommended'); audited."""
        self.s.require(CARE_PERMISSION, "act on interventions")
        if status not in STATUSES:
            raise ValidationError({"status": f"must be one of {', '.join(STATUSES)}"})
        note = (note or "").strip()
        if len(note) > 500:
            raise ValidationError({"note": "at most 500 characters"})
        closed = status != "recommended"
        with self.s.db.transaction() as c:
            row = c.execute("SELECT i.kind, e.encounter_nbr, e.id FROM interventions i JOIN encounters e "
                            "ON e.id = i.encounter_id WHERE i.id = ?", (intervention_id,)).fetchone()
            if row is None:
                raise ValidationError({"intervention": f"no intervention with id {intervention_id}"})
            c.execute("UPDATE interventions SET status = ?, done_at = ?, done_by = ?, note = ? WHERE id = ?",
                      (status, _now() if closed else None, self.s.user.username if closed else None,
                       self.s.codec.text_in("interventions", "note", row[2], note), intervention_id))
            # In the same transaction as the change. The note is free text that may hold clinical detail:
            # the audit records that there is one, not its words.
            audit.append(c, self.s.user.username, "update", "intervention", intervention_id,
                         f"encounter {row[1]} {row[0]} -> {status}{' (with note)' if note else ''}")
        got = self._c.execute("SELECT id, kind, reason, status, done_at, done_by, note, encounter_id FROM interventions "
                              "WHERE id = ?", (intervention_id,)).fetchone()
        return Recommendation(got[1], RULE_TITLES.get(got[1], got[1]), got[2], got[3], int(got[0]), got[4], got[5],
                              self.s.codec.text_out("interventions", "note", got[7], got[6]))
