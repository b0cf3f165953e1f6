"""In-application alerts: an inpatient whose risk crosses the configured threshold, a ward whose
forecast may exceed its capacity. An alert stays open until someone acknowledges it (audited)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from models.domain import Permission, RiskAssessment
from services.store import audit
from services.capacity.forecast import WardForecast
from services.capacity.census import InpatientEstimate
from services.core.errors import ValidationError
from services.site.session import Session
from services.site.settings import SettingsService


@dataclass(frozen=True)
class Alert:
    id: int
    kind: str          # "risk" or "capacity"
    entity: str
    entity_id: str
    message: str
    created_at: str


def _now() -> str:
    return dt.datetime.now().isoformat(sep=" ", timespec="seconds")


class AlertService:
    def __init__(self, session: Session, settings: SettingsService) -> None:
        self.s = session
        self.settings = settings

    def risk_threshold(self, model_threshold: float) -> float:
        """The site's alert threshold (setting alert_risk_threshold), else the model's high-risk threshold."""
        value = self.settings.value("alert_risk_threshold")
        return model_threshold if value is None else float(value)

    def evaluate(self, inpatients: list[InpatientEstimate], risks: dict[int, RiskAssessment],
                 forecasts: list[WardForecast]) -> int:
        """Raise the alerts that are due and not raised before; returns how many are new.

        One risk alert per encounter (it is about that stay), one capacity alert per ward and first
        day at risk (a new at-risk period is news, the same one repeated is not).
        """
        self.s.require(Permission.READ_DEIDENTIFIED, "see alerts")
        new = []
        for p in inpatients:
            r = risks.get(p.encounter_nbr)
            if r is None or r.probability is None or r.probability < self.risk_threshold(r.threshold):
                continue
            new.append(("risk", "encounter", str(p.encounter_nbr),
                        f"{p.patient_label}, patient no. {p.mrn} ({p.ward} {p.bed}): readmission risk {r.percent} "
                        f"({r.band}); "
                        f"expected discharge {p.stay.discharge_text}", f"readmission risk {r.band}"))
        for f in forecasts:
            if f.days_at_risk:
                first = f.days_at_risk[0]
                worst = max(f.days, key=lambda d: d.p_over_capacity)
                # "on", not "from": often one day at a small chance, not a state that starts and lasts
                pct = f"{100 * worst.p_over_capacity:.0f}%"
                text = (f"{f.ward}: occupancy may exceed its {f.capacity} beds on {first:%a %d %b} ({pct} chance)"
                        if len(f.days_at_risk) == 1 else
                        f"{f.ward}: occupancy may exceed its {f.capacity} beds on {len(f.days_at_risk)} of the next "
                        f"{len(f.days)} days, first on {first:%a %d %b}; highest chance {pct} on {worst.date:%a %d %b}")
                new.append(("capacity", "ward", f"{f.ward}:{first.isoformat()}", text, text))
        if not self.s.sees_names:   # a risk alert names its patient: raised by sessions that may write the name
            new = [n for n in new if n[0] != "risk"]
        created = 0
        with self.s.db.transaction() as c:
            for kind, entity, entity_id, message, summary in new:
                if c.execute("SELECT 1 FROM alerts WHERE kind = ? AND entity_id = ?", (kind, entity_id)).fetchone():
                    continue
                c.execute("INSERT INTO alerts (kind, entity, entity_id, message, created_at) VALUES (?,?,?,?,?)",
                          (kind, entity, entity_id, message if kind != "risk" else
                           self.s.codec.text_in("alerts", "message", entity_id, message), _now()))
                audit.append(c, "system", "alert", entity, entity_id, summary[:200])   # never the patient's name
                created += 1
        return created

    def open_alerts(self) -> list[Alert]:
        self.s.require(Permission.READ_DEIDENTIFIED, "see alerts")
        rows = self.s.db.conn.execute("SELECT id, kind, entity, entity_id, message, created_at FROM alerts "
                                      "WHERE acknowledged_at IS NULL ORDER BY id DESC").fetchall()
        text = self.s.codec.text_out
        alerts = [Alert(i, kind, entity, eid, text("alerts", "message", eid, msg), at)
                  for i, kind, entity, eid, msg, at in rows]
        if not self.s.sees_names:  # an analyst sees that there are risk alerts, not whose
            alerts = [a if a.kind != "risk" else Alert(a.id, a.kind, a.entity, "", "A patient's readmission risk "
                                                       "crossed the alert threshold.", a.created_at) for a in alerts]
        return alerts

    def target(self, alert_id: int) -> tuple[str, int | str]:
        """What an alert is about, to open it: ("patient", patient id) for a risk alert, ("ward", name) for a
        capacity alert. Care roles only: the patient behind a risk alert is identifying."""
        self.s.require(Permission.READ_PATIENT, "open alerts")
        row = self.s.db.conn.execute("SELECT kind, entity_id FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        if row is None:
            raise ValidationError({"alert": "no such alert"})
        kind, entity_id = row
        if kind == "capacity":
            return "ward", str(entity_id).rpartition(":")[0]
        found = self.s.db.conn.execute("SELECT patient_id FROM encounters WHERE encounter_nbr = ?",
                                       (int(entity_id),)).fetchone()
        if found is None:
            raise ValidationError({"alert": "the stay this alert is about is no longer in the store"})
        return "patient", int(found[0])

    def acknowledge(self, alert_id: int) -> None:
        self.s.require(Permission.READ_PATIENT, "acknowledge alerts")
        with self.s.db.transaction() as c:
            n = c.execute("UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ? WHERE id = ? AND acknowledged_at IS NULL",
                          (_now(), self.s.user.username, alert_id)).rowcount
            if not n:
                raise ValidationError({"alert": "already acknowledged or not found"})
            audit.append(c, self.s.user.username, "acknowledge", "alert", alert_id)
