"""The robustness suite's run-level analyses: the worst case over every attack, per example,
and the automatic gradient-masking checks.

Both read the per-example outcomes each attack cell records (``robust_by_example``: x the
example's index in the test split, y 1 if it stayed correctly classified, 0 if broken; params
eps, norm and the attack's threat model) and the cost records beside them, so they work
whichever process or machine ran each cell.

**Worst case** (the protocol of AutoAttack, Croce & Hein, ICML 2020): per model, dataset,
norm and eps, an example counts as robust only if every attack of that norm failed on it.
``worst_case_robust_accuracy`` is recorded with its 95% Wilson interval, the number of
attacks combined, and per attack how many examples it broke first (attacks in order of
cost, cheapest first) and how many it alone broke.

**Gradient-masking checks** (Carlini et al. 2019, "On Evaluating Adversarial Robustness",
§5; Athalye, Carlini & Wagner, ICML 2018): each rule is a paired test at significance
:data:`ALPHA` on the same examples, recorded as ``gradient_masking`` (1 flagged, 0 passed)
per model, dataset and rule, with the evidence of its weakest point:

- ``eps-monotone``: no attack leaves more examples robust at a larger eps;
- ``large-eps``: PGD at an Linf eps of half the data range leaves no more than
  :data:`LARGE_EPS_ROBUST` robust (the suite's probe cell measures it);
- ``iterative-vs-single-step``: no single-step attack is stronger than the strongest
  iterative white-box attack of its norm;
- ``white-vs-black-box``: no gradient-free attack is stronger than the strongest white-box one;
- ``eot-vs-plain``: an attack over random transformations (EOT) is not stronger than the
  strongest plain white-box attack, as it cannot be on a deterministic, smooth model;
- ``first-order``: at no more than :data:`MASKED_SHARE` of the examples is the input
  gradient zero or useless for predicting the margin one tiny step against its sign (the
  probe cell, :func:`benchtool.harness.robustness.gradient_probe`).

An iterative white-box attack that leaves at least :data:`UNDERPOWERED_GAP` more examples
robust than the strongest peer of its norm, beyond noise, is recorded as
``attack_underpowered``: a finding about the attack's budget, not about the model.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from benchtool.claims.stats import PairedComparison, at_least_as_strong, binomial_greater, wilson_interval
from benchtool.results import Record

ALPHA = 0.01  # each check's one-sided significance
LARGE_EPS_ROBUST = 0.01  # robust accuracy allowed at an Linf eps of half the data range
MASKED_SHARE = 0.1  # share of examples with masked gradients allowed before the model is flagged
UNDERPOWERED_GAP = 0.05  # robust accuracy an attack may trail its strongest peer by, beyond noise
PER_EXAMPLE = "robust_by_example"
TRANSFORMATION_THREAT = "transformation"  # Attack.threat_model of EOT-style attacks
WORST_CASE = "worst-case"  # the plugin name of the worst-case records
WORST_CASE_METRIC = "worst_case_robust_accuracy"
WORST_CASE_METRICS = (WORST_CASE_METRIC, WORST_CASE_METRIC + "_ci_low", WORST_CASE_METRIC + "_ci_high", "examples",
                      "attacks_combined", "broken_first", "broken_only")
MASKING_METRICS = ("gradient_masking", "attack_underpowered")
MASKING_RULES = ("eps-monotone", "large-eps", "iterative-vs-single-step", "white-vs-black-box",
                 "eot-vs-plain", "first-order")


@dataclass
class Outcomes:
    """One attack's per-example outcomes at one eps on one model and dataset."""

    attack: str
    norm: str
    threat: str
    eps: float
    robust: dict[int, bool]
    gradient_queries: float = math.nan  # per example
    queries: float = math.inf  # forward + gradient, per example (inf: unknown, ordered last)
    template: Record | None = field(default=None, repr=False)

    @property
    def robust_accuracy(self) -> float:
        return sum(self.robust.values()) / max(len(self.robust), 1)

    @property
    def single_step(self) -> bool:
        return 0 < self.gradient_queries <= 1

    @property
    def black_box(self) -> bool:
        return self.gradient_queries == 0

    @property
    def plain_white_box(self) -> bool:
        return self.threat != TRANSFORMATION_THREAT and self.gradient_queries > 0


