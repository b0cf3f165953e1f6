"""Bundled models: one signed unit, checked from the bytes that are then loaded."""
from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from services.imaging.xray import XrayService
from services.inference.manifest import MANIFEST, ModelIntegrityError, read_bundle, write_manifest
from services.inference.onnx_runtime import MODELS_DIR, load_bundle
from services.risk.readmission import ReadmissionService


@pytest.fixture
def bundle(tmp_path):
    dst = tmp_path / "readmission"
    shutil.copytree(MODELS_DIR / "readmission", dst)
    return dst


def test_the_committed_bundles_carry_the_release_signature(monkeypatch):
    monkeypatch.delenv("WARDLENS_TRUST_DEV_MODELS")   # as on a hospital's desk
    for name in ("readmission", "los", "xray"):
        files, _ = read_bundle(MODELS_DIR / name)
        assert {"model.onnx", "card.json", "card.md"} <= set(files)
        assert json.loads((MODELS_DIR / name / MANIFEST).read_text())["key_id"].startswith("wardlens-release-")


def test_a_model_swapped_with_a_fresh_sha256_is_refused(bundle):
    """Before: swapping a model together with its .sha256 (and the sidecar) was accepted silently."""
    other = (MODELS_DIR / "los" / "model.onnx").read_bytes()
    (bundle / "model.onnx").write_bytes(other)
    (bundle / "model.onnx.sha256").write_text(f"{hashlib.sha256(other).hexdigest()}  model.onnx\n")
    with pytest.raises(ModelIntegrityError, match="model.onnx does not match its signed manifest"):
        ReadmissionService(bundle)


def test_an_edited_card_is_refused(bundle):
    """Before: card.json was not hashed at all."""
    card = json.loads((bundle / "card.json").read_text())
    card["metrics_test"] = {"roc_auc": 0.99}
    (bundle / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelIntegrityError, match="card.json does not match"):
        load_bundle(bundle, use_cache=False)


def test_a_manifest_re_signed_by_someone_else_is_refused(bundle, monkeypatch):
    monkeypatch.delenv("WARDLENS_TRUST_DEV_MODELS")
    (bundle / "model.onnx").write_bytes((MODELS_DIR / "los" / "model.onnx").read_bytes())
    monkeypatch.setenv("WARDLENS_MODEL_DEV_KEY", str(bundle.parent / "attacker.key"))
    write_manifest(bundle)   # a valid-looking manifest over the swapped files, by a key no release trusts
    with pytest.raises(ModelIntegrityError, match="not signed by a key this WardLens trusts"):
        load_bundle(bundle, use_cache=False)
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["key_id"] = "wardlens-release-2026-12"   # claiming the release key does not make the signature its
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match="not signed by a key"):
        load_bundle(bundle, use_cache=False)


@pytest.mark.parametrize("damage", [lambda b: (b / MANIFEST).unlink(), lambda b: (b / MANIFEST).write_text("{"),
                                    lambda b: (b / "trees.npz").unlink()])
def test_a_missing_or_damaged_manifest_is_a_sentence_not_a_traceback(bundle, damage):
    damage(bundle)
    with pytest.raises(ModelIntegrityError) as caught:
        ReadmissionService(bundle)
    message = str(caught.value)
    assert "readmission" in message and ("not loaded" in message or "lacks" in message), message


def test_the_bytes_checked_are_the_bytes_used(bundle):
    """Before: the model file was hashed, then reopened by path (a swap in between went unnoticed)."""
    svc = ReadmissionService(bundle)
    checked = svc.model_bytes()
    (bundle / "model.onnx").write_bytes(b"swapped after the check")
    assert svc.model_bytes() == checked and hashlib.sha256(checked).hexdigest() == svc.bundle.sha256


def test_the_xray_sidecar_is_covered_too(tmp_path):
    dst = tmp_path / "xray"
    shutil.copytree(MODELS_DIR / "xray", dst)
    meta = json.loads((dst / "xray_meta.json").read_text())
    meta["thresholds"] = {k: 0.99 for k in meta["thresholds"]}   # no finding would ever be flagged
    (dst / "xray_meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelIntegrityError, match="xray_meta.json does not match"):
        XrayService(dst)
