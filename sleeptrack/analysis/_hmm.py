"""Hidden Markov decoding of per-epoch class probabilities with learned transitions.

The staging network gives ``p(stage | evidence)`` per epoch. Divided by the class prior this is a scaled
likelihood; a Markov chain over stages (transition counts of scored nights) then decodes:

* :func:`forward_filter` — causal: the stage at epoch ``t`` uses epochs ``0..t`` only (real time);
* :func:`viterbi` — the most probable whole-night path (the final report).

Epochs without data contribute a flat likelihood: the chain carries the stage through them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["forward_filter", "scaled_log_likelihood", "transition_matrix", "viterbi"]

_F64 = npt.NDArray[np.float64]


def transition_matrix(sequences: list[npt.NDArray[np.int8]], n_states: int, pseudo: float = 1.0) -> _F64:
    """Row-stochastic transitions estimated from stage sequences (codes < 0 break the chain)."""
    counts = np.full((n_states, n_states), pseudo, dtype=np.float64)
    for seq in sequences:
        a, b = seq[:-1], seq[1:]
        ok = (a >= 0) & (b >= 0)
        np.add.at(counts, (a[ok].astype(np.intp), b[ok].astype(np.intp)), 1.0)
    out: _F64 = counts / counts.sum(axis=1, keepdims=True)
    return out


def scaled_log_likelihood(
    probs: npt.ArrayLike, prior: npt.ArrayLike, valid: npt.NDArray[np.bool_], weight: float = 1.0
) -> _F64:
    """``weight · log(p(s | x) / p(s))`` per epoch; zero (flat) where ``valid`` is False."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-6, 1.0)
    ll = weight * (np.log(p) - np.log(np.asarray(prior, dtype=np.float64)))
    ll[~valid] = 0.0
    out: _F64 = ll
    return out


def viterbi(log_lik: _F64, log_trans: _F64, log_init: _F64) -> npt.NDArray[np.int8]:
    """Most probable state path."""
    n, k = log_lik.shape
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    back = np.zeros((n, k), dtype=np.int8)
    score = log_init + log_lik[0]
    for t in range(1, n):
        cand = score[:, None] + log_trans
        back[t] = np.argmax(cand, axis=0)
        score = cand[back[t], np.arange(k)] + log_lik[t]
    path = np.zeros(n, dtype=np.int8)
    path[-1] = int(np.argmax(score))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def forward_filter(log_lik: _F64, trans: _F64, init: _F64, previous: _F64 | None = None) -> _F64:
    """Filtered posteriors ``p(s_t | x_0..x_t)``, shape ``(n, k)``; row ``t`` never sees later epochs.

    ``previous`` is the filtered posterior of the epoch before ``log_lik``'s first, to continue a night
    (``None``: the first row is the night's first epoch).
    """
    n, k = log_lik.shape
    out = np.zeros((n, k), dtype=np.float64)
    if n == 0:
        return out
    lik = np.exp(log_lik - log_lik.max(axis=1, keepdims=True))
    alpha = init * lik[0] if previous is None else (previous @ trans) * lik[0]
    alpha /= alpha.sum()
    out[0] = alpha
    for t in range(1, n):
        alpha = (alpha @ trans) * lik[t]
        alpha /= alpha.sum()
        out[t] = alpha
    return out