def collect_outcomes(records: Iterable[Record], suite: str = "robustness"
                     ) -> dict[tuple[str, str], list[Outcomes]]:
    """Per (model, dataset), every attack's outcomes at every eps > 0, with its costs."""
    costs: dict[tuple, dict[str, float]] = defaultdict(dict)
    per_example: list[Record] = []
    for r in records:
        if r.suite != suite or r.kind != "attacks":
            continue
        if r.metric == PER_EXAMPLE and r.series is not None:
            per_example.append(r)
        elif r.metric in ("forward_queries", "gradient_queries") and r.value is not None:
            costs[(r.case, r.params.get("eps"))][r.metric] = float(r.value)
    found: dict[tuple[str, str], list[Outcomes]] = defaultdict(list)
    for r in per_example:
        eps = float(r.params["eps"])
        if eps <= 0:
            continue
        series = r.series or {}
        robust = {int(i): bool(v) for i, v in zip(series["x"], series["y"])}
        cost = costs.get((r.case, r.params["eps"]), {})
        gradient = cost.get("gradient_queries", math.nan)  # unknown: in no attack family of the checks
        queries = cost.get("forward_queries", math.nan) + gradient
        found[(r.model, r.dataset)].append(Outcomes(
            r.plugin, str(r.params.get("norm", "")), str(r.params.get("threat", "")), eps, robust,
            gradient, math.inf if math.isnan(queries) else queries, r))
    return found


def _by_norm_and_eps(outcomes: Iterable[Outcomes]) -> list[tuple[tuple[str, float], list[Outcomes]]]:
    """The outcomes grouped by (norm, eps), in that order: the attacks a comparison pairs."""
    groups: dict[tuple[str, float], list[Outcomes]] = defaultdict(list)
    for o in outcomes:
        groups[(o.norm, o.eps)].append(o)
    return sorted(groups.items())


def _derived(template: Record, case: str, plugin: str, metric: str, value: float, unit: str = "",
             **params: object) -> Record:
    return Record(template.suite, case, "attacks", plugin, template.model, template.dataset, dict(params),
                  metric, float(value), unit, template.seed, template.device)


def worst_case(records: Sequence[Record]) -> list[Record]:
    """The worst case over attacks per model, dataset, norm and eps (see the module doc)."""
    made: list[Record] = []
    for (model, dataset), outcomes in sorted(collect_outcomes(records).items()):
        case = f"worst_case[{WORST_CASE}-{model}-{dataset}]"
        for (norm, eps), group in _by_norm_and_eps(outcomes):
            group.sort(key=lambda o: (o.queries, o.attack))  # cheapest first, as a defender would run them
            examples = sorted(set.intersection(*(set(o.robust) for o in group)))
            if not examples:
                continue
            template = group[0].template
            assert template is not None
            robust = [all(o.robust[i] for o in group) for i in examples]
            k, n = sum(robust), len(robust)
            low, high = wilson_interval(k, n)
            params = {"eps": eps, "norm": norm}
            made += [
                _derived(template, case, WORST_CASE, WORST_CASE_METRIC, k / n, "fraction", **params),
                _derived(template, case, WORST_CASE, WORST_CASE_METRIC + "_ci_low", low, "fraction", **params),
                _derived(template, case, WORST_CASE, WORST_CASE_METRIC + "_ci_high", high, "fraction",
                         **params),
                _derived(template, case, WORST_CASE, "examples", n, "examples", **params),
                _derived(template, case, WORST_CASE, "attacks_combined", len(group), "attacks", **params),
            ]
            first: dict[str, int] = defaultdict(int)
            for i in examples:
                breakers = [o.attack for o in group if not o.robust[i]]
                if breakers:
                    first[breakers[0]] += 1
            for o in group:
                alone = sum(1 for i in examples if not o.robust[i] and all(p.robust[i] for p in group if p is not o))
                attack_params = {**params, "attack": o.attack}
                made.append(_derived(template, case, WORST_CASE, "broken_first", first[o.attack], "examples",
                                     **attack_params))
                made.append(_derived(template, case, WORST_CASE, "broken_only", alone, "examples", **attack_params))
    return made


