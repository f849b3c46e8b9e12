"""Out-of-distribution detection from an uncertainty score.

Convention: OOD samples are the positive class and a higher score means "more likely OOD"
(e.g. 1 - max probability, predictive entropy, mutual information).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchtool.metrics._inputs import floats


def _scores(score_in: Any, score_out: Any) -> tuple[np.ndarray, np.ndarray]:
    s_in, s_out = floats(score_in, "score_in"), floats(score_out, "score_out")
    if len(s_in) == 0 or len(s_out) == 0:
        raise ValueError(f"need in- and out-of-distribution scores; got {len(s_in)} and {len(s_out)}")
    return s_in, s_out


def ood_auroc(score_in: Any, score_out: Any) -> float:
    """Area under the ROC curve separating OOD (positive) from in-distribution samples.

    The Mann-Whitney U statistic: P(score_out > score_in) + P(tie) / 2.
    """
    from scipy.stats import rankdata  # here: importing scipy.stats takes a second

    s_in, s_out = _scores(score_in, score_out)
    ranks = rankdata(np.concatenate([s_in, s_out]), method="average")  # 1-based, ties share their mean rank
    n_in, n_out = len(s_in), len(s_out)
    return float((ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out))


def fpr_at_tpr(score_in: Any, score_out: Any, tpr: float = 0.95) -> float:
    """Fraction of in-distribution samples flagged at the strictest threshold that flags
    at least ``tpr`` of the OOD samples (score >= threshold counts as flagged)."""
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must lie in (0, 1]; got {tpr}")
    s_in, s_out = _scores(score_in, score_out)
    descending = np.sort(s_out)[::-1]
    reached = np.arange(1, len(descending) + 1) / len(descending) >= tpr
    threshold = descending[int(np.argmax(reached))]
    return float((s_in >= threshold).mean())


def fpr_at_95_tpr(score_in: Any, score_out: Any) -> float:
    """FPR at 95% TPR (Hendrycks & Gimpel 2017), OOD positive."""
    return fpr_at_tpr(score_in, score_out, 0.95)
