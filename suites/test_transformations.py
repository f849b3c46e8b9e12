"""Do adversarial examples survive random transformations? (Athalye et al., ICML 2018,
"Synthesizing Robust Adversarial Examples".)

Examples from ``pgd`` and from ``eot`` at the same eps are passed through freshly sampled
transformations from EOT's own distribution; the suite records the fraction still
misclassified. The paper's claim: EOT's examples survive, plain PGD's mostly do not. The
accuracy of the clean inputs under the same transformations is recorded alongside, since
a transformation that alone fools the model inflates every survival rate; so is the
survival rate over only the draws under which the transformed clean input is still
classified correctly (same transformation, draw by draw), which the perturbation must earn.
"""

from __future__ import annotations

import pytest
import torch

from benchtool.claims import NOT_REPRODUCED, REPRODUCED, Claim, Outcome, inconclusive
from benchtool.claims.core import count, value, values
from benchtool.claims.stats import n_for_two_proportions, two_proportions_greater
from benchtool_suites._attack_inputs import attack_eps, attack_subset

pytestmark = pytest.mark.bt(models=["lenet"], datasets=["digits"], optional_datasets=["fashion-mnist"],
                            task="classification",
                            small=dict(optional_datasets=[]))  # small: digits only, one eps

MIN_EFFECT = 0.05  # EOT "survives better" by at least this much survival rate


def decide_eot_survives(claim: Claim, records: list) -> Outcome:
    """At some eps, EOT's survival rate (where the transformed clean input stays correct)
    exceeds PGD's: Fisher's exact test, one-sided, Bonferroni over the eps swept. The
    examples each attack fooled are the sample size (each example's draws are one cluster,
    which makes the test conservative). If at every eps the difference interval lies below
    MIN_EFFECT, it is "not reproduced"."""
    metric = "survival_rate_where_clean_survives"
    eps_list = sorted({r.params["eps"] for r in values(records, "fooled_examples")})
    tests = []
    for eps in eps_list:
        rates = [value(records, metric, attack=a, eps=eps) for a in ("eot", "pgd")]
        sizes = [value(records, "fooled_examples", attack=a, eps=eps) for a in ("eot", "pgd")]
        if None in rates or None in sizes or min(sizes) < 1:
            continue
        (s_eot, s_pgd), (m_eot, m_pgd) = rates, [int(m) for m in sizes]
        tests.append((eps, s_eot, s_pgd, m_eot, m_pgd,
                      two_proportions_greater(count(s_eot, m_eot), m_eot, count(s_pgd, m_pgd), m_pgd, claim.alpha)))
    if not tests:
        return inconclusive("no eps at which both pgd and eot fooled an example (with counts recorded)",
                            "pgd and eot at eps > 0")
    k = len(tests)
    eps, s_eot, s_pgd, m_eot, m_pgd, best = min(tests, key=lambda t: t[-1].p_value)
    adjusted = min(1.0, best.p_value * k)
    evidence = (f"eps {eps:g}: survival eot {s_eot:.3f} (n={m_eot}) vs pgd {s_pgd:.3f} (n={m_pgd}), "
                f"difference {best.value:+.3f} {best.interval()}, p={adjusted:.2g} (x{k} eps)")
    if adjusted < claim.alpha:
        return Outcome(REPRODUCED, evidence, adjusted)
    if all(t[-1].high < MIN_EFFECT for t in tests):
        return Outcome(NOT_REPRODUCED, evidence, adjusted)
    target = max(best.value, MIN_EFFECT)
    needed = n_for_two_proportions(min(1.0, s_pgd + target), s_pgd, claim.alpha / k)
    return inconclusive(evidence, f"about {needed} fooled examples per attack")


CLAIMS = [
    Claim(
        id="athalye2018-eot-survives",
        paper="Athalye, Engstrom, Ilyas & Kwok, ICML 2018 (Synthesizing Robust Adversarial Examples)",
        statement="Adversarial examples made with EOT survive random transformations more often than PGD's.",
        suite="transformations",
        metrics=("survival_rate_where_clean_survives", "fooled_examples"),
        test="Fisher's exact test, one-sided, Bonferroni over eps; Newcombe interval",
        rule=decide_eot_survives, figure="survival_rate_vs_eps",
    ),
]

SURVIVAL_SEED_OFFSET = 7919  # the evaluation's transformations are not the ones EOT optimized over


def wrong_under(model, x, y, transformations, draws: int, seed: int, bounds) -> torch.Tensor:
    """``[draws, n]``: whether each example is misclassified under each random transformation.
    The same ``seed`` and batch shape give the same transformations, so clean and
    adversarial inputs can be compared draw by draw."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    with torch.no_grad():
        return torch.stack([model(transformations(x, generator, bounds)).argmax(1) != y for _ in range(draws)])


def test_survival_under_transformations(model, dataset, bt_config, bt_host, bt_record):
    registry = bt_host.registry
    missing = {"pgd", "eot"} - set(registry.names("attacks"))
    if missing:
        pytest.skip(f"attack(s) {sorted(missing)} not loaded")
    eot = registry.create("attacks", "eot").at_budget(bt_config.budget)
    pgd = registry.create("attacks", "pgd").at_budget(bt_config.budget)
    transformations = eot.transformations
    bounds = dataset.info.bounds
    x, y = attack_subset(dataset.test, bt_config)
    draws = bt_config.pick(small=10, default=30, full=100)
    seed = bt_config.seed + SURVIVAL_SEED_OFFSET
    with torch.no_grad():
        clean_correct = model(x).argmax(1) == y
    clean_right = ~wrong_under(model, x, y, transformations, draws, seed, bounds)
    # per example its share of draws classified right; the interval counts each example as one trial
    bt_record.proportion("transformed_clean_accuracy", clean_right.float().mean(0).sum().item(), len(y),
                         kind="attacks", plugin="eot")
    eps_list = [e for e in attack_eps(bt_config, dataset.info, "linf") if e > 0]
    for attack in (pgd, eot):
        survival = []
        outcomes = attack.sweep(model, x, y, eps_list, bounds=bounds, seed=bt_config.seed) if eps_list else []
        for eps, outcome in zip(eps_list, outcomes):
            x_adv = outcome.x_adv
            with torch.no_grad():
                fooled = clean_correct & (model(x_adv).argmax(1) != y)
            still = wrong_under(model, x_adv, y, transformations, draws, seed, bounds)[:, fooled]
            # draws where the transformation alone does not fool the model: the perturbation must
            paired = clean_right[:, fooled]
            rate = still.float().mean().item() if fooled.any() else 0.0
            attributable = (still & paired).sum().item() / max(int(paired.sum()), 1)
            survival.append(attributable)
            context = {"kind": "attacks", "plugin": attack.name}
            params = {"attack": attack.name, "eps": eps}
            n_fooled = int(fooled.sum())
            bt_record.proportion("attack_success_rate", n_fooled, int(clean_correct.sum()), params=params, **context)
            # rates over draws x fooled examples; their intervals count each fooled example as one trial
            bt_record.proportion("survival_rate", rate * n_fooled, n_fooled, params=params, **context)
            bt_record.proportion("survival_rate_where_clean_survives", attributable * n_fooled, n_fooled,
                                 params=params, **context)
            bt_record("fooled_examples", int(fooled.sum()), unit="examples", params=params, **context)
        bt_record.series("survival_rate_vs_eps", eps_list, survival, x_label="eps (linf)",
                         y_label="fraction still adversarial where the clean input is still correct",
                         kind="attacks", plugin=attack.name)
