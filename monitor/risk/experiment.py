"""The experiment behind docs/prediction.md: train on one simulated fleet, measure on another.

``python -m monitor.risk.experiment [--devices N] [--days D]`` replays a training fleet
and a separate evaluation fleet (different seeds, profile mixes and degradation
lengths), tunes the rules' and the model's thresholds on the training fleet alone and
prints the figures for both on the evaluation fleet. Deterministic: same arguments,
same figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device_client.degradation import HOUR, DevicePlan, Profile, plan_fleet
from monitor.risk.evaluate import Figures, day_threshold, device_days, measure
from monitor.risk.features import FeatureFrame
from monitor.risk.labels import outage_starts, time_to_next_outage
from monitor.risk.model import RiskModel, train
from monitor.risk.replay import EPOCH, ReplayResult, device_id, replay
from monitor.risk.rules import RULES_THRESHOLD, scores, strengths

Array = npt.NDArray[np.float64]

TRAIN_MIX: Mapping[Profile, float] = {
    Profile.BATTERY: 0.05,
    Profile.FLAKY_LINK: 0.05,
    Profile.MEMORY_LEAK: 0.05,
    Profile.SLOWDOWN: 0.05,
    Profile.SUDDEN_DEATH: 0.04,
}
EVAL_MIX: Mapping[Profile, float] = {
    Profile.BATTERY: 0.03,
    Profile.FLAKY_LINK: 0.07,
    Profile.MEMORY_LEAK: 0.04,
    Profile.SLOWDOWN: 0.06,
    Profile.SUDDEN_DEATH: 0.05,
}
# Healthy device-days flagged, at most, per threshold on the training fleet (two
# thresholds for the model: their union stays within twice this).
TARGET_RATE = 0.005


@dataclass(frozen=True, slots=True)
class Fleet:
    plans: list[DevicePlan]
    result: ReplayResult
    x: Array
    ids: list[str]
    times: Array
    to_outage: Array
    healthy: npt.NDArray[np.bool_]
    keys: npt.NDArray[np.int64]
    outages: dict[str, list[float]]
    replay_cpu: float


def simulate(
    count: int, mix: Mapping[Profile, float], *, days: float, seed: int, span: tuple[float, float]
) -> Fleet:
    duration = days * 24 * HOUR
    plans = plan_fleet(count, mix=mix, duration=duration, seed=seed, span=span)
    started = time.process_time()
    result = replay(plans, duration=duration)
    cpu = time.process_time() - started
    x, ids, times = result.samples()
    outages = outage_starts(result.transitions)
    profile_of = {device_id(p): p.profile for p in plans}
    healthy = np.fromiter((profile_of[d] is Profile.HEALTHY for d in ids), dtype=np.bool_)
    return Fleet(
        plans=plans,
        result=result,
        x=x,
        ids=ids,
        times=times,
        to_outage=time_to_next_outage(ids, times, outages),
        healthy=healthy,
        keys=device_days(ids, times, EPOCH),
        outages=outages,
        replay_cpu=cpu,
    )


def rules_score(fleet: Fleet) -> Array:
    frame = FeatureFrame(fleet.ids, [""] * len(fleet.ids), fleet.x, 0.0)
    return scores(strengths(frame))


def train_model(fleet: Fleet, *, seed: int = 0) -> RiskModel:
    return train(
        fleet.x,
        device_ids=fleet.ids,
        to_outage=fleet.to_outage,
        healthy=fleet.healthy,
        day_keys=fleet.keys,
        target_rate=TARGET_RATE,
        seed=seed,
    )


def evaluate(fleet: Fleet, flagged: npt.NDArray[np.bool_]) -> Figures:
    return measure(
        fleet.plans,
        plan_ids=[device_id(p) for p in fleet.plans],
        outages=fleet.outages,
        device_ids=fleet.ids,
        times=fleet.times,
        flagged=flagged,
        start=EPOCH,
    )


def _row(name: str, fig: Figures) -> str:
    hit, total = fig.degrading_caught
    per = ", ".join(f"{p} {c}/{n}" for p, (c, n) in fig.caught.items() if p != "sudden-death")
    sudden = fig.caught.get("sudden-death", (0, 0))
    return (
        f"| {name} | {hit}/{total} = {fig.recall:.1%} | {fig.healthy_flagged_days}/"
        f"{fig.healthy_days} = {fig.false_alarm_rate:.2%} | {fig.median_lead_h:.1f} h | "
        f"{sudden[0]}/{sudden[1]} | {per} |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.risk.experiment")
    parser.add_argument("--devices", type=int, default=400)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--rules-only", action="store_true", help="skip the model")
    args = parser.parse_args(argv)
    out = sys.stdout
    train = simulate(args.devices, TRAIN_MIX, days=args.days, seed=101, span=(4 * HOUR, 20 * HOUR))
    evalf = simulate(args.devices, EVAL_MIX, days=args.days, seed=202, span=(3 * HOUR, 24 * HOUR))
    # The rules are measured at the limit the monitor ships (RULES_THRESHOLD); the
    # threshold the training fleet alone would have chosen is printed beside it.
    tuned = day_threshold(rules_score(train), train.healthy, train.keys, 2 * TARGET_RATE)
    rules_fig = evaluate(evalf, rules_score(evalf) >= RULES_THRESHOLD)
    model_fig: Figures | None = None
    train_cpu = 0.0
    model: RiskModel | None = None
    if not args.rules_only:
        started = time.process_time()
        model = train_model(train)
        train_cpu = time.process_time() - started
        p1, p24 = model.predict(evalf.x)
        model_fig = evaluate(evalf, (p1 >= model.threshold_1h) | (p24 >= model.threshold_24h))
    print(
        f"training fleet: {len(train.plans)} devices, {args.days:g} days, "
        f"{train.result.heartbeats} heartbeats, {len(train.ids)} samples, "
        f"replayed in {train.replay_cpu:.0f} CPU-s; model trained in {train_cpu:.0f} CPU-s",
        file=out,
    )
    print(
        f"evaluation fleet: {len(evalf.plans)} devices, {evalf.result.heartbeats} heartbeats, "
        f"{len(evalf.ids)} samples, replayed in {evalf.replay_cpu:.0f} CPU-s",
        file=out,
    )
    print(
        f"thresholds: rules {RULES_THRESHOLD:g} (the training fleet alone would choose "
        f"{tuned:.2f})"
        + (
            ""
            if model is None
            else f"; model 1 h {model.threshold_1h:.3f}, 24 h {model.threshold_24h:.3f}"
        ),
        file=out,
    )
    print(
        "| method | degrading caught >= 30 min before | healthy device-days flagged "
        "| median lead | sudden deaths caught | per profile |",
        file=out,
    )
    print("|---|---|---|---|---|---|", file=out)
    print(_row("rules (EWMA/CUSUM)", rules_fig), file=out)
    if model_fig is not None:
        print(_row("gradient-boosted model", model_fig), file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
