"""The monitor's scorer driven by a replayed fleet: rules first, then its own model."""

from __future__ import annotations

from device_client.degradation import HOUR, Profile, plan_fleet
from monitor.risk.replay import device_id, replay
from monitor.risk.scorer import RiskOptions, RiskScorer
from monitor.risk.scoring import RiskLevel, RiskMode

MIX = {
    Profile.BATTERY: 0.1,
    Profile.FLAKY_LINK: 0.1,
    Profile.MEMORY_LEAK: 0.1,
    Profile.SLOWDOWN: 0.1,
    Profile.SUDDEN_DEATH: 0.05,
}


def test_scorer_uses_rules_until_its_own_history_trains_a_model() -> None:
    duration = 40 * HOUR
    plans = plan_fleet(
        50, mix=MIX, duration=duration, seed=21, settle=4 * HOUR, span=(2 * HOUR, 8 * HOUR)
    )
    scorer = RiskScorer(
        RiskOptions(
            sample_every=300.0, min_history=30 * HOUR, min_outages=5, retrain_every=100 * HOUR
        )
    )
    modes: list[tuple[float, RiskMode]] = []
    result = replay(
        plans,
        duration=duration,
        scorer=scorer,
        on_cycle=lambda frame: modes.append((frame.now, scorer.mode)),
        keep_frames=False,
    )
    assert result.heartbeats > 0
    before = [m for t, m in modes if t < 30 * HOUR]
    after = [m for t, m in modes if t >= 30 * HOUR + 300]
    assert set(before) == {RiskMode.RULES}
    assert set(after) == {RiskMode.MODEL}
    model = scorer.model
    assert model is not None
    assert model.positives_24h > 0
    assert 0.0 < model.threshold_24h <= 1.0
    report = scorer.report
    assert report.mode is RiskMode.MODEL
    assert report.within_1h is not None
    healthy = next(device_id(p) for p in plans if p.profile is Profile.HEALTHY)
    risk = report.get(healthy)
    assert risk is not None
    assert risk.within_24h is not None
    assert 0.0 <= risk.within_24h <= 1.0
    counts = report.counts()
    assert sum(counts.values()) == len(report.device_ids)
    flagged = report.at_risk()
    assert len(flagged) == counts[RiskLevel.ELEVATED] + counts[RiskLevel.HIGH]
    scores = [r.score for _, r in flagged]
    assert scores == sorted(scores, reverse=True)
    for _, r in flagged:
        assert 1 <= len(r.reasons) <= 3


def test_too_few_outages_keep_the_rules() -> None:
    duration = 30 * HOUR
    plans = plan_fleet(10, mix={}, duration=duration, seed=2, settle=4 * HOUR)
    scorer = RiskScorer(RiskOptions(min_history=26 * HOUR, min_outages=1, retrain_every=HOUR))
    replay(plans, duration=duration, scorer=scorer, keep_frames=False)
    assert scorer.mode is RiskMode.RULES
    assert scorer.trained_at is not None  # it tried, and will try again on schedule
