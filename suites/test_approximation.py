"""Universal approximation (Hornik, Stinchcombe & White 1989): how close does a network with
one hidden layer of 1, 2, 4, ..., 512 tanh units come to each registered target function?

Per width: the max and RMS absolute error on a dense grid inside the training box (2001
points in 1-D, 101 x 101 in 2-D) and on the band outside it (the box widened by half its
side on each end, same spacing), plus the training RMSE. Per target: the smallest width
whose max error inside is within 5% of the target's range. Curves: each error against
width, and every width's training loss. The claims: inside, the error falls as the width
grows; the width needed can be large; outside the data the fit does not follow the target.
"""

from __future__ import annotations

from typing import Any

from scipy import stats

from benchtool.claims import NOT_REPRODUCED, REPRODUCED, Claim, Outcome, inconclusive
from benchtool.claims.core import values
from benchtool.contracts.limits import TargetFunction
from benchtool.harness.limits.approximation import TOLERANCE, WIDTHS, approximation_recipe, fit_widths

ERRORS = ("inside_max_error", "inside_rms_error", "outside_max_error", "outside_rms_error")


def decide_inside_not_outside(claim: Claim, records: list) -> Outcome:
    """Inside: the max error falls with the width (one-sided Spearman rank test) down to
    TOLERANCE of the target's range. Outside: at every width that fits inside, the max error
    on the band around the box stays above the same tolerance. The errors are evaluated on
    dense grids, so the only sampling question is the trend."""
    inside = {r.params["width"]: r.value for r in values(records, "inside_max_error") if "width" in r.params}
    outside = {r.params["width"]: r.value for r in values(records, "outside_max_error") if "width" in r.params}
    ranges = [r.params.get("range") for r in values(records, "width_needed")]
    widths = sorted(inside.keys() & outside.keys())
    if len(widths) < 3 or not ranges:
        return inconclusive(f"{len(widths)} width(s) recorded", "errors at 3 or more widths and the target's range")
    tolerance = TOLERANCE * float(ranges[0])
    trend = stats.spearmanr(widths, [inside[w] for w in widths], alternative="less")
    fitting = [w for w in widths if inside[w] <= tolerance]
    best = min(widths, key=lambda w: inside[w])
    evidence = (f"inside max error {inside[widths[0]]:.3g} (w={widths[0]}) -> {inside[best]:.3g} (w={best}), "
                f"Spearman rho {trend.statistic:.2f} p={trend.pvalue:.2g}; tolerance {tolerance:.3g}")
    if not fitting:
        if trend.pvalue < claim.alpha:
            return inconclusive(evidence, "wider nets or more training steps (budget default) to reach the tolerance")
        return Outcome(NOT_REPRODUCED, f"{evidence}; the error does not fall with width", float(trend.pvalue))
    outside_errors = [outside[w] for w in fitting]
    evidence += f"; outside max error {min(outside_errors):.3g}..{max(outside_errors):.3g} where inside fits"
    if min(outside_errors) <= tolerance:
        return Outcome(NOT_REPRODUCED, f"{evidence} (it also fits outside)", float(trend.pvalue))
    if trend.pvalue < claim.alpha:
        return Outcome(REPRODUCED, evidence, float(trend.pvalue))
    return inconclusive(evidence, "more widths (the trend test has too few points)")


CLAIMS = [
    Claim(
        id="hornik1989-inside-not-outside",
        paper="Hornik, Stinchcombe & White, Neural Networks 1989",
        statement="One hidden layer approximates a continuous function inside the data as the width grows, "
                  "but not outside it.",
        suite="approximation",
        metrics=("inside_max_error", "outside_max_error", "width_needed"),
        test=f"one-sided Spearman trend of error vs width; max error vs {TOLERANCE:.0%} of the range",
        rule=decide_inside_not_outside, subject=lambda r: r.plugin, figure="inside_max_error",
    ),
]


def test_error_vs_width(target_function: TargetFunction, bt_config: Any, bt_record: Any) -> None:
    recipe = approximation_recipe(bt_config.budget)
    result = fit_widths(target_function, recipe, seed=bt_config.seed, device=bt_config.device)
    assert [fit.width for fit in result.fits] == list(WIDTHS)

    for fit in result.fits:
        params = {"width": fit.width}
        values = (fit.inside_max, fit.inside_rms, fit.outside_max, fit.outside_rms)
        for metric, value in zip(ERRORS, values):
            bt_record(metric, value, params=params)
        bt_record("train_rmse", fit.train_rmse, params=params)
    for metric, attribute in zip(ERRORS, ("inside_max", "inside_rms", "outside_max", "outside_rms")):
        bt_record.series(metric, WIDTHS, [getattr(fit, attribute) for fit in result.fits],
                         x_label="hidden units", y_label=metric.replace("_", " "))
    for width, curve in result.loss_curves.items():
        bt_record.series("train_mse_curve", result.loss_steps, curve, x_label="Adam step", y_label="training MSE",
                         params={"width": width})
    bt_record("width_needed", result.width_needed(), unit="hidden units",
              params={"tolerance": f"{TOLERANCE:.0%} of range", "range": round(result.target_range, 6)})
    bt_record("seconds", result.seconds, unit="s", params={"steps": recipe.steps})