@dataclass
class Finding:
    """One rule's result on one model: flagged or not, and its weakest point in words."""

    flagged: bool
    evidence: str
    p_value: float = 1.0


def _paired(a: Outcomes, b: Outcomes) -> PairedComparison:
    """A against B on the examples both attacked."""
    common = sorted(set(a.robust) & set(b.robust))
    return at_least_as_strong([a.robust[i] for i in common], [b.robust[i] for i in common])


def _strongest(candidates: Iterable[Outcomes]) -> Outcomes | None:
    return min(candidates, key=lambda o: (o.robust_accuracy, o.queries, o.attack), default=None)


def _weakest_point(results: list[tuple[PairedComparison, str]], what: str) -> Finding:
    """Flagged when any comparison is significant; the evidence is the most significant one."""
    if not results:
        return Finding(False, f"no {what} in this run to compare")
    comparison, text = min(results, key=lambda pair: pair[0].p_value)
    flagged = comparison.weaker(ALPHA)
    prefix = "" if flagged else f"all {len(results)} comparison(s) passed; closest: "
    return Finding(flagged, prefix + text, comparison.p_value)


def _versus_strongest(outcomes: list[Outcomes], challengers, peers, what: str) -> Finding:
    """Each challenger attack against the strongest peer of its norm at the same eps: the
    rule breaks when a challenger is stronger (the peer weaker) beyond noise."""
    results = []
    for (norm, eps), group in _by_norm_and_eps(outcomes):
        best = _strongest(o for o in group if peers(o))
        for challenger in (o for o in group if challengers(o) and o is not best):
            if best is None:
                continue
            c = _paired(best, challenger)
            results.append((c, f"eps {eps:g} ({norm}): {challenger.attack} robust {challenger.robust_accuracy:.3f} "
                               f"vs strongest {best.attack} {best.robust_accuracy:.3f}; "
                               + c.describe(best.attack, challenger.attack)))
    return _weakest_point(results, what)


def _eps_monotone(outcomes: list[Outcomes]) -> Finding:
    results = []
    by_attack: dict[str, list[Outcomes]] = defaultdict(list)
    for o in outcomes:
        by_attack[o.attack].append(o)
    for attack, sweep in sorted(by_attack.items()):
        sweep.sort(key=lambda o: o.eps)
        for small, large in zip(sweep, sweep[1:]):
            c = _paired(large, small)  # flagged when the larger eps leaves more examples robust
            results.append((c, f"{attack}: robust {small.robust_accuracy:.3f} at eps {small.eps:g} -> "
                               f"{large.robust_accuracy:.3f} at eps {large.eps:g}; {c.only_a} example(s) robust "
                               f"only at the larger eps, {c.only_b} only at the smaller "
                               f"(exact McNemar p={c.p_value:.2g})"))
    return _weakest_point(results, "attack with two eps > 0")


def _probe(records: Sequence[Record], metric: str, share: float, what: str) -> Finding:
    """A probe cell's proportion (``metric`` with its ``examples``) against ``share``:
    flagged when it is above ``share`` beyond noise (exact one-sided binomial test)."""
    found = [r for r in records if r.metric == metric and r.value is not None]
    if not found:
        return Finding(False, f"not measured in this run (the probe cell records {metric})")
    record = found[0]
    n = next((int(r.value) for r in records if r.metric == "examples" and r.case == record.case
              and r.params == record.params and r.value is not None), 0)
    k = round(float(record.value) * n)  # type: ignore[arg-type]
    test = binomial_greater(k, n, share, ALPHA)
    params = ", ".join(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
                       for key, value in sorted(record.params.items()))
    evidence = (f"{what}: {k} of {n} ({test.value:.3f} {test.interval()}){' at ' + params if params else ''} "
                f"vs at most {share:g} (exact binomial p={test.p_value:.2g})")
    return Finding(test.p_value < ALPHA, evidence, test.p_value)


