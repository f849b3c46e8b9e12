"""The LSTM controller of Zoph & Le (ICLR 2017) as numba kernels over flat NumPy arrays.

At step t a stacked LSTM reads the embedding of the previous decision's choice (a
learned start vector at t = 0) and a softmax head per decision gives the next choice's
probabilities. ``forward_backward`` replays a told architecture with teacher forcing and
accumulates the gradient of ``-(advantage * sum log p + entropy_weight * sum H)``.
A controller step is a few hundred multiply-adds: plain loops compiled by numba keep
ask + tell far below a millisecond, where PyTorch's per-op overhead would cost several.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit


@dataclass
class ControllerParams:
    """Every weight as a view into one flat vector (so Adam updates them in one pass)."""

    flat: np.ndarray
    W: np.ndarray  # (layers, 4H, 2H): gates i, f, g, o from [input; h_prev]
    b: np.ndarray  # (layers, 4H)
    A: np.ndarray  # (choices_total, H): softmax heads, decision d owns rows offsets[d]:offsets[d]+n[d]
    a: np.ndarray  # (choices_total,)
    E: np.ndarray  # (choices_total, H): embedding of each decision's choices
    g: np.ndarray  # (H,): the start input

    @classmethod
    def zeros(cls, layers: int, hidden: int, choices_total: int) -> ControllerParams:
        shapes = [(layers, 4 * hidden, 2 * hidden), (layers, 4 * hidden), (choices_total, hidden),
                  (choices_total,), (choices_total, hidden), (hidden,)]
        sizes = [int(np.prod(s)) for s in shapes]
        flat = np.zeros(sum(sizes))
        views, start = [], 0
        for shape, size in zip(shapes, sizes):
            views.append(flat[start:start + size].reshape(shape))
            start += size
        return cls(flat, *views)


@njit(cache=True, fastmath=True)
def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))


@njit(cache=True, fastmath=True)
def lstm_step(W, b, x, h, c, gates):  # noqa: ANN001, ANN201 - numba kernel
    """One step of the stacked LSTM in place: ``h``/``c`` (layers, H) from the previous
    step become this step's; ``gates`` (layers, 4H) receives the activated gates."""
    layers, hidden = h.shape
    inp = x.copy()
    for layer in range(layers):
        for j in range(4 * hidden):
            z = b[layer, j]
            for k in range(hidden):
                z += W[layer, j, k] * inp[k] + W[layer, j, hidden + k] * h[layer, k]
            gates[layer, j] = np.tanh(z) if hidden * 2 <= j < hidden * 3 else _sigmoid(z)
        for k in range(hidden):
            i, f = gates[layer, k], gates[layer, hidden + k]
            gg, o = gates[layer, 2 * hidden + k], gates[layer, 3 * hidden + k]
            c[layer, k] = f * c[layer, k] + i * gg
            h[layer, k] = o * np.tanh(c[layer, k])
        inp[:] = h[layer]


@njit(cache=True, fastmath=True)
def head_probs(A, a, h_top, offset, n, probs):  # noqa: ANN001, ANN201 - numba kernel
    """Softmax over one decision's choices into ``probs[:n]``."""
    peak = -np.inf
    for r in range(n):
        z = a[offset + r]
        for k in range(h_top.shape[0]):
            z += A[offset + r, k] * h_top[k]
        probs[r] = z
        peak = max(peak, z)
    total = 0.0
    for r in range(n):
        probs[r] = np.exp(probs[r] - peak)
        total += probs[r]
    for r in range(n):
        probs[r] /= total


