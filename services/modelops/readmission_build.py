"""Readmission model export and evaluation code shared by the build-time pipeline (training/) and local
retraining in the application (services/modelops/local_training.py), so both produce bundles the same way.

- booster_tree_arrays: flatten an XGBoost booster into TreeArrays (the explanation sidecar trees.npz);
- export_onnx: the booster converted by onnxmltools.convert_xgboost (TreeEnsembleRegressor giving the margin),
  then Platt (a * margin + b) -> sigmoid appended with onnx.helper; recalibrate_onnx swaps the Platt constants;
- metrics: ROC-AUC, PR-AUC, Brier, ECE, calibration curve, slope and intercept, and Platt fitting;
- patient-grouped bootstrap: intervals for one model and paired intervals for differences between two.

export_onnx needs `onnxmltools`, `onnx` and `xgboost` at run time (in-app retraining); recalibrate_onnx needs
`onnx` only; numpy and pandas otherwise. No pickle anywhere.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import numpy as np

from services.inference.model_cards import bootstrap_ci, group_bootstrap_indices  # noqa: F401 - shared with the pipelines
import pandas as pd

from services.inference.metrics import (ECE_BINS, _logistic_fit, _logit, brier, calibration_bins,  # noqa: F401
                                        calibration_intercept, calibration_slope, ece, logistic_fit, logit,
                                        pr_auc, roc_auc)
from services.risk.readmission import TreeArrays



# ----- patient-grouped bootstrap ------------------------------------------------------------------

def bootstrap_interval(metric: Callable[..., float], arrays: Sequence[np.ndarray], indices: list[np.ndarray],
                       alpha: float = 0.05) -> dict[str, float]:
    """Point estimate and percentile interval of metric(*arrays) over the given resamples.

    For a paired difference pass a metric of both models' predictions, e.g.
    ``lambda y, p1, p0: roc_auc(y, p1) - roc_auc(y, p0)``: each resample then draws the same patients
    for both models. Resamples where the metric is undefined (one class only) are skipped.
    """
    return bootstrap_ci(metric, arrays, (), indices=indices, alpha=alpha)


def core_metrics() -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """The threshold-free metrics a model card and the promotion gate report."""
    return {"roc_auc": roc_auc, "pr_auc": pr_auc, "brier": brier, "ece": ece,
            "calibration_slope": calibration_slope, "calibration_intercept": calibration_intercept}


# ----- export -------------------------------------------------------------------------------------

def booster_tree_arrays(booster: Any) -> TreeArrays:
    """Flatten an XGBoost booster (binary:logistic) from its JSON dump, with cover-weighted node means."""
    model = json.loads(booster.save_raw("json"))
    learner = model["learner"]
    base_score = float(str(learner["learner_model_param"]["base_score"]).strip("[]"))
    base_margin = float(np.log(base_score / (1 - base_score)))
    feats, thr, left, right, dleft, mean, roots = [], [], [], [], [], [], []
    offset = 0
    for tree in learner["gradient_booster"]["model"]["trees"]:
        lc = np.asarray(tree["left_children"], dtype=np.int64)
        rc = np.asarray(tree["right_children"], dtype=np.int64)
        cond = np.asarray(tree["split_conditions"], dtype=np.float32)
        hess = np.asarray(tree["sum_hessian"], dtype=np.float64)
        m = np.zeros(len(lc))
        for i in range(len(lc) - 1, -1, -1):  # children have larger ids than parents in XGBoost trees
            m[i] = cond[i] if lc[i] < 0 else (hess[lc[i]] * m[lc[i]] + hess[rc[i]] * m[rc[i]]) / (hess[lc[i]] + hess[rc[i]])
        leaf = lc < 0
        feats.append(np.where(leaf, -1, np.asarray(tree["split_indices"], dtype=np.int64)))
        thr.append(np.where(leaf, 0, cond).astype(np.float32))
        left.append(np.where(leaf, -1, lc + offset))
        right.append(np.where(leaf, -1, rc + offset))
        dleft.append(np.asarray(tree["default_left"], dtype=bool))
        mean.append(m)
        roots.append(offset)
        offset += len(lc)
    return TreeArrays(np.concatenate(feats).astype(np.int32), np.concatenate(thr), np.concatenate(left).astype(np.int32),
                      np.concatenate(right).astype(np.int32), np.concatenate(dleft), np.concatenate(mean),
                      np.asarray(roots, dtype=np.int32), base_margin)


def _margin_booster(booster: Any) -> Any:
    """The same trees as a squared-error booster whose prediction IS the binary:logistic margin.

    onnxmltools converts a binary:logistic booster into a TreeEnsembleClassifier with a built-in logistic
    transform (no margin output); a reg:squarederror booster becomes a plain TreeEnsembleRegressor. The
    trees are untouched; only the objective and the base score (moved from probability to log-odds, since
    the identity link applies it as is) are changed in XGBoost's own JSON model format.
    """
    import xgboost as xgb

    model = json.loads(booster.save_raw("json"))
    learner = model["learner"]
    if learner["objective"]["name"] != "binary:logistic":
        raise ValueError(f"expected a binary:logistic booster, not {learner['objective']['name']}")
    base_score = float(str(learner["learner_model_param"]["base_score"]).strip("[]"))
    learner["objective"] = {"name": "reg:squarederror", "reg_loss_param": {"scale_pos_weight": "1"}}
    learner["learner_model_param"]["base_score"] = repr(float(np.log(base_score / (1 - base_score))))
    out = xgb.Booster(model_file=bytearray(json.dumps(model).encode("utf-8")))
    out.feature_names = None  # onnxmltools wants f0, f1, ... (see shared/STACK.md)
    return out


def _with_platt(model: Any, cal_a: float, cal_b: float) -> bytes:
    """Append Platt calibration to a graph with output "margin": logit = a * margin + b, probability = sigmoid."""
    import onnx
    from onnx import TensorProto, helper

    graph = model.graph
    for name in ("cal_a", "cal_b", "probability"):
        if any(name in (i.name for i in seq) for seq in (graph.initializer, graph.output)):
            raise ValueError(f"the margin graph already has {name!r}")
    graph.initializer.extend([helper.make_tensor("cal_a", TensorProto.FLOAT, [], [cal_a]),
                              helper.make_tensor("cal_b", TensorProto.FLOAT, [], [cal_b])])
    graph.node.extend([helper.make_node("Mul", ["margin", "cal_a"], ["scaled"], name="platt_scale"),
                       helper.make_node("Add", ["scaled", "cal_b"], ["logit"], name="platt_shift"),
                       helper.make_node("Sigmoid", ["logit"], ["probability"], name="sigmoid")])
    margin_out = [o for o in graph.output if o.name == "margin"][0]
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 1]), margin_out])
    if not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("", 15))
    model.producer_name = "wardlens-training (onnxmltools)"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def export_onnx(booster: Any, n_features: int, cal_a: float, cal_b: float) -> bytes:
    """ONNX graph: the booster's margin (converted by onnxmltools) -> Platt (a * margin + b) -> sigmoid.

    Inputs: "input" float32 [N, n_features]; outputs "probability" [N, 1] and "margin" [N, 1] (the raw
    tree log-odds, what booster.predict(..., output_margin=True) returns). Needs onnxmltools at run time.
    """
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = convert_xgboost(_margin_booster(booster), initial_types=[("input", FloatTensorType([None, n_features]))],
                            target_opset=15)
    graph = model.graph
    (out,) = graph.output
    old = out.name
    for node in graph.node:
        node.output[:] = ["margin" if o == old else o for o in node.output]
    out.name = "margin"
    return _with_platt(model, cal_a, cal_b)


def recalibrate_onnx(onnx_bytes: bytes, cal_a: float, cal_b: float) -> bytes:
    """The same exported model with new Platt constants (the initializers cal_a and cal_b); trees untouched."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    found = set()
    for init in model.graph.initializer:
        if init.name in ("cal_a", "cal_b"):
            init.CopyFrom(numpy_helper.from_array(np.array(cal_a if init.name == "cal_a" else cal_b, dtype=np.float32),
                                                  init.name))
            found.add(init.name)
    if found != {"cal_a", "cal_b"}:
        raise ValueError("the model has no Platt initializers cal_a and cal_b")
    onnx.checker.check_model(model)
    return model.SerializeToString()
