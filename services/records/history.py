"""A patient's hospital use before a stay, from the record itself where the record can say it.

UCI rows carry "visits in the year before" as reported at that admission; a store that holds the patient's earlier
stays with their dates knows better (the UCI field said 0 beside a record with an admission four months earlier).
The record's count is used wherever this stay and an earlier one have dates; the reported fields otherwise."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from models.domain import Encounter


@dataclass(frozen=True)
class PriorUse:
    inpatient: int
    emergency: int | None     # None: the record cannot say (only the reported field can)
    outpatient: int | None
    source: str               # "this record" or "as reported at admission"

    @property
    def text(self) -> str:
        if self.emergency is None:
            return f"{self.inpatient} hospital stay{'' if self.inpatient == 1 else 's'} (from this record)"
        return (f"{self.outpatient} outpatient / {self.emergency} emergency / {self.inpatient} inpatient "
                f"({self.source})")


def prior_use(e: Encounter, record: list[Encounter]) -> PriorUse:
    """Use in the 365 days before `e` was admitted: stays on the record when dates allow, else the UCI fields."""
    if e.admit_time is not None and any(o.admit_time is not None and o.admit_time < e.admit_time
                                        for o in record if o is not e and o.encounter_nbr != e.encounter_nbr):
        start = e.admit_time - dt.timedelta(days=365)
        n = sum(1 for o in record if o.encounter_nbr != e.encounter_nbr and o.admit_time is not None
                and start <= o.admit_time < e.admit_time)
        return PriorUse(n, None, None, "this record")
    return PriorUse(e.number_inpatient, e.number_emergency, e.number_outpatient, "as reported at admission")
