"""Wards and their beds, kept by administrators: add and rename wards, set how many beds a ward has, and take a
bed out of service (broken, deep clean, closed bay) and back. A ward's capacity is its beds in service (kept by
triggers, migration v9); forecasts, staffing, alerts and bed placement read it from there."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from models.domain import Permission
from services.core.errors import ValidationError
from services.site.session import Session
from services.store import audit

WARD_TYPES = ("medical", "surgical", "cardiology", "icu", "paediatric", "maternity", "psychiatric", "other")
MAX_BEDS = 200
_NAME = re.compile(r"^[^\x00-\x1f]{1,40}$")


@dataclass(frozen=True)
class BedInfo:
    id: int
    label: str
    isolation: bool
    sex_bay: str | None
    out_of_service: str | None     # the reason, or None when in use
    occupied: bool                 # an inpatient is in it now
    used: bool                     # any stay or placement ever named it (it can then only be taken out of service)

    @property
    def status(self) -> str:
        if self.out_of_service is not None:
            return f"out of service: {self.out_of_service}" + (" (patient still in it)" if self.occupied else "")
        return "occupied" if self.occupied else "free"


@dataclass(frozen=True)
class WardInfo:
    id: int
    name: str
    ward_type: str
    beds: list[BedInfo] = field(default_factory=list)

    @property
    def in_service(self) -> int:
        return sum(b.out_of_service is None for b in self.beds)

    @property
    def closed(self) -> int:
        return len(self.beds) - self.in_service

    @property
    def occupied(self) -> int:
        return sum(b.occupied for b in self.beds)


class WardAdmin:
    def __init__(self, session: Session) -> None:
        self.s = session

    def list(self) -> list[WardInfo]:
        self.s.require(Permission.READ_DEIDENTIFIED, "see wards")
        c = self.s.db.conn
        occupied = {r[0] for r in c.execute("SELECT bed_id FROM encounters WHERE status = 'inpatient' AND bed_id IS NOT NULL")}
        used = occupied | {r[0] for r in c.execute("SELECT bed_id FROM encounters WHERE bed_id IS NOT NULL")} | \
            {r[0] for r in c.execute("SELECT assigned_bed_id FROM waiting_admissions WHERE assigned_bed_id IS NOT NULL")}
        beds: dict[int, list[BedInfo]] = {}
        for bid, wid, label, iso, sex, oos in c.execute(
                "SELECT id, ward_id, label, isolation, sex_bay, out_of_service FROM beds ORDER BY ward_id, id"):
            beds.setdefault(wid, []).append(BedInfo(bid, label, bool(iso), sex, oos, bid in occupied, bid in used))
        return [WardInfo(wid, name, wtype, beds.get(wid, []))
                for wid, name, wtype in c.execute("SELECT id, name, ward_type FROM wards ORDER BY name")]

    def ward(self, ward_id: int) -> WardInfo:
        for w in self.list():
            if w.id == ward_id:
                return w
        raise ValidationError({"ward": "no such ward"})

    def find(self, name: str) -> WardInfo:
        """A ward by name, case-insensitively (the command line names wards)."""
        for w in self.list():
            if w.name.lower() == (name or "").strip().lower():
                return w
        raise ValidationError({"ward": f"no ward named {name!r}"})

    # --- changes --------------------------------------------------------------------------------
    def _name(self, c, name: str, ward_id: int | None = None) -> str:
        name = " ".join((name or "").split())
        if not _NAME.match(name):
            raise ValidationError({"name": "1–40 characters"})
        clash = c.execute("SELECT id FROM wards WHERE lower(name) = lower(?) AND id IS DISTINCT FROM ?", (name, ward_id)).fetchone()
        if clash:
            raise ValidationError({"name": f"there is already a ward named {name}"})
        return name

    def add_ward(self, name: str, ward_type: str, beds: int, prefix: str = "") -> int:
        """A new ward with `beds` beds labelled prefix1, prefix2, … (prefix: the ward's initials and '-')."""
        self.s.require(Permission.MANAGE_USERS, "change wards and beds")
        if ward_type not in WARD_TYPES:
            raise ValidationError({"type": "one of " + ", ".join(WARD_TYPES)})
        if not 0 <= int(beds) <= MAX_BEDS:
            raise ValidationError({"beds": f"0 to {MAX_BEDS}"})
        with self.s.db.transaction() as c:
            name = self._name(c, name)
            prefix = prefix or "".join(w[0] for w in name.split()).upper()[:3] + "-"
            wid = c.execute("INSERT INTO wards (name, ward_type, capacity) VALUES (?,?,0)", (name, ward_type)).lastrowid
            self._add_beds(c, wid, int(beds), prefix)
            audit.append(c, self.s.user.username, "ward_added", "ward", wid, f"{name} ({ward_type}), {beds} beds")
        return int(wid)

    def rename_ward(self, ward_id: int, name: str) -> None:
        self.s.require(Permission.MANAGE_USERS, "change wards and beds")
        with self.s.db.transaction() as c:
            old = c.execute("SELECT name FROM wards WHERE id = ?", (ward_id,)).fetchone()
            if old is None:
                raise ValidationError({"ward": "no such ward"})
            name = self._name(c, name, ward_id)
            c.execute("UPDATE wards SET name = ? WHERE id = ?", (name, ward_id))
            audit.append(c, self.s.user.username, "ward_renamed", "ward", ward_id, f"{old[0]} -> {name}")

    def set_beds(self, ward_id: int, total: int) -> int:
        """Give the ward `total` beds: new ones get the ward's usual label; only beds never used can be removed (a
        bed that held patients stays in their records: take it out of service instead). Returns the change."""
        self.s.require(Permission.MANAGE_USERS, "change wards and beds")
        if not 0 <= int(total) <= MAX_BEDS:
            raise ValidationError({"beds": f"0 to {MAX_BEDS}"})
        with self.s.db.transaction() as c:
            ward = self.ward(ward_id)   # read inside the write lock: no other desk changes the beds meanwhile
            change = int(total) - len(ward.beds)
            if change > 0:
                self._add_beds(c, ward_id, change, _usual_prefix(ward))
            elif change < 0:
                removable = [b for b in reversed(ward.beds) if not b.used and not b.occupied]
                if len(removable) < -change:
                    raise ValidationError({"beds": f"only {len(removable)} of {ward.name}'s beds were never used and can "
                                                   "be removed; take the others out of service instead"})
                c.executemany("DELETE FROM beds WHERE id = ?", [(b.id,) for b in removable[:-change]])
            if change:
                audit.append(c, self.s.user.username, "ward_beds_set", "ward", ward_id,
                             f"{len(ward.beds)} -> {total} beds")
        return change

    def set_out_of_service(self, bed_id: int, reason: str | None) -> None:
        """Take a bed out of service (with a reason) or, with None, back into service. A bed with a patient in it
        stays in service until the patient has moved: the census would otherwise count a patient in no bed."""
        self.s.require(Permission.MANAGE_USERS, "change wards and beds")
        reason = " ".join((reason or "").split())[:80] if reason is not None else None
        if reason is not None and not reason:
            raise ValidationError({"reason": "say why the bed is out of service (for example 'broken', 'deep clean')"})
        with self.s.db.transaction() as c:
            row = c.execute("SELECT label, out_of_service, ward_id FROM beds WHERE id = ?", (bed_id,)).fetchone()
            if row is None:
                raise ValidationError({"bed": "no such bed"})
            if reason is not None and c.execute("SELECT 1 FROM encounters WHERE bed_id = ? AND status = 'inpatient'",
                                                (bed_id,)).fetchone():
                raise ValidationError({"bed": f"bed {row[0]} has a patient in it: move the patient first"})
            if row[1] == reason:
                return
            c.execute("UPDATE beds SET out_of_service = ? WHERE id = ?", (reason, bed_id))
            audit.append(c, self.s.user.username, "bed_out_of_service" if reason is not None else "bed_in_service",
                         "bed", bed_id, f"{row[0]}" + (f": {reason}" if reason else ""))

    @staticmethod
    def _add_beds(c, ward_id: int, n: int, prefix: str) -> None:
        labels = {r[0] for r in c.execute("SELECT label FROM beds WHERE ward_id = ?", (ward_id,))}
        i, new = 1, []
        while len(new) < n:
            label = f"{prefix}{i}"
            if label not in labels:
                new.append(label)
            i += 1
        c.executemany("INSERT INTO beds (ward_id, label) VALUES (?,?)", [(ward_id, lbl) for lbl in new])


def _usual_prefix(ward: WardInfo) -> str:
    """The label prefix most of the ward's general beds share ('B3-' for B3-1 … B3-6), else the ward's initials."""
    general = [b.label for b in ward.beds if not b.isolation] or [b.label for b in ward.beds]
    prefixes = [re.sub(r"\d+$", "", lbl) for lbl in general]
    if prefixes:
        return max(set(prefixes), key=lambda p: (prefixes.count(p), -prefixes.index(p)))
    return "".join(w[0] for w in ward.name.split()).upper()[:3] + "-"
