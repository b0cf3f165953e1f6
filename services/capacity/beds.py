"""Waiting admissions and the recommended bed for each (solved by services.capacity.bed_assignment), which the
coordinator accepts as proposed or changes; either way the placement is audited."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from models.domain import Permission
from services.store import audit
from services.store.dialect import writer_lock
from services.capacity.bed_assignment import AssignmentResult, Bed, WaitingAdmission, Ward, assign_beds, unfit_reason
from services.core.errors import ValidationError
from services.site.session import Session

SEX_CODE = {"Female": "F", "Male": "M"}


@dataclass(frozen=True)
class WaitingRow:
    id: int
    patient_id: int
    patient_label: str
    sex: str
    age_band: str
    requested_at: str
    ward_type: str
    needs_isolation: bool
    note: str


@dataclass(frozen=True)
class FreeBed:
    id: int
    label: str
    ward: str
    ward_type: str
    isolation: bool
    sex_bay: str | None


@dataclass(frozen=True)
class BedRecommendation:
    """The bed proposed for one waiting admission, or why none could be proposed."""

    waiting: WaitingRow
    bed: FreeBed | None
    reason: str          # why nobody could be placed, when bed is None


def recommendations(result: AssignmentResult, waiting: list[WaitingRow], free: list[FreeBed]) -> list[BedRecommendation]:
    beds = {str(b.id): b for b in free}
    placed = {a.patient_id: beds.get(a.bed_id) for a in result.assignments}
    reasons = {u.patient_id: u.reason for u in result.unassigned}
    return [BedRecommendation(w, placed.get(str(w.id)), reasons.get(str(w.id), "")) for w in waiting]


class BedService:
    def __init__(self, session: Session) -> None:
        self.s = session

    def waiting(self) -> list[WaitingRow]:
        self.s.require(Permission.READ_DEIDENTIFIED, "see waiting admissions")
        rows = self.s.db.conn.execute(
            "SELECT w.id, w.patient_id, p.sex, "
            "coalesce((SELECT age_band FROM encounters WHERE id = p.latest_encounter_id), ''), w.requested_at, "
            "w.ward_type, w.needs_isolation, w.note FROM waiting_admissions w JOIN patients p ON p.id = w.patient_id "
            "WHERE w.status = 'waiting' ORDER BY w.requested_at").fetchall()
        text = self.s.codec.text_out
        return [WaitingRow(i, pid, self.s.patient_label(pid), sex, age, req, wt, bool(iso),
                           text("waiting_admissions", "note", pid, note))
                for i, pid, sex, age, req, wt, iso, note in rows]

    def free_beds(self) -> list[FreeBed]:
        self.s.require(Permission.READ_DEIDENTIFIED, "see free beds")
        rows = self.s.db.conn.execute(
            "SELECT b.id, b.label, w.name, w.ward_type, b.isolation, b.sex_bay FROM beds b JOIN wards w ON w.id = b.ward_id "
            "WHERE b.out_of_service IS NULL "
            "AND b.id NOT IN (SELECT bed_id FROM encounters WHERE status = 'inpatient' AND bed_id IS NOT NULL) "
            "ORDER BY w.name, b.label").fetchall()
        return [FreeBed(i, lbl, w, wt, bool(iso), sb) for i, lbl, w, wt, iso, sb in rows]

    def _wards(self) -> list[Ward]:
        return [Ward(n, t) for n, t in self.s.db.conn.execute("SELECT name, ward_type FROM wards")]

    def recommend(self) -> tuple[AssignmentResult, list[WaitingRow], list[FreeBed]]:
        """The optimal placement of everyone waiting into today's free beds, under every hard constraint."""
        waiting = self.waiting()
        free = self.free_beds()
        result = assign_beds([_admission(w) for w in waiting], [_bed(b) for b in free], self._wards())
        self.s.log("read", "bed_recommendation", "", f"{len(result.assignments)} placed, {len(result.unassigned)} not")
        return result, waiting, free

    @staticmethod
    def compatible_beds(waiting: WaitingRow, free: list[FreeBed], wards: list[Ward]) -> list[FreeBed]:
        """Free beds the coordinator may choose instead of the recommendation (the optimiser's own rule)."""
        by_name = {w.name: w for w in wards}
        return [b for b in free if unfit_reason(_admission(waiting), _bed(b), by_name.get(b.ward)) is None]

    def wards(self) -> list[Ward]:
        self.s.require(Permission.READ_DEIDENTIFIED, "see wards")
        return self._wards()

    def place(self, waiting_id: int, bed_id: int, recommended_bed_id: int | None = None) -> int:
        """Admit a waiting patient into a bed: a new inpatient encounter. Checks the bed is free and fits."""
        self.s.require(Permission.MANAGE_BEDS, "place patients in beds")
        now = dt.datetime.now().replace(second=0, microsecond=0)
        with self.s.db.transaction() as c:
            writer_lock(c, "encounters")   # before the checks: two desks never fill one bed or place one admission twice
            w = c.execute("SELECT patient_id, ward_type, needs_isolation, status FROM waiting_admissions WHERE id = ?",
                          (waiting_id,)).fetchone()
            if w is None or w[3] != "waiting":
                raise ValidationError({"waiting": "this admission is no longer waiting"})
            b = c.execute("SELECT b.ward_id, w.ward_type, b.isolation, b.sex_bay, w.name, b.out_of_service FROM beds b "
                          "JOIN wards w ON w.id = b.ward_id WHERE b.id = ?", (bed_id,)).fetchone()
            if b is None:
                raise ValidationError({"bed": "no such bed"})
            if b[5] is not None:
                raise ValidationError({"bed": f"this bed is out of service ({b[5]})"})
            occupied = c.execute("SELECT 1 FROM encounters WHERE bed_id = ? AND status = 'inpatient'", (bed_id,)).fetchone()
            sex = c.execute("SELECT sex FROM patients WHERE id = ?", (w[0],)).fetchone()[0]
            why = unfit_reason(WaitingAdmission(str(waiting_id), SEX_CODE.get(sex, "U"), w[1] or None, bool(w[2])),
                               Bed(str(bed_id), b[4], not occupied, bool(b[2]), SEX_CODE.get(b[3] or "", None)),
                               Ward(b[4], b[1]))
            if why:
                raise ValidationError({"bed": why})
            age = c.execute("SELECT age_band FROM encounters WHERE patient_id = ? ORDER BY encounter_nbr DESC LIMIT 1",
                            (w[0],)).fetchone()
            nbr = c.execute("SELECT coalesce(max(encounter_nbr), 0) + 1 FROM encounters").fetchone()[0]
            stamp = now.isoformat(sep=" ", timespec="minutes")
            cur = c.execute("INSERT INTO encounters (patient_id, encounter_nbr, status, admit_time, admission_type_id, "
                            "admission_source_id, ward_id, bed_id, age_band, created_at, updated_at) "
                            "VALUES (?,?,'inpatient',?,1,7,?,?,?,?,?)",
                            (w[0], nbr, stamp, b[0], bed_id, age[0] if age else "", stamp, stamp))
            c.execute("UPDATE waiting_admissions SET status = 'assigned', assigned_bed_id = ? WHERE id = ?", (bed_id, waiting_id))
            how = "as recommended" if recommended_bed_id in (None, bed_id) else f"changed from recommended bed {recommended_bed_id}"
            audit.append(c, self.s.user.username, "bed_assigned", "waiting_admission", waiting_id, f"bed {bed_id} {how}")
        return int(cur.lastrowid)


def _admission(w: WaitingRow) -> WaitingAdmission:
    return WaitingAdmission(str(w.id), SEX_CODE.get(w.sex, "U"), w.ward_type or None, w.needs_isolation,
                            priority=2.0 if w.needs_isolation else 1.0)


def _bed(b: FreeBed) -> Bed:
    return Bed(str(b.id), b.ward, True, b.isolation, SEX_CODE.get(b.sex_bay or "", None))
