"""``/api/at-risk``: devices likely to drop off soon, with the reasons, and how they are scored."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from monitor.risk.scoring import RiskLevel
from monitor.timefmt import to_datetime
from monitor.web.auth import Reader
from monitor.web.deps import READ_ERRORS, Service
from monitor.web.risk_view import risk_out
from monitor.web.schemas import OutModel, RiskOut

router = APIRouter(prefix="/api", responses=READ_ERRORS, tags=["read"])


class RiskModelOut(OutModel):
    trained_at: datetime | None
    samples: int = Field(description="Kept samples it was trained on")
    positives_24h: int = Field(description="Of them, followed by an outage within 24 h")
    threshold_1h: float
    threshold_24h: float


class AtRiskItem(OutModel):
    id: str
    risk: RiskOut
    reasons: list[str]


class AtRiskOut(OutModel):
    mode: Literal["rules", "model"] = Field(
        description="rules until the fleet's own history is enough to train the model"
    )
    scored_at: datetime | None = Field(description="Last scoring pass; null before the first")
    cycle_seconds: float
    scored: int = Field(description="Devices scored in the last pass (up and heard from)")
    counts: dict[Literal["low", "elevated", "high"], int]
    model: RiskModelOut | None
    total: int = Field(description="Devices at the requested levels")
    items: list[AtRiskItem] = Field(description="Highest score first")


@router.get(
    "/at-risk",
    response_model=AtRiskOut,
    summary="Devices at risk of going stale, offline or lost, with reasons",
)
async def at_risk(
    service: Service,
    _: Reader,
    level: Annotated[
        Literal["elevated", "high"] | None,
        Query(description="Only this level (default: elevated and high)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> AtRiskOut:
    scorer = service.risk
    report = scorer.report
    flagged = report.at_risk()
    if level is not None:
        flagged = [(d, r) for d, r in flagged if r.level is RiskLevel(level)]
    items = []
    for device_id, _risk in flagged[:limit]:
        out, reasons = risk_out(report, device_id)
        assert out is not None
        items.append(AtRiskItem(id=device_id, risk=out, reasons=reasons))
    model = scorer.model
    return AtRiskOut(
        mode=report.mode.value,
        scored_at=to_datetime(report.scored_at) if scorer.cycles else None,
        cycle_seconds=scorer.options.cycle,
        scored=len(report.device_ids),
        counts={lvl.value: n for lvl, n in report.counts().items()},
        model=None
        if model is None
        else RiskModelOut(
            trained_at=to_datetime(scorer.trained_at),
            samples=model.samples,
            positives_24h=model.positives_24h,
            threshold_1h=model.threshold_1h,
            threshold_24h=model.threshold_24h,
        ),
        total=len(flagged),
        items=items,
    )
