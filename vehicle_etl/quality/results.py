"""What every check of the gate yields (CheckResult), and the gate's verdict on a list of them:
the log table, the first failure for alert subjects, and `enforce` (QualityGateError on a block)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from vehicle_etl.errors import QualityGateError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    observed: Any
    threshold: Any
    blocking: bool = True
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def verdict(self) -> str:
        """ok | FAIL (blocks the swap) | warn (failed, tolerated)."""
        return "ok" if self.passed else ("FAIL" if self.blocking else "warn")



def first_failure(results: list[CheckResult] | list[dict[str, Any]]) -> str | None:
    """Name of the first blocking failure (else the first warning), for alert subjects."""
    rows = [r.as_dict() if isinstance(r, CheckResult) else r for r in results]
    for want_blocking in (True, False):
        for r in rows:
            if not r.get("passed") and bool(r.get("blocking", True)) == want_blocking:
                return str(r.get("name"))
    return None


def format_table(results: list[CheckResult]) -> str:
    """A compact fixed-width table for task logs."""
    width = max((len(r.name) for r in results), default=10)
    lines = [f"{'check':<{width}}  result  observed      threshold"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {r.verdict:<6}  {r.observed!s:<12}  {r.threshold!s}")
    return "\n".join(lines)


def enforce(results: list[CheckResult], stage: str) -> None:
    """Log the table; raise QualityGateError naming the failing blocking checks."""
    log.info("quality gate (%s):\n%s", stage, format_table(results))
    warned = [r for r in results if not r.blocking and not r.passed]
    for r in warned:
        log.warning("quality warning %s: observed %s (threshold %s) %s", r.name, r.observed, r.threshold, r.detail)
    failed = [r for r in results if r.blocking and not r.passed]
    if failed:
        # The first few by name keep the error (and the alert built from it) short; the run
        # history and the log table have every check.
        names = ", ".join(f"{r.name} (observed {r.observed}, threshold {r.threshold})" for r in failed[:5])
        if len(failed) > 5:
            names += f" and {len(failed) - 5} more"
        hint = (" If the release is meant to be smaller, run again with the allow_drift Param "
                "(CLI: --allow-drift)." if any(r.name.startswith("drift_") for r in failed) else "")
        if any(r.name == "element_removed" for r in failed):
            hint += (" If the release is meant to lose those elements, run again with the "
                     "allow_element_change Param (CLI: --allow-element-change).")
        raise QualityGateError(f"quality gate failed at {stage}: {names}. Live was not changed; "
                               f"staging is kept for inspection.{hint}")
