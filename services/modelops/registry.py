"""Which models are in use, with their cards, and the readmission versions kept inside the store.

Bundled models live in resources/models/<name>/ (hash-checked at load). Locally trained or recalibrated
readmission models are derived from patient data, so they live only INSIDE the encrypted store, in the
table model_versions: the ONNX bytes, the sidecars (meta.json text and trees.npz, base64) with their
sha256, the card written from what was measured, and the ONNX sha256. Every part is checked again
whenever a version is loaded; a mismatch refuses the version.

Status: 'candidate' (stored, not in use), 'active' (in use; at most one per name), 'retired' (was active
or superseded; kept for rollback). No active row means the bundled model is in use. Promotion goes
through the gate measured when the candidate was made (services/modelops/local_training.py) and only against the
model that was active then; rollback re-activates the version the current one replaced (its
parent_version), or the bundled model. Every change is audited in the same transaction.

activate_store_model(session, model) installs the store's active version as the session's model
(services.risk.assessment.ReadmissionModel); the one way to open a session (services.desk) calls it for the
GUI and every command. Admin only: everything on ModelRegistry but reading what is active needs
Permission.MANAGE_MODELS.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from models.domain import Permission
from services.store import integrity
from services.risk.assessment import ReadmissionModel, bundled_readmission
from services.store.audit import append as audit_append
from services.core.errors import WardLensError
from services.inference.model_cards import card_markdown  # noqa: F401 - the Models view renders cards with it
from services.inference.onnx_runtime import MODELS_DIR, ModelIntegrityError, load_bundle
from services.risk.readmission import ReadmissionService, bundled_readmission_version
from services.site.session import Session

READMISSION = "readmission"
BUNDLED_MODELS: tuple[tuple[str, str], ...] = (
    ("readmission", "30-day readmission risk at discharge"),
    ("los", "Length of stay at admission"),
    ("xray", "Chest X-ray findings"),
)
SIDECAR_PARTS = ("meta.json", "trees.npz")


class ModelRegistryError(WardLensError):
    """A model action that cannot be done (not better, wrong status, nothing to roll back)."""


@dataclass(frozen=True)
class ModelEntry:
    """One model as the Models page lists it (plain data; no sessions or bytes)."""

    key: str                 # "readmission:bundled", "readmission:7", "los:bundled"
    name: str                # readmission / los / xray
    title: str
    version: str
    origin: str              # "bundled" or "local"
    status: str              # "in use", "candidate", "retired", "not in use", "not installed", "refused"
    in_use: bool
    sha256: str              # the digest checked at load (bundled) or when listed (stored)
    sha256_ok: bool
    kind: str = "bundled"    # bundled / retrain / recalibration
    version_id: int | None = None
    created_at: str = ""
    created_by: str = ""
    parent_version: str = ""
    problem: str = ""
    card: dict[str, Any] = field(default_factory=dict, compare=False)
    card_markdown: str = field(default="", compare=False)

    @property
    def gate(self) -> dict[str, Any]:
        """The promotion gate measured when this version was made ({} for bundled models)."""
        return dict(self.card.get("comparison") or {})


@dataclass(frozen=True)
class ActiveModel:
    version: str
    origin: str              # "bundled" or "local"
    version_id: int | None
    warning: str = ""


# ----- stored parts -------------------------------------------------------------------------------

def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack_sidecars(meta_json: bytes, trees_npz: bytes) -> str:
    """The sidecars column: the exact bytes (base64) of each part and their sha256."""
    parts = {"meta.json": meta_json, "trees.npz": trees_npz}
    return json.dumps({"files": {k: base64.b64encode(v).decode("ascii") for k, v in parts.items()},
                       "sha256": {k: sha256_hex(v) for k, v in parts.items()}})


def unpack_sidecars(text: str) -> tuple[dict[str, bytes], dict[str, str]]:
    try:
        obj = json.loads(text)
        files = {k: base64.b64decode(obj["files"][k], validate=True) for k in SIDECAR_PARTS}
        return files, {k: str(obj["sha256"][k]) for k in SIDECAR_PARTS}
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelIntegrityError(f"the stored sidecars are damaged ({exc.__class__.__name__}); refusing to load them") \
            from exc


def _check_row(onnx: bytes, sidecars: str, sha: str) -> tuple[dict[str, bytes], dict[str, str]]:
    """Raise ModelIntegrityError unless every stored part matches its recorded sha256."""
    if sha256_hex(bytes(onnx)) != sha:
        raise ModelIntegrityError("model.onnx does not match its recorded sha256; refusing to load it")
    files, digests = unpack_sidecars(sidecars)
    for part in SIDECAR_PARTS:
        if sha256_hex(files[part]) != digests[part]:
            raise ModelIntegrityError(f"{part} does not match its recorded sha256; refusing to load it")
    return files, {"model.onnx": sha, **digests}


def load_stored(conn, version_id: int) -> ReadmissionService:
    """A stored readmission version as a service; every part sha256-checked (ModelIntegrityError otherwise)."""
    row = conn.execute("SELECT name, version, onnx, sidecars, card, sha256, status, sig FROM model_versions WHERE id = ?",
                       (version_id,)).fetchone()
    if row is None:
        raise ModelRegistryError(f"No stored model version with id {version_id}.")
    name, version, onnx, sidecars, card, sha, status, sig = row
    if name != READMISSION:
        raise ModelRegistryError(f"Stored version {version} is a {name} model; only readmission versions are kept.")
    trust = getattr(conn, "trust", None)
    if not integrity.model_is_signed(trust, name, version, sha, sidecars, card, status, sig) or \
            not integrity.is_current(conn, trust, f"model:{version_id}", sig):
        raise ModelIntegrityError(f"Stored model {version} is not signed by an administrator of this store (inserted "
                                  "or altered outside WardLens); refusing to load it")
    try:
        files, digests = _check_row(bytes(onnx), sidecars, sha)
        return ReadmissionService.from_bytes(bytes(onnx), files["meta.json"], files["trees.npz"], digests,
                                             json.loads(card), source=f"stored version {version}")
    except ModelIntegrityError as exc:
        raise ModelIntegrityError(f"Stored model {version}: {exc}") from exc


def _active_row(conn) -> tuple[int, str] | None:
    row = conn.execute("SELECT id, version FROM model_versions WHERE name = ? AND status = 'active' ORDER BY id DESC",
                       (READMISSION,)).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def activate_store_model(session: Session, model: ReadmissionModel) -> ActiveModel:
    """Install the store's active readmission version (or the bundled model) as the session's model.

    A stored version that fails its sha256 check is refused: the bundled model is used instead, the
    refusal is audited and returned as a warning. Any role may call this (every role uses the model).
    """
    session.ensure_open()
    active = _active_row(session.db.conn)
    if active is None:
        model.use(None)
        return ActiveModel(bundled_readmission_version(), "bundled", None)
    vid, version = active
    try:
        svc = load_stored(session.db.conn, vid)
    except ModelIntegrityError as exc:
        model.use(None)
        session.log("model refused", "model_version", vid, str(exc))
        return ActiveModel(bundled_readmission_version(), "bundled", None,
                           f"{exc} The bundled model is in use instead.")
    model.use(svc)
    return ActiveModel(version, "local", vid)


# ----- card page ----------------------------------------------------------------------------------

# ----- registry -----------------------------------------------------------------------------------

def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class ModelRegistry:
    def __init__(self, session: Session, model: ReadmissionModel) -> None:
        self.s = session
        self.model = model   # the session's model in use: promotion and rollback switch it at once

    def require(self, what: str) -> None:
        self.s.require(Permission.MANAGE_MODELS, what)

    # --- reading ----------------------------------------------------------------------------------
    def active(self) -> ActiveModel:
        """What the store says is in use (without loading it)."""
        row = _active_row(self.s.db.conn)
        if row is None:
            return ActiveModel(bundled_readmission_version(), "bundled", None)
        return ActiveModel(row[1], "local", row[0])

    def active_readmission(self) -> tuple[ReadmissionService, ActiveModel]:
        """The active readmission model, loaded and hash-checked (for comparisons)."""
        self.require("compare models")
        act = self.active()
        svc = bundled_readmission() if act.version_id is None else load_stored(self.s.db.conn, act.version_id)
        return svc, act

    def entries(self) -> list[ModelEntry]:
        """Every model: the bundled ones (sha256 checked at load) and each stored readmission version
        (every part re-hashed now). The one in use is the one the process scores with."""
        self.require("see the models")
        in_use_sha = self.model.get().bundle.sha256
        out: list[ModelEntry] = []
        for name, title in BUNDLED_MODELS:
            directory = MODELS_DIR / name
            if not (directory / "model.onnx").exists():
                out.append(ModelEntry(f"{name}:bundled", name, title, "—", "bundled", "not installed", False, "", False,
                                      problem=f"No bundled {name} model in {directory}.",
                                      card_markdown=f"# {title}\n\nThe {name} model is not installed on this workstation."))
                continue
            try:
                bundle = load_bundle(directory)
            except (ModelIntegrityError, FileNotFoundError) as exc:
                out.append(ModelEntry(f"{name}:bundled", name, title, "—", "bundled", "refused", False, "", False,
                                      problem=str(exc), card_markdown=f"# {title}\n\n**Refused:** {exc}"))
                continue
            md = bundle.files["card.md"].decode("utf-8") if "card.md" in bundle.files else card_markdown(bundle.card)
            version = bundle.version
            in_use = True
            if name == READMISSION:
                version = bundled_readmission().version
                in_use = bundle.sha256 == in_use_sha
            out.append(ModelEntry(f"{name}:bundled", name, bundle.card.get("title", title), version, "bundled",
                                  "in use" if in_use else "not in use", in_use, bundle.sha256, True,
                                  card=bundle.card, card_markdown=md))
        rows = self.s.db.conn.execute(
            "SELECT id, name, version, onnx, sidecars, card, sha256, status, parent_version, created_at, created_by "
            "FROM model_versions ORDER BY id DESC").fetchall()
        for vid, name, version, onnx, sidecars, card_text, sha, status, parent, created_at, created_by in rows:
            problem = ""
            try:
                _check_row(bytes(onnx), sidecars, sha)
                ok = True
            except ModelIntegrityError as exc:
                ok, problem = False, str(exc)
            try:
                card = json.loads(card_text)
            except ValueError:
                card, problem = {}, problem or "the stored card is damaged"
            in_use = ok and status == "active" and sha == in_use_sha
            shown = "refused" if not ok else ("in use" if in_use else status)
            if ok and status == "active" and not in_use:
                problem = "active in the store but not loaded in this session (open the store again)"
            out.append(ModelEntry(f"{name}:{vid}", name, card.get("title", name), version, "local", shown, in_use, sha,
                                  ok, str(card.get("kind", "retrain")), int(vid), created_at, created_by, parent or "",
                                  problem, card, card_markdown(card) if card else "The stored card is damaged."))
        return out

    # --- changes ----------------------------------------------------------------------------------
    def _sign(self, c, version_id: int) -> None:
        """Only rows this administrator session just wrote are (re)signed, never whatever else is in the table."""
        trust = self.s.db.trust
        if trust is not None and trust.admin_pub is not None:
            integrity.sign_model(c, trust, version_id)

    def add_candidate(self, version: str, onnx: bytes, meta_json: bytes, trees_npz: bytes, card: dict[str, Any],
                      parent_version: str, action: str, detail: str) -> int:
        """Store a new candidate version and its audit entry in one transaction; returns its id."""
        self.require("store models")
        sha = sha256_hex(onnx)
        with self.s.db.transaction() as c:
            dup = c.execute("SELECT id, status FROM model_versions WHERE name = ? AND version = ?",
                            (READMISSION, version)).fetchone()
            if dup:
                raise ModelRegistryError(f"This model is identical to stored version {version} ({dup[1]}); nothing new "
                                         "was stored.")
            cur = c.execute(
                "INSERT INTO model_versions (name, version, onnx, sidecars, card, sha256, status, parent_version, "
                "created_at, created_by) VALUES (?,?,?,?,?,?,'candidate',?,?,?)",
                (READMISSION, version, onnx, pack_sidecars(meta_json, trees_npz), json.dumps(card, default=float), sha,
                 parent_version, _now(), self.s.user.username))
            vid = int(cur.lastrowid)
            self._sign(c, vid)
            audit_append(c, self.s.user.username, action, "model_version", vid, f"{version} sha256 {sha}; {detail}")
        return vid

    def promote(self, version_id: int) -> str:
        """Make a candidate the model in use, if its gate says it is better than the model active now."""
        self.require("promote models")
        conn = self.s.db.conn
        row = conn.execute("SELECT version, status, card FROM model_versions WHERE id = ? AND name = ?",
                           (version_id, READMISSION)).fetchone()
        if row is None:
            raise ModelRegistryError(f"No stored readmission version with id {version_id}.")
        version, status, card_text = row
        if status != "candidate":
            raise ModelRegistryError(f"{version} is {status}, not a candidate; only candidates can be promoted "
                                     "(use roll back to return to an earlier model).")
        gate = json.loads(card_text).get("comparison") or {}
        act = self.active()
        refusal = ""
        if not gate:
            refusal = f"{version} has no comparison with the active model."
        elif gate.get("against", {}).get("version") != act.version:
            refusal = (f"{version} was compared with {gate.get('against', {}).get('version')}, but {act.version} is "
                       "active now; retrain or recalibrate to compare with it.")
        elif not gate.get("better"):
            refusal = f"{version} is not shown to be better than {act.version}: {gate.get('reason', '')}"
        if refusal:
            self.s.log("model promote refused", "model_version", version_id, refusal)
            raise ModelRegistryError(f"Not promoted. {refusal}")
        svc = load_stored(conn, version_id)  # refuses a tampered version before anything changes
        with self.s.db.transaction() as c:
            retiring = [r[0] for r in c.execute("SELECT id FROM model_versions WHERE name = ? AND status = 'active'",
                                                (READMISSION,))]
            c.execute("UPDATE model_versions SET status = 'retired' WHERE name = ? AND status = 'active'", (READMISSION,))
            c.execute("UPDATE model_versions SET status = 'active', parent_version = ? WHERE id = ?",
                      (act.version, version_id))
            for vid in (*retiring, version_id):
                self._sign(c, vid)
            audit_append(c, self.s.user.username, "model promote", "model_version", version_id,
                         f"{version} replaces {act.version}; {gate.get('reason', '')}")
        self.model.use(svc)
        return f"{version} is now the readmission model in use (it replaces {act.version})."

    def rollback(self) -> str:
        """Retire the active local version and re-activate the one it replaced (or the bundled model)."""
        self.require("roll back models")
        conn = self.s.db.conn
        act = _active_row(conn)
        if act is None:
            raise ModelRegistryError("The bundled model is in use; there is nothing to roll back.")
        vid, version = act
        parent = conn.execute("SELECT parent_version FROM model_versions WHERE id = ?", (vid,)).fetchone()[0] or ""
        prev = conn.execute("SELECT id FROM model_versions WHERE name = ? AND version = ?", (READMISSION, parent)).fetchone()
        svc = load_stored(conn, int(prev[0])) if prev else bundled_readmission()
        with self.s.db.transaction() as c:
            c.execute("UPDATE model_versions SET status = 'retired' WHERE id = ?", (vid,))
            self._sign(c, vid)
            if prev:
                c.execute("UPDATE model_versions SET status = 'active' WHERE id = ?", (int(prev[0]),))
                self._sign(c, int(prev[0]))
            audit_append(c, self.s.user.username, "model rollback", "model_version", vid,
                         f"{version} retired; {svc.version} ({'stored' if prev else 'bundled'}) in use again")
        self.model.use(svc if prev else None)
        return f"Rolled back: {svc.version} is the readmission model in use again; {version} is retired."

    def discard(self, version_id: int) -> str:
        """Delete a candidate that will not be promoted (derived from patient data: keep no more than needed)."""
        self.require("discard models")
        with self.s.db.transaction() as c:
            row = c.execute("SELECT version, status FROM model_versions WHERE id = ?", (version_id,)).fetchone()
            if row is None or row[1] != "candidate":
                raise ModelRegistryError("Only a stored candidate can be discarded.")
            c.execute("DELETE FROM model_versions WHERE id = ?", (version_id,))
            audit_append(c, self.s.user.username, "model discard", "model_version", version_id, f"{row[0]} deleted")
        return f"Candidate {row[0]} discarded."