def masking_findings(outcomes: list[Outcomes], probes: Sequence[Record]) -> dict[str, Finding]:
    """Every gradient-masking rule's finding for one model and dataset."""
    return {
        "eps-monotone": _eps_monotone(outcomes),
        "large-eps": _probe(probes, "large_eps_robust_accuracy", LARGE_EPS_ROBUST,
                            "examples PGD left robust at half the data range"),
        "iterative-vs-single-step": _versus_strongest(
            outcomes, lambda o: o.single_step and o.threat != TRANSFORMATION_THREAT,
            lambda o: o.plain_white_box and not o.single_step, "single-step and iterative attacks"),
        "white-vs-black-box": _versus_strongest(outcomes, lambda o: o.black_box, lambda o: o.plain_white_box,
                                                "gradient-free and white-box attacks"),
        "eot-vs-plain": _versus_strongest(outcomes, lambda o: o.threat == TRANSFORMATION_THREAT,
                                          lambda o: o.plain_white_box and not o.single_step,
                                          "transformation (EOT) and plain iterative attacks"),
        "first-order": _probe(probes, "gradient_masked_share", MASKED_SHARE,
                              "examples whose input gradient is zero or mispredicts the margin a tiny step "
                              "against its sign"),
    }


def underpowered_findings(outcomes: list[Outcomes]) -> dict[str, Finding]:
    """Per iterative white-box attack: does it trail the strongest peer of its norm by at
    least UNDERPOWERED_GAP beyond noise, at some eps?"""
    by_attack: dict[str, list[tuple[PairedComparison, str]]] = defaultdict(list)
    for (norm, eps), group in _by_norm_and_eps(outcomes):
        peers = [o for o in group if o.plain_white_box and not o.single_step]
        best = _strongest(peers)
        for o in peers:
            if best is None or o is best:
                continue
            c = _paired(o, best)
            gap = o.robust_accuracy - best.robust_accuracy
            significant = PairedComparison(c.n, c.only_a, c.only_b, c.p_value if gap >= UNDERPOWERED_GAP else 1.0)
            by_attack[o.attack].append((significant, f"eps {eps:g} ({norm}): robust {o.robust_accuracy:.3f} vs "
                                                     f"{best.attack} {best.robust_accuracy:.3f}; "
                                                     + c.describe(o.attack, best.attack)))
    return {attack: _weakest_point(results, "peer") for attack, results in by_attack.items()}


def gradient_masking(records: Sequence[Record]) -> list[Record]:
    """The gradient-masking and underpowered-attack records of every model and dataset."""
    probes_by: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        if r.suite == "robustness" and r.metric in ("large_eps_robust_accuracy", "gradient_masked_share",
                                                    "examples") and r.kind == "probes":
            probes_by[(r.model, r.dataset)].append(r)
    made: list[Record] = []
    for (model, dataset), outcomes in sorted(collect_outcomes(records).items()):
        template = outcomes[0].template
        assert template is not None
        case = f"gradient_masking[{model}-{dataset}]"
        for rule, finding in masking_findings(outcomes, probes_by.get((model, dataset), [])).items():
            made.append(_flag(template, case, "gradient_masking", "", rule, finding))
        for attack, finding in sorted(underpowered_findings(outcomes).items()):
            made.append(_flag(template, case, "attack_underpowered", attack, "underpowered", finding))
    return made


def _flag(template: Record, case: str, metric: str, plugin: str, rule: str, finding: Finding) -> Record:
    params = {"rule": rule, "evidence": finding.evidence, "alpha": ALPHA, "p_value": round(finding.p_value, 6)}
    return _derived(template, case, plugin, metric, 1.0 if finding.flagged else 0.0, "flag", **params)
