"""Recommended bed assignment for waiting admissions, solved exactly as a small integer programme.

Hard constraints (a pair that breaks one is never proposed):
- only free beds; each bed takes at most one patient and each patient at most one bed;
- ward type / specialty: a patient who needs a ward type gets a bed of a ward of that type;
- isolation: a patient needing isolation gets an isolation-capable bed;
- sex-specific bays: a bed in a bay configured for "F" or "M" only takes patients of that sex;
- ward capacity: at most `ward.max_new_admissions` new patients per ward (e.g. staffing limit).
Objective (scipy.optimize.milp, binary): place as much priority as possible (an unplaced patient
costs BIG * priority), then prefer the patient's preferred ward, and keep isolation beds for those who
need them (a small cost for using one otherwise). Ward capacities make it more than a plain
assignment problem, hence milp rather than linear_sum_assignment.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Ward:
    name: str
    ward_type: str                       # e.g. "medical", "surgical", "cardiology"
    max_new_admissions: int | None = None  # None: limited by free beds only


@dataclass(frozen=True)
class Bed:
    bed_id: str
    ward: str
    free: bool = True
    isolation: bool = False
    bay_sex: str | None = None           # "F" / "M" for a single-sex bay, None for mixed or single room


@dataclass(frozen=True)
class WaitingAdmission:
    patient_id: str
    sex: str                             # "F" / "M" (anything else only fits mixed beds)
    ward_type: str | None = None         # required ward type/specialty; None = any
    needs_isolation: bool = False
    priority: float = 1.0                # higher = placed first when beds are short
    preferred_ward: str | None = None


@dataclass(frozen=True)
class Assignment:
    patient_id: str
    bed_id: str
    ward: str


@dataclass(frozen=True)
class Unassigned:
    patient_id: str
    reason: str


@dataclass
class AssignmentResult:
    assignments: list[Assignment] = field(default_factory=list)
    unassigned: list[Unassigned] = field(default_factory=list)
    objective: float = 0.0


ISOLATION_WASTE_COST = 1.0
NOT_PREFERRED_COST = 0.5
BIG = 1000.0  # > any sum of soft costs per patient, so placing priority always wins


def unfit_reason(p: WaitingAdmission, bed: Bed, ward: Ward | None) -> str | None:
    """The one bed-compatibility rule (optimiser, the coordinator's manual choice and placement): why this
    bed cannot take this patient, or None when it can."""
    if not bed.free:
        return "this bed is occupied"
    if ward is None:
        return "the bed's ward is unknown"
    if p.ward_type is not None and ward.ward_type != p.ward_type:
        return f"the patient needs a {p.ward_type} ward"
    if p.needs_isolation and not bed.isolation:
        return "the patient needs an isolation bed"
    if bed.bay_sex is not None and bed.bay_sex != p.sex:
        return f"this bed is in a {'female' if bed.bay_sex == 'F' else 'male'} bay"
    return None


def compatible(p: WaitingAdmission, bed: Bed, ward: Ward | None) -> bool:
    return unfit_reason(p, bed, ward) is None


def pair_cost(p: WaitingAdmission, bed: Bed) -> float:
    cost = 0.0
    if bed.isolation and not p.needs_isolation:
        cost += ISOLATION_WASTE_COST
    if p.preferred_ward is not None and bed.ward != p.preferred_ward:
        cost += NOT_PREFERRED_COST
    return cost


def _why_unplaced(p: WaitingAdmission, beds: Sequence[Bed], wards: dict[str, Ward]) -> str:
    free = [b for b in beds if b.free and b.ward in wards]
    if not free:
        return "no free bed"
    typed = [b for b in free if p.ward_type is None or wards[b.ward].ward_type == p.ward_type]
    if not typed:
        return f"no free bed on a {p.ward_type} ward"
    iso = [b for b in typed if not p.needs_isolation or b.isolation]
    if not iso:
        return "no free isolation bed" + (f" on a {p.ward_type} ward" if p.ward_type else "")
    sexed = [b for b in iso if b.bay_sex is None or b.bay_sex == p.sex]
    if not sexed:
        return f"only beds in bays for the other sex are free (patient sex {p.sex})"
    full = {b.ward for b in sexed if wards[b.ward].max_new_admissions == 0}
    if len(full) == len({b.ward for b in sexed}):
        return "ward admission limit reached"
    return "suitable beds went to higher-priority patients or ward admission limit reached"


def assign_beds(patients: Sequence[WaitingAdmission], beds: Sequence[Bed], wards: Sequence[Ward]) -> AssignmentResult:
    """Optimal assignment under the hard constraints; every patient is either assigned or explained."""
    ward_by_name = {w.name: w for w in wards}
    if len(ward_by_name) != len(wards):
        raise ValueError("duplicate ward names")
    if len({b.bed_id for b in beds}) != len(beds):
        raise ValueError("duplicate bed ids")
    if len({p.patient_id for p in patients}) != len(patients):
        raise ValueError("duplicate patient ids")
    if any(p.priority <= 0 for p in patients):
        raise ValueError("priority must be > 0")
    pairs = [(i, j) for i, p in enumerate(patients) for j, b in enumerate(beds)
             if compatible(p, b, ward_by_name.get(b.ward))]
    result = AssignmentResult()
    if pairs:
        n = len(pairs)
        # minimise sum(pair cost - BIG*priority) over chosen pairs == maximise placed priority first
        c = np.array([pair_cost(patients[i], beds[j]) - BIG * patients[i].priority for i, j in pairs])
        from scipy.optimize import Bounds, LinearConstraint, milp  # imported on first use: start-up time
        from scipy.sparse import lil_matrix

        a = lil_matrix((len(patients) + len(beds) + len(wards), n))
        ub = np.zeros(a.shape[0])
        for k, (i, j) in enumerate(pairs):
            a[i, k] = 1
            a[len(patients) + j, k] = 1
        ub[: len(patients) + len(beds)] = 1
        for w_idx, w in enumerate(wards):
            r = len(patients) + len(beds) + w_idx
            for k, (_, j) in enumerate(pairs):
                if beds[j].ward == w.name:
                    a[r, k] = 1
            ub[r] = w.max_new_admissions if w.max_new_admissions is not None else len(beds)
        res = milp(c, constraints=LinearConstraint(a.tocsr(), -np.inf, ub), integrality=np.ones(n),
                   bounds=Bounds(0, 1))
        if res.x is None:
            raise RuntimeError(f"bed assignment solver failed: {res.message}")
        chosen = [pairs[k] for k in np.flatnonzero(res.x > 0.5)]
        result.assignments = [Assignment(patients[i].patient_id, beds[j].bed_id, beds[j].ward) for i, j in chosen]
        result.objective = float(sum(pair_cost(patients[i], beds[j]) for i, j in chosen))
    placed = {a.patient_id for a in result.assignments}
    result.unassigned = [Unassigned(p.patient_id, _why_unplaced(p, beds, ward_by_name))
                         for p in patients if p.patient_id not in placed]
    return result
