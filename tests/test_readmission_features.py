"""Readmission features: shape, plain words, and no use of the current or later encounters."""
from __future__ import annotations

import numpy as np
import pandas as pd

from services.records.uci_table import normalise_uci_frame
from services.risk.features import FEATURE_NAMES, HISTORY_FEATURES, build_features, describe_feature, feature_label
from tests.test_readmission_helpers import make_row


def _patient() -> pd.DataFrame:
    rows = [
        make_row(100, 7, readmitted="<30", time_in_hospital=3, number_inpatient=0),
        make_row(250, 7, readmitted=">30", time_in_hospital=6, number_inpatient=1, insulin="Up"),
        make_row(300, 7, readmitted="<30", time_in_hospital=2, number_inpatient=2),
        make_row(900, 7, readmitted="NO", time_in_hospital=9, number_inpatient=5, discharge_disposition_id=11),
        make_row(120, 8, readmitted="NO"),  # another patient, interleaved
    ]
    return normalise_uci_frame(pd.DataFrame(rows))


def test_layout_and_order() -> None:
    df = _patient()
    f = build_features(df)
    assert tuple(f.columns) == FEATURE_NAMES and len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert list(f.index) == list(df.index) and np.isfinite(f.to_numpy()).all()
    shuffled = build_features(df.sample(frac=1.0, random_state=3))
    pd.testing.assert_frame_equal(shuffled.loc[f.index], f)


def test_history_uses_only_earlier_encounters() -> None:
    df = _patient()
    f = build_features(df).set_index(df["encounter_id"])
    assert f.loc[100, list(HISTORY_FEATURES)].eq([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, 0, -1, 0, -1, 0, -1, -1, 0]).all()
    assert f.loc[300, "hx_n_prior"] == 2 and f.loc[300, "hx_n_prior_lt30"] == 1  # 100 was <30, 250 was >30
    assert f.loc[250, "hx_prev_lt30"] == 1 and f.loc[300, "hx_prev_lt30"] == 0
    assert f.loc[300, "hx_prior_days"] == 9 and f.loc[300, "hx_prev_los"] == 6 and f.loc[300, "hx_prior_insulin"] == 1
    assert f.loc[300, "hx_prev_inpatient"] == 1 and f.loc[300, "hx_inpatient_delta"] == 1
    assert f.loc[120, "hx_n_prior"] == 0  # patient 8 does not see patient 7


def test_changing_current_or_later_rows_changes_nothing_earlier() -> None:
    df = _patient()
    base = build_features(df).set_index(df["encounter_id"])
    # rewrite the row itself (label) and every later encounter of the patient
    mod = df.copy()
    later = mod["encounter_id"] >= 300
    mod.loc[later, "readmitted"] = "<30"
    mod.loc[mod["encounter_id"] > 300, ["time_in_hospital", "number_inpatient"]] = [14, 20]
    mod.loc[mod["encounter_id"] > 300, "insulin"] = "Down"
    extra = normalise_uci_frame(pd.DataFrame([make_row(901, 7, readmitted="<30", number_inpatient=9)]))
    mod = pd.concat([mod, extra], ignore_index=True)
    after = build_features(mod).set_index(mod["encounter_id"])
    for eid in (100, 250, 300, 120):
        pd.testing.assert_series_equal(after.loc[eid], base.loc[eid], check_names=False)
    # the current row's own label never enters its features
    relabelled = build_features(df.assign(readmitted=np.where(df["encounter_id"] == 300, "NO", df["readmitted"])))
    assert (relabelled.set_index(df["encounter_id"]).loc[300] == base.loc[300]).all()


def test_truncated_history_matches_full_history() -> None:
    """Scoring a row with only its history gives the same features as scoring it inside the full table."""
    df = _patient()
    full = build_features(df).set_index(df["encounter_id"])
    part = df[df["encounter_id"] <= 250]
    f = build_features(part).set_index(part["encounter_id"])
    pd.testing.assert_series_equal(f.loc[250], full.loc[250], check_names=False)


