"""A plugin that catalogues the metric its suite records (``benchtool_register_metrics``):
``zoo_margin``, lower is better, so ``compare`` gates it without a ``--direction``."""

from __future__ import annotations

from benchtool import hookimpl
from benchtool.metrics.catalog import MetricCatalog, MetricSpec, Tolerance

ZOO_MARGIN = MetricSpec("zoo_margin", "lower", "px", tolerance=Tolerance(0.1),
                        description="the zoo suite's margin (lower is better)")


@hookimpl
def benchtool_register_metrics(catalog: MetricCatalog) -> None:
    catalog.register(ZOO_MARGIN)
