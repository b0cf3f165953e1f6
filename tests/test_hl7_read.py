"""Reading HL7 v2 ADT (the interoperability issue, step 1b): the four public suites' messages all accounted for,
segment ends and byte-order marks of every kind, duplicates only when the content is the same, events in the order
they happened."""
from __future__ import annotations

import re

import pytest

from services.records.hl7v2 import NotHl7, read_hl7
from tests.conftest import shared_path

A01 = ("MSH|^~\\&|ADT1|GOOD HEALTH|WARDLENS|WL|202612010800||ADT^A01^ADT_A01|MSG00001|P|2.5.1",
       "EVN|A01|202612010800",
       "PID|1||4711^^^GOOD HEALTH^MR~9434765919^^^NHS^NH||Okafor^Ada||19800312|F",
       "PV1|1|I|Medicine A^A1^3^GOOD HEALTH||||||||||||||||V100")


def test_every_message_of_the_public_suites_is_accounted_for():
    folder = shared_path("interop", "hl7v2")
    files = [f for f in folder.rglob("*.hl7")]
    total = sum(len([s for s in re.split(r"\r\n|\n|\r", f.read_bytes().decode("utf-8-sig", "replace"))
                     if s.startswith("MSH")]) for f in files)
    batch = read_hl7([folder])
    messages = len({(e.file, e.message) for e in batch.events})   # an A40 gives one event per merged pair
    assert messages + batch.duplicates + sum(batch.other_types.values()) + len(batch.problems) == total
    triggers = {e.trigger for e in batch.events}
    assert {"A01", "A02", "A03", "A04", "A05", "A08", "A11", "A13", "A40"} <= triggers
    assert all(e.patient_ids and e.when for e in batch.events)
    merge = next(e for e in batch.events if e.trigger == "A40")
    assert merge.prior_ids and merge.prior_ids != merge.patient_ids
    assert {e.version for e in batch.events} >= {"2.3", "2.8"}


@pytest.mark.parametrize("end", ["\r", "\n", "\r\n"])
def test_segment_ends_and_a_byte_order_mark(tmp_path, end):
    (tmp_path / "m.hl7").write_bytes(("\ufeff" + end.join(A01) + end).encode("utf-8"))
    e = read_hl7([tmp_path / "m.hl7"]).events[0]
    assert (e.trigger, e.event, e.cls, e.ward, e.room, e.bed, e.visit) == \
        ("A01", "admit", "inpatient", "Medicine A", "A1", "3", "V100")
    assert e.patient_ids == (("4711", "GOOD HEALTH", "MR"), ("9434765919", "NHS", "NH"))
    assert (e.family, e.given, e.birth_date, e.sex) == ("Okafor", "Ada", "19800312", "Female")


def test_duplicates_only_when_the_content_is_the_same_and_events_in_the_order_they_happened(tmp_path):
    transfer = [A01[0].replace("ADT^A01^ADT_A01", "ADT^A02^ADT_A02"), "EVN|A02|202612020900||||202612011000",
                A01[2], A01[3].replace("Medicine A^A1^3", "Medicine B^B2^1")]
    same_id_other_content = [A01[0], A01[1], A01[2].replace("Okafor", "Okafor-Smith"), A01[3]]
    text = "\r".join(transfer) + "\r" + "\r".join(A01) + "\r" + "\r".join(A01) + "\r" + "\r".join(same_id_other_content)
    (tmp_path / "many.hl7").write_text(text, encoding="utf-8")
    batch = read_hl7([tmp_path / "many.hl7"])
    assert batch.duplicates == 1 and len(batch.events) == 3          # MSG00001 twice with other content: both kept
    assert [e.trigger for e in batch.ordered()] == ["A01", "A01", "A02"]   # the transfer happened (EVN-6) after
    assert batch.ordered()[-1].ward == "Medicine B"


def test_a_file_without_hl7_says_so(tmp_path):
    (tmp_path / "x.hl7").write_text('{"resourceType": "Bundle"}')
    with pytest.raises(NotHl7, match="no MSH segment"):
        read_hl7([tmp_path / "x.hl7"])