def test_plain_words() -> None:
    assert describe_feature("number_inpatient", 3) == "3 inpatient stays in the year before"
    assert describe_feature("number_inpatient", 1) == "1 inpatient stay in the year before"
    assert describe_feature("med_insulin_up", 1) == "insulin dose increased"
    assert describe_feature("hx_n_prior_lt30", 2) == "2 earlier readmissions within 30 days"
    assert describe_feature("disp_1", 0).startswith("discharge destination other than home")
    for n in FEATURE_NAMES:
        assert describe_feature(n, 1.0) and feature_label(n) and "{" not in feature_label(n)


def test_factors_use_plain_words_not_the_source_codes() -> None:
    """Factors are read by clinicians: payer, admission and discharge codes in words, no raw UCI names."""
    assert describe_feature("payer_MC", 1) == "payer: Medicare"
    assert describe_feature("disp_3", 1) == "discharged to a skilled nursing facility"
    assert describe_feature("disp_7", 1) == "left against medical advice"
    assert describe_feature("disp_1", 0) == "discharge destination other than home (self-care)"
    assert describe_feature("adm_src_7", 1) == "admitted via emergency department"
    assert describe_feature("adm_src_4", 1) == "transferred from another hospital"
    assert describe_feature("adm_type_6", 1) == "admission type not recorded"
    assert describe_feature("adm_type_1", 0) == "not an emergency admission"
    assert describe_feature("spec_Orthopedics-Reconstructive", 1) == "admitting specialty orthopedics (reconstructive)"
    assert describe_feature("age_years", 75) == "age 70–79"
    raw = ("NULL", "null", "Not Mapped", "not mapped", "snf", "icf", " ama", "transferred/", "/transferred", " fac ",
           "InternalMedicine", "payer MC", "UN payer", "not:")
    for n in FEATURE_NAMES:
        for v in (0.0, 1.0):
            text = describe_feature(n, v)
            assert not any(r in text for r in raw), (n, v, text)


def test_display_words_for_codes_and_age_bands() -> None:
    from services.records.uci_schema import (AGE_BANDS, admission_source_text, admission_type_text, age_band_text,
                                     disposition_text, payer_text, specialty_text)
    assert [age_band_text(b) for b in AGE_BANDS[6:8]] == ["60–69", "70–79"] and age_band_text("") == ""
    assert payer_text("MC") == "Medicare" and payer_text("?") == "Not recorded" and payer_text("UN") == "Payer code UN"
    assert admission_type_text(6) == admission_type_text(8) == "Not recorded" and admission_type_text(1) == "Emergency"
    assert admission_source_text(7) == "Emergency department" and disposition_text(None) == "Not recorded"
    assert disposition_text(22) == "Transfer to a rehabilitation facility"
    assert specialty_text("Family/GeneralPractice") == "Family / general practice"
    assert specialty_text("ObstetricsandGynecology") == "Obstetrics and gynecology" and specialty_text("?") == "Not recorded"


def test_one_patient_at_the_bedside_equals_the_same_rows_in_a_batch() -> None:
    """Frames of a few rows take the object-array path, large ones pandas Series: same numbers."""
    from services.records.demo import SAMPLE
    from services.records.uci_table import read_uci_csv
    df = read_uci_csv(SAMPLE)
    batch = build_features(df)
    assert len(df) > 64
    counts = df["patient_nbr"].value_counts()
    for pid in list(counts.index[:15]) + list(counts.index[-15:]):  # patients with most and fewest stays
        rows = df[df["patient_nbr"] == pid].sample(frac=1, random_state=0)  # any order in, same rows out
        one = build_features(rows)
        assert np.array_equal(one.to_numpy(), batch.loc[rows.index].to_numpy()), pid
        assert list(one.index) == list(rows.index)
    assert build_features(df.iloc[:0]).shape == (0, len(FEATURE_NAMES))


def test_normalising_leaves_the_callers_frame_as_it_was() -> None:
    """normalise_uci_frame copies shallowly (a deep copy of a 100,000-row frame stalled the GUI):
    the caller's columns must still be the strings it passed in."""
    from services.records.demo import SAMPLE
    raw = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False, nrows=200).drop(columns=["readmitted"])
    before = raw.copy(deep=True)
    out = normalise_uci_frame(raw)
    pd.testing.assert_frame_equal(raw, before)
    assert out["encounter_id"].dtype == np.int64 and (out["readmitted"] == "").all()
