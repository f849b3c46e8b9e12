"""The report opens with the Claims table (each row linking to its figure) and a table of
contents; figures: one per norm, no duplicate of a recorded curve, no flat sweeps."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from benchtool.claims import INCONCLUSIVE, REPRODUCED, Verdict, verdict_cases
from benchtool.report.chromium import check_rendering, find_chromium, screenshot
from benchtool.report.figures import render_figures
from benchtool.report.html import render_report
from benchtool.results import CaseResult, Record
from benchtool.store.load import ResultSet


def _rec(metric: str, value=None, *, plugin="fgsm", x=None, y=None, x_label="", unit="", **params) -> Record:
    series = None if x is None else {"x": x, "y": y, "x_label": x_label, "y_label": "robust accuracy"}
    return Record("robustness", f"test_robust_accuracy[{plugin}-lenet-digits]", "attacks", plugin, "lenet", "digits",
                  params, metric, value, unit, 0, "cpu", series)


def robustness_cases() -> list[CaseResult]:
    eps = [0.0, 0.1, 0.2]
    cases = []
    for plugin, norm, scale in (("fgsm", "linf", 1.0), ("pgd-l2", "l2", 10.0)):
        robust = [0.98, 0.5, 0.1]
        records = [_rec("robust_accuracy_vs_eps", plugin=plugin, x=[e * scale for e in eps], y=robust,
                        x_label=f"eps ({norm})")]
        for e, r in zip(eps, robust):
            records += [_rec("robust_accuracy", r, plugin=plugin, eps=e * scale),
                        _rec("clean_accuracy", 0.98, plugin=plugin, eps=e * scale),
                        _rec("examples", 128, plugin=plugin, unit="examples", eps=e * scale)]
        cases.append(CaseResult(f"suites/test_robustness.py::test_robust_accuracy[{plugin}-lenet-digits]",
                                "robustness", "passed", 1.0, records))
    return cases


VERDICTS = [
    Verdict("goodfellow2015-fgsm-fools", "robustness", "digits", REPRODUCED,
            "eps 0.2: fgsm fools 0.896 [0.829, 0.943] of 125 correct vs 0.5", model="lenet",
            test="exact binomial", figure="robust_accuracy_vs_eps"),
    Verdict("goodfellow2015-adversarial-training", "robustness", "digits", INCONCLUSIVE,
            "no adversarially trained model (lenet-at) in this run", needed="the zoo's lenet-at model",
            figure="robust_accuracy_vs_eps"),
]


def report_html() -> str:
    cases = robustness_cases() + verdict_cases(VERDICTS)
    return render_report(ResultSet("run-1", [r for c in cases for r in c.records], None, cases))


def test_figures_one_per_norm_no_duplicates_no_flat_lines() -> None:
    titles = [f.title for f in render_figures([("run", [r for c in robustness_cases() for r in c.records])])]
    assert sorted(titles) == ["robustness: robust_accuracy_vs_eps (eps (l2))",
                              "robustness: robust_accuracy_vs_eps (eps (linf))"]


def test_report_opens_with_claims_and_contents() -> None:
    page = report_html()
    main = page[page.index("<main>"):]
    assert main.index('id="claims"') < main.index('class="toc"') < main.index('id="suite-robustness"')
    claims = main[main.index('id="claims"'):main.index('class="toc"')]
    assert "1 reproduced, 0 not reproduced, 1 inconclusive" in claims
    assert 'class="verdict-reproduced">reproduced' in claims and "digits (lenet)" in claims
    assert "needs the zoo&#x27;s lenet-at model" in claims
    target = re.search(r'<a href="#([^"]+)" title="exact binomial; alpha 0.05">goodfellow2015-fgsm-fools', claims)
    assert target and f'id="{target.group(1)}"' in page  # the row links to its figure
    assert 'href="#suite-robustness-leaderboard"' in main and 'id="suite-robustness-leaderboard"' in main
    assert "claim[" not in main[main.index('id="suite-robustness"'):]  # verdicts are not leaderboard rows


@pytest.mark.skipif(find_chromium() is None, reason="Chromium not installed (apt-get install -y chromium)")
def test_claims_section_in_chromium(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text(report_html())
    check = check_rendering(report)
    assert check.ok and check.images == check.decoded == 2
    shots = Path(os.environ.get("BENCHTOOL_SCREENSHOT_DIR", tmp_path))
    png = screenshot(report, shots / "report-claims.png", height=900)  # the first screen: claims and contents
    assert png.stat().st_size > 5_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
