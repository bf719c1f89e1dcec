"""A small multilayer perceptron evaluated with numpy: standardise, ReLU hidden layers, softmax output.

Models are trained with scikit-learn (``sleeptrack train``) and stored as plain arrays in the model
artifact (``.npz``), so running them needs numpy only and no pickle is ever loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MLP"]

_F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class MLP:
    """``softmax(W_n · relu(… relu(W_1 · (x − mean) / scale + b_1) …) + b_n)``.

    A single output unit means a binary model; :meth:`predict_proba` then returns two columns.
    """

    mean: _F32
    scale: _F32
    weights: tuple[_F32, ...]
    biases: tuple[_F32, ...]

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.biases) or not self.weights:
            raise ValueError("an MLP needs as many bias vectors as weight matrices, and at least one")
        if self.weights[0].shape[0] != self.mean.size or self.mean.size != self.scale.size:
            raise ValueError("input standardisation does not match the first layer")

    @property
    def n_inputs(self) -> int:
        return int(self.mean.size)

    @property
    def n_classes(self) -> int:
        out = int(self.weights[-1].shape[1])
        return 2 if out == 1 else out

    def logits(self, X: npt.ArrayLike) -> _F32:
        h = (np.asarray(X, dtype=np.float32) - self.mean) / self.scale
        h = np.nan_to_num(h, nan=0.0, posinf=0.0, neginf=0.0)
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = np.maximum(h @ w + b, 0.0)
        out: _F32 = h @ self.weights[-1] + self.biases[-1]
        return out

    def predict_proba(self, X: npt.ArrayLike) -> _F32:
        z = self.logits(X)
        if z.shape[1] == 1:
            p1 = 1.0 / (1.0 + np.exp(-np.clip(z[:, 0], -60, 60)))
            return np.stack([1.0 - p1, p1], axis=1).astype(np.float32)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        probs: _F32 = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return probs

    # -------------------------------------------------------------------------------- persistence
    def to_arrays(self, prefix: str) -> dict[str, _F32]:
        arrays = {f"{prefix}.mean": self.mean, f"{prefix}.scale": self.scale}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"{prefix}.w{i}"] = w
            arrays[f"{prefix}.b{i}"] = b
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], prefix: str) -> MLP:
        weights, biases = [], []
        i = 0
        while f"{prefix}.w{i}" in arrays:
            weights.append(np.asarray(arrays[f"{prefix}.w{i}"], dtype=np.float32))
            biases.append(np.asarray(arrays[f"{prefix}.b{i}"], dtype=np.float32))
            i += 1
        if not weights:
            raise ValueError(f"the model file has no network named {prefix!r}")
        return cls(
            np.asarray(arrays[f"{prefix}.mean"], dtype=np.float32),
            np.asarray(arrays[f"{prefix}.scale"], dtype=np.float32),
            tuple(weights),
            tuple(biases),
        )

    @classmethod
    def from_sklearn(cls, model: Any, mean: npt.ArrayLike, scale: npt.ArrayLike) -> MLP:
        """From a fitted ``sklearn.neural_network.MLPClassifier`` (ReLU) and the input standardisation."""
        if getattr(model, "activation", "relu") != "relu":
            raise ValueError("only ReLU networks are supported")
        weights = tuple(np.asarray(w, dtype=np.float32) for w in model.coefs_)
        biases = tuple(np.asarray(b, dtype=np.float32) for b in model.intercepts_)
        safe_scale = np.where(np.asarray(scale) > 1e-8, scale, 1.0)
        return cls(np.asarray(mean, np.float32), np.asarray(safe_scale, np.float32), weights, biases)
