"""Gradient-boosted trees evaluated with numpy (exported from scikit-learn's HistGradientBoostingClassifier).

All trees are stored as flat node arrays and walked together, one level per step, so a night of ~1000
epochs through ~1000 trees takes a fraction of a second and needs neither scikit-learn nor pickle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["TreeEnsemble"]

_F32 = npt.NDArray[np.float32]
_F64 = npt.NDArray[np.float64]
_I32 = npt.NDArray[np.int32]


@dataclass(frozen=True)
class TreeEnsemble:
    """``softmax(baseline + Σ_trees leaf_value)`` with one tree per class and boosting iteration.

    Arrays (all trees' nodes concatenated): ``feature``, ``threshold`` (go left when ``x <= threshold``),
    ``missing_left`` (where NaN goes), ``left`` / ``right`` (global node indices), ``is_leaf``, ``value``;
    ``roots[t]`` is the root node of tree ``t`` and ``tree_class[t]`` the class it adds to.
    """

    feature: _I32
    threshold: _F64
    missing_left: npt.NDArray[np.bool_]
    left: _I32
    right: _I32
    is_leaf: npt.NDArray[np.bool_]
    value: _F64
    roots: _I32
    tree_class: _I32
    baseline: _F64
    depth: int
    n_features: int

    @property
    def n_classes(self) -> int:
        return int(self.baseline.size) if self.baseline.size > 1 else 2

    def raw(self, X: npt.ArrayLike) -> _F64:
        """Raw scores (log-odds), shape ``(n, n_outputs)``."""
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got shape {x.shape}")
        n = x.shape[0]
        node = np.broadcast_to(self.roots, (n, self.roots.size)).copy()
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            leaf = self.is_leaf[node]
            if leaf.all():
                break
            values = x[rows, self.feature[node]]
            go_left = values <= self.threshold[node]
            go_left |= np.isnan(values) & self.missing_left[node]
            step = np.where(go_left, self.left[node], self.right[node])
            node = np.where(leaf, node, step)
        leaves = self.value[node]  # (n, n_trees)
        scores = np.zeros((n, self.baseline.size), dtype=np.float64)
        for k in range(self.baseline.size):
            scores[:, k] = leaves[:, self.tree_class == k].sum(axis=1)
        out: _F64 = scores + self.baseline
        return out

    def predict_proba(self, X: npt.ArrayLike) -> _F32:
        z = self.raw(X)
        if z.shape[1] == 1:
            p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1.0 - p1, p1], axis=1).astype(np.float32)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        probs: _F32 = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return probs

    # ------------------------------------------------------------------------------ persistence
    _FIELDS = (
        "feature",
        "threshold",
        "missing_left",
        "left",
        "right",
        "is_leaf",
        "value",
        "roots",
        "tree_class",
        "baseline",
    )

    def to_arrays(self, prefix: str) -> dict[str, npt.NDArray[Any]]:
        arrays: dict[str, npt.NDArray[Any]] = {f"{prefix}.{name}": getattr(self, name) for name in self._FIELDS}
        arrays[f"{prefix}.shape"] = np.array([self.depth, self.n_features], dtype=np.int64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], prefix: str) -> TreeEnsemble:
        if f"{prefix}.shape" not in arrays:
            raise ValueError(f"the model file has no tree ensemble named {prefix!r}")
        depth, n_features = (int(v) for v in np.asarray(arrays[f"{prefix}.shape"]))

        def get(name: str) -> npt.NDArray[Any]:
            return np.asarray(arrays[f"{prefix}.{name}"])

        return cls(
            feature=get("feature").astype(np.int32),
            threshold=get("threshold").astype(np.float64),
            missing_left=get("missing_left").astype(bool),
            left=get("left").astype(np.int32),
            right=get("right").astype(np.int32),
            is_leaf=get("is_leaf").astype(bool),
            value=get("value").astype(np.float64),
            roots=get("roots").astype(np.int32),
            tree_class=get("tree_class").astype(np.int32),
            baseline=get("baseline").astype(np.float64),
            depth=depth,
            n_features=n_features,
        )

    @classmethod
    def from_sklearn(cls, model: Any) -> TreeEnsemble:
        """From a fitted ``HistGradientBoostingClassifier`` without categorical features."""
        predictors = getattr(model, "_predictors", None)
        if predictors is None:
            raise ValueError("not a fitted HistGradientBoostingClassifier")
        parts: dict[str, list[npt.NDArray[Any]]] = {
            k: [] for k in ("feature", "threshold", "missing_left", "left", "right", "is_leaf", "value")
        }
        roots, tree_class = [], []
        offset = 0
        depth = 0
        for iteration in predictors:
            for k, predictor in enumerate(iteration):
                nodes = predictor.nodes
                if np.any(nodes["is_categorical"]):
                    raise ValueError("categorical splits are not supported")
                parts["feature"].append(nodes["feature_idx"].astype(np.int32))
                parts["threshold"].append(nodes["num_threshold"].astype(np.float64))
                parts["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
                parts["left"].append(nodes["left"].astype(np.int32) + offset)
                parts["right"].append(nodes["right"].astype(np.int32) + offset)
                parts["is_leaf"].append(nodes["is_leaf"].astype(bool))
                parts["value"].append(nodes["value"].astype(np.float64))
                roots.append(offset)
                tree_class.append(k)
                depth = max(depth, int(nodes["depth"].max()) + 1)
                offset += nodes.size
        baseline = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
        return cls(
            **{k: np.concatenate(v) for k, v in parts.items()},
            roots=np.asarray(roots, dtype=np.int32),
            tree_class=np.asarray(tree_class, dtype=np.int32),
            baseline=baseline,
            depth=depth,
            n_features=int(model.n_features_in_),
        )
