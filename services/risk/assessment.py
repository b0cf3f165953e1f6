"""Risk at the bedside: the readmission model and the clinical scores for an encounter in the store."""
from __future__ import annotations

import json
import threading

from models.domain import Permission, RiskAssessment, RiskFactor
from services.inference.manifest import ModelIntegrityError, read_bundle
from services.core.paths import RESOURCES
from services.risk.clinical_scores import hospital_band, hospital_components, lace_components, score_inputs
from services.inference.model_cards import readable_card_markdown
from services.records.patients import PatientService
from services.records.uci_schema import ineligible_reason
from services.risk.readmission import ReadmissionService, bundled_readmission  # noqa: F401 - re-exported
from services.site.session import Session

class ReadmissionModel:
    """The readmission model a session scores with: the store's promoted local version once the model
    registry has activated it (services.modelops, at every open, promotion and rollback), else the bundled
    model. One per session, shared by every risk service of that session; never a process-wide setting."""

    def __init__(self) -> None:
        self._active: ReadmissionService | None = None
        self._lock = threading.Lock()

    def get(self) -> ReadmissionService:
        with self._lock:
            return self._active if self._active is not None else bundled_readmission()

    def use(self, service: ReadmissionService | None) -> None:
        """Score with `service` (an already hash-checked local version) or, with None, the bundled model."""
        with self._lock:
            self._active = service

    @property
    def loaded(self) -> ReadmissionService | None:
        """The local version in use, without loading the bundled model (None: bundled)."""
        with self._lock:
            return self._active


def outside_population(record: dict) -> str:
    """The readmission model learned from diabetic inpatients (UCI Diabetes 130-US): a stay from a hospital's own
    systems with no diabetes coded and no diabetes medication is outside that population, and the panel and report
    say so beside the figure. Stays of the UCI table are all diabetic."""
    if record.get("history_from_record") not in (True, 1):
        return ""
    codes = [c.partition(":")[2].replace(".", "").upper() for c in str(record.get("charlson_codes") or "").split(";")]
    codes += [str(record.get(k, "")) for k in ("diag_1", "diag_2", "diag_3")]
    diabetic = any(c.startswith(("E10", "E11", "E13", "250")) for c in codes) or record.get("diabetesMed") == "Yes"
    return "" if diabetic else ("no diabetes is coded for this stay and no diabetes medication is recorded; the model "
                                "was trained on diabetic inpatients only, so this figure is outside the population it "
                                "was validated on")


class AssessmentService:
    def __init__(self, session: Session, patients: PatientService, model: ReadmissionModel) -> None:
        self.s = session
        self.patients = patients
        self.model = model

    def readmission(self, patient_id: int, encounter_nbr: int) -> RiskAssessment:
        """Score one encounter with the patient's earlier encounters as history (never later ones)."""
        return self.readmission_many({encounter_nbr: patient_id}, log_each=True)[encounter_nbr]

    def readmission_many(self, encounters: dict[int, int], log_each: bool = False) -> dict[int, RiskAssessment]:
        """Score many encounters (encounter_nbr -> patient_id) in one model call.

        The frame holds every encounter of those patients; the features of each scored row read only
        that patient's earlier encounters, so later ones in the frame cannot leak into it.
        """
        self.s.require(Permission.READ_DEIDENTIFIED, "see risk scores")
        if not encounters:
            return {}
        frame = self.patients.uci_frame(sorted(set(encounters.values())))
        missing = set(encounters) - set(frame["encounter_id"])
        if missing:
            raise KeyError(f"encounters not in the store: {sorted(missing)[:5]}")
        svc = self.model.get()
        wanted = list(encounters)
        # the extra columns (status, times, ids) ride along unread: dropping them would copy the frame
        preds = svc.score_frame(frame, wanted)
        rows = {r["encounter_id"]: r for r in frame.to_dict("records")}
        out: dict[int, RiskAssessment] = {}
        for pred, nbr in zip(preds, wanted):
            record = rows[nbr]
            lace, hosp = lace_components(record), hospital_components(record)
            out[nbr] = RiskAssessment(
                encounter_nbr=nbr, eligible=pred.eligible, probability=pred.probability, band=pred.band,
                factors=tuple(RiskFactor(f.text, f.contribution) for f in pred.factors),
                lace=sum(lace.values()), lace_components=lace, hospital=sum(hosp.values()),
                hospital_band=hospital_band(sum(hosp.values())), hospital_components=hosp, model_version=svc.version,
                threshold=svc.threshold, at_discharge=record.get("status") != "inpatient",
                not_eligible_reason="" if pred.eligible else ineligible_reason(int(record["discharge_disposition_id"])),
                measured=score_inputs(record),
                outside_population=outside_population(record),
                unknown_inputs=tuple(f"diagnosis {d}: no ICD-9-CM group for the model, counted as missing"
                                     for d in str(record.get("unmapped_diagnoses") or "").split("; ") if d))
            if log_each:
                self.s.log("score", "encounter", nbr, f"readmission {svc.version}: {pred.band} "
                           f"{'' if pred.probability is None else round(pred.probability, 4)}")
        if not log_each:
            self.s.log("score", "encounters", "", f"readmission {svc.version}: {len(out)} encounters")
        return out

    def records(self, encounters: dict[int, int]) -> dict[int, dict]:
        """The UCI-schema record of each encounter (for rules that read the record)."""
        frame = self.patients.uci_frame(sorted(set(encounters.values())))
        frame = frame[frame["encounter_id"].isin(list(encounters))]
        return {int(r["encounter_id"]): r for r in frame.to_dict("records")}

    def model_card_markdown(self, name: str = "readmission") -> str:
        """The card of the model in use, as people read it (services.inference.model_cards.readable_card_markdown).

        For readmission that is the loaded model's own card: a promoted local version has its own. Reads the
        bundled card.json when no model is loaded yet, rather than loading one on the caller's (GUI) thread.
        """
        svc = self.model.loaded if name == "readmission" else None   # a local version; else the bundled card
        if svc is not None:
            origin = svc.meta.get("origin")
            return readable_card_markdown(svc.bundle.card, svc.version,
                                          f"{origin} (this hospital)" if origin else "bundled with WardLens")
        try:   # the card as signed in the bundle's manifest, never a card.json edited beside it
            files, _ = read_bundle(RESOURCES / "models" / name)
            card = json.loads(files["card.json"])
        except (ModelIntegrityError, KeyError, ValueError) as exc:
            return f"The {name} model card cannot be shown: {exc}"
        return readable_card_markdown(card, source="bundled with WardLens")
