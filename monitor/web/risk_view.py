"""Risk scores (monitor/risk) as API bodies."""

from __future__ import annotations

from monitor.risk.scoring import RiskReport
from monitor.timefmt import to_datetime
from monitor.web.schemas import DeviceOut, RiskOut


def risk_out(report: RiskReport, device_id: str) -> tuple[RiskOut | None, list[str]]:
    """The device's risk in the latest report, and its reasons; (None, []) if not scored."""
    risk = report.get(device_id)
    if risk is None:
        return None, []
    scored_at = to_datetime(report.scored_at)
    assert scored_at is not None
    out = RiskOut(
        level=risk.level.value,
        mode=report.mode.value,
        score=risk.score,
        within_1h=risk.within_1h,
        within_24h=risk.within_24h,
        scored_at=scored_at,
    )
    return out, list(risk.reasons)


def with_risk(out: DeviceOut, report: RiskReport) -> DeviceOut:
    out.risk, out.risk_reasons = risk_out(report, out.id)
    return out
