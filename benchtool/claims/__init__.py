"""Claims from the papers the suites reproduce, decided from a run's records.

See :mod:`benchtool.claims.core` (Claim, Verdict, the record encoding),
:mod:`benchtool.claims.stats` (the tests) and :mod:`benchtool.claims.bridge` (the pytest plugin).
"""

from __future__ import annotations

from benchtool.claims.core import (
    CLAIM_METRIC, INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, VERDICTS, Claim, ClaimSet, Outcome, Verdict,
    VerdictChange, compare_verdicts, inconclusive, is_verdict, verdict_cases, verdicts_from_records,
)

__all__ = [
    "CLAIM_METRIC", "INCONCLUSIVE", "NOT_REPRODUCED", "REPRODUCED", "VERDICTS", "Claim", "ClaimSet", "Outcome",
    "Verdict", "VerdictChange", "compare_verdicts", "inconclusive", "is_verdict", "verdict_cases",
    "verdicts_from_records",
]