@njit(cache=True, fastmath=True)
def forward_backward(W, b, A, a, E, g, gW, gb, gA, ga, gE, gg,  # noqa: ANN001, ANN201, PLR0913 - numba kernel
                     decisions, choices, offsets, counts, advantage, entropy_weight):
    """Teacher-forced forward over a told walk, then backpropagation through time.

    Accumulates into the ``g*`` arrays the gradient of the loss
    ``-(advantage * sum_t log p_t(choice_t) + entropy_weight * sum_t H(p_t))``;
    returns ``(sum log p, sum H)``."""
    steps = decisions.shape[0]
    layers, four_h = b.shape
    hidden = four_h // 4
    max_n = counts.max()
    xs = np.zeros((steps, hidden))  # the bottom layer's input (upper layers read hs)
    hs = np.zeros((steps + 1, layers, hidden))  # hs[t + 1] = state after step t
    cs = np.zeros((steps + 1, layers, hidden))
    gates = np.zeros((steps, layers, four_h))
    probs = np.zeros((steps, max_n))
    log_p, entropy = 0.0, 0.0
    h = np.zeros((layers, hidden))
    c = np.zeros((layers, hidden))
    for t in range(steps):
        xs[t] = g if t == 0 else E[offsets[decisions[t - 1]] + choices[t - 1]]
        lstm_step(W, b, xs[t], h, c, gates[t])
        hs[t + 1] = h
        cs[t + 1] = c
        d = decisions[t]
        head_probs(A, a, h[layers - 1], offsets[d], counts[d], probs[t])
        log_p += np.log(probs[t, choices[t]])
        for r in range(counts[d]):
            if probs[t, r] > 0:
                entropy -= probs[t, r] * np.log(probs[t, r])

    dh_next = np.zeros((layers, hidden))
    dc_next = np.zeros((layers, hidden))
    du = np.zeros(max_n)
    for t in range(steps - 1, -1, -1):
        d = decisions[t]
        n = counts[d]
        off = offsets[d]
        h_ent = 0.0
        for r in range(n):
            if probs[t, r] > 0:
                h_ent -= probs[t, r] * np.log(probs[t, r])
        for r in range(n):
            p = probs[t, r]
            onehot = 1.0 if r == choices[t] else 0.0
            log_term = np.log(p) if p > 0 else 0.0
            du[r] = -advantage * (onehot - p) + entropy_weight * p * (log_term + h_ent)
        dh = dh_next.copy()
        top = hs[t + 1, layers - 1]
        for r in range(n):
            ga[off + r] += du[r]
            for k in range(hidden):
                gA[off + r, k] += du[r] * top[k]
                dh[layers - 1, k] += A[off + r, k] * du[r]
        dx_below = np.zeros(hidden)
        for layer in range(layers - 1, -1, -1):
            dh_layer = dh[layer].copy()
            if layer < layers - 1:
                dh_layer += dx_below
            dz = np.zeros(four_h)
            for k in range(hidden):
                i, f = gates[t, layer, k], gates[t, layer, hidden + k]
                gg_, o = gates[t, layer, 2 * hidden + k], gates[t, layer, 3 * hidden + k]
                tc = np.tanh(cs[t + 1, layer, k])
                dc = dc_next[layer, k] + dh_layer[k] * o * (1.0 - tc * tc)
                dz[k] = dc * gg_ * i * (1.0 - i)
                dz[hidden + k] = dc * cs[t, layer, k] * f * (1.0 - f)
                dz[2 * hidden + k] = dc * i * (1.0 - gg_ * gg_)
                dz[3 * hidden + k] = dh_layer[k] * tc * o * (1.0 - o)
                dc_next[layer, k] = dc * f
            inp = xs[t] if layer == 0 else hs[t + 1, layer - 1]
            prev = hs[t, layer]
            dx = np.zeros(hidden)
            dh_prev = np.zeros(hidden)
            for j in range(four_h):
                gb[layer, j] += dz[j]
                for k in range(hidden):
                    gW[layer, j, k] += dz[j] * inp[k]
                    gW[layer, j, hidden + k] += dz[j] * prev[k]
                    dx[k] += W[layer, j, k] * dz[j]
                    dh_prev[k] += W[layer, j, hidden + k] * dz[j]
            dh_next[layer] = dh_prev
            dx_below = dx
        if t == 0:
            gg += dx_below
        else:
            row = offsets[decisions[t - 1]] + choices[t - 1]
            gE[row] += dx_below
    return log_p, entropy


@njit(cache=True, fastmath=True)
def adam_update(flat, grad, m, v, step, lr, beta1, beta2, eps):  # noqa: ANN001, ANN201, PLR0913 - numba kernel
    """One Adam step (Kingma & Ba 2015) minimising the loss whose gradient is ``grad``."""
    correction1 = 1.0 - beta1**step
    correction2 = 1.0 - beta2**step
    for i in range(flat.shape[0]):
        m[i] = beta1 * m[i] + (1.0 - beta1) * grad[i]
        v[i] = beta2 * v[i] + (1.0 - beta2) * grad[i] * grad[i]
        flat[i] -= lr * (m[i] / correction1) / (np.sqrt(v[i] / correction2) + eps)
