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

from benchtool.contracts.limits import TargetFunction
from benchtool.limits.approximation import TOLERANCE, WIDTHS, approximation_recipe, fit_widths

ERRORS = ("inside_max_error", "inside_rms_error", "outside_max_error", "outside_rms_error")


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
