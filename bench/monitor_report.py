"""The monitor benchmark's section of docs/performance.md, rendered from its JSON report."""

from __future__ import annotations

from typing import Any

from bench.perf_doc import replace_section


def _fmt(n: float | None) -> str:
    return "—" if n is None else f"{n:,.0f}"


def _meets(ok: bool) -> str:
    return "meets" if ok else "**misses**"


def _throughput_lines(t: dict[str, Any], m: dict[str, Any]) -> list[str]:
    bare, mon, load = t["bare_aiomqtt"], t["monitor"], t["load"]
    direct = t.get("direct_receive", {})
    lines = [
        "### Heartbeats per second, MQTT to committed PostgreSQL state",
        "",
        "| phase | receiver | delivered | received/s | committed state/s "
        "| receiver CPU s | messages per receiver CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    for phase in ("live", "backlog"):
        receivers = (
            ("bare aiomqtt loop", bare),
            ("clawbeat receive path only", direct),
            ("clawbeat monitor", mon),
        )
        for name, run in receivers:
            if phase not in run:
                continue
            r = run[phase]
            lines.append(
                f"| {phase} | {name} | {r['delivered']:,} of {r['messages']:,} "
                f"| {_fmt(r['received_per_s'])} | {_fmt(r.get('committed_per_s'))} "
                f"| {r['receiver_cpu_s']} | {_fmt(r['received_per_cpu_s'])} |"
            )
    lines.append("")
    for phase, ratio in t["ratio"].items():
        committed = mon[phase].get("committed_per_s") or 0
        lines.append(
            f"- **{phase}**: monitor / bare loop = **{ratio['received_per_s']}** in messages "
            f"per second, {ratio['received_per_cpu_s']} in messages per CPU second "
            f"(target ≥ 0.5: {_meets(ratio['received_per_s'] >= 0.5)}); "
            f"**{_fmt(committed)} heartbeats/s** to committed state "
            f"(target ≥ 10,000: {_meets(committed >= 10_000)})."
        )
    to_direct = t.get("ratio_to_direct", {})
    if to_direct:
        shares = ", ".join(
            f"{ratio['received_per_s']} {phase}" for phase, ratio in to_direct.items()
        )
        lines.append(
            f"- Monitor / its own receive path with nothing behind it: {shares} (messages per "
            "second): what is left of the receive path's capacity after validation, the "
            "engine, the write-behind and status publishing."
        )
    if "live" in bare and "backlog" in bare:
        live, backlog = bare["live"], bare["backlog"]
        if live["received_per_s"] < 0.8 * backlog["received_per_s"]:
            lines.append(
                f"- In the live phase the publishers ({live['publishers_cpu_s']} CPU s) and "
                f"the broker compete with the receiver for the {m['nproc']} CPUs: the bare "
                f"loop took in {_fmt(live['received_per_s'])}/s there against "
                f"{_fmt(backlog['received_per_s'])}/s draining a backlog alone. The "
                "**backlog** phase is the capacity comparison."
            )
    lines += [
        f"- Start-up with {load['devices']:,} devices: the monitor took "
        f"{mon['retained_replay_s']} s from subscribing to having taken in the replayed "
        "retained heartbeats, published their status topics and written their "
        f"transitions; first contact (one fresh heartbeat per device) took "
        f"{mon['first_contact_s']} s (bare loop: {bare['first_contact_s']} s).",
        "",
        "How: a Mosquitto started by the test harness from the repository's "
        "`mosquitto.conf` (loopback, no TLS"
        + (
            "; changed: " + ", ".join(f"`{o}`" for o in t["broker_changes"])
            if t["broker_changes"]
            else ", otherwise unchanged"
        )
        + ") and a throwaway PostgreSQL cluster with `fsync=off` (the bench measures the "
        "monitor, not the disk). "
        f"{load['devices']:,} device users; {load['publishers']} publisher processes "
        "(paho-mqtt without its network thread, one connection per device, because the "
        "ACL lets a device publish only its own topics) publish protocol heartbeats of "
        f"about 130 bytes, **QoS 1, retained**, as fast as they can. Each receiver "
        "subscribes to `clawbeat/v1/devices/+/heartbeat` at QoS 1 like the monitor. "
        "Untimed warm-up: one heartbeat per device (first contact). **live**: "
        f"{load['live_rounds']} heartbeats per device while the receiver runs; the clock "
        "starts when the publishers are told to go. **backlog**: "
        f"{load['backlog_rounds']} heartbeats per device published while the receiver "
        "process is stopped (SIGSTOP), the clock starting when it is resumed — its drain "
        "rate is its capacity without the load generator competing for the "
        f"{m['nproc']} CPUs. *received/s* ends at the last message the receiver took in "
        "(the monitor's ingest counter, sampled every 5 ms); *committed state/s* ends "
        "when a query on `devices` shows every device at its last `seq` and session. "
        "*messages per receiver CPU second* uses the receiver process's user + system "
        "CPU time. The bare loop is an aiomqtt client that only counts messages "
        "(`async for message in client.messages`); *clawbeat receive path only* is the "
        "monitor's `DirectClient` (messages handed over inside paho's read loop, the "
        "socket read in 64 KiB chunks: `monitor/direct_client.py`) that only counts; the "
        "monitor is `MonitorService` against PostgreSQL with default settings except "
        "`CLAWBEAT_MQTT_KEEPALIVE=300` (it is stopped for seconds in the backlog phase) "
        "and its HTTP port.",
        "",
    ]
    return lines


def _memory_lines(memory: dict[str, Any]) -> list[str]:
    engine = {e["devices"]: e for e in memory.get("engine_only", [])}
    header = "| devices | monitor state, bytes/device | RSS after |"
    rule = "|---|---|---|"
    if engine:
        header += " engine alone, bytes/device |"
        rule += "---|"
    lines = [
        "### Memory per tracked device",
        "",
        header + " extra while pending in a flush window, bytes/device |",
        rule + "---|",
    ]
    for svc in memory["service"]:
        row = (
            f"| {svc['devices']:,} | **{svc['bytes_per_device']:,}** | {svc['rss_after_mib']} MiB |"
        )
        if engine:
            eng = engine.get(svc["devices"])
            row += f" {eng['bytes_per_device'] if eng else '—'} |"
        lines.append(row + f" {svc['pending_bytes_per_device']:,} |")
    largest = memory["service"][-1]
    lines += [
        "",
        f"Target ≤ 1 KiB per device at 1M: {_meets(largest['bytes_per_device'] <= 1024)} "
        f"({largest['bytes_per_device']} bytes at {largest['devices']:,}).",
        "",
        "How: in a fresh process per size, N devices (ids like `dev-0000001`, a "
        "16-hex-digit session each, heartbeats with `fw` and two metrics) are fed through "
        "`MonitorService.heartbeat`, the call ingest makes for every valid heartbeat, "
        "handing dirty devices to the write-behind every 10,000 heartbeats; the "
        "write-behind stands for one whose flushes succeed, so nothing stays pending (the "
        "steady state). RSS (psutil, after `gc.collect()`) after minus before, divided by "
        "N: engine records, deadline heap, service dictionaries, interpreter overhead. "
        "*Extra while pending* is what a device costs while its rollup, latest metrics "
        "and device row wait for the next flush (measured on up to 100,000 devices); only "
        "devices that beat within one flush window (1 s) are pending at a time. The "
        "engine's own share is measured by `bench/bench_engine.py` (its section)"
        + ("" if engine else "; `--engine-breakdown` adds it here")
        + ".",
        "",
    ]
    return lines


def _latency_lines(lat: dict[str, Any]) -> list[str]:
    q = lat["latency_s"]
    rate = lat["devices"] / lat["deadline_spread_s"]
    return [
        "### Detection latency",
        "",
        f"{lat['devices']:,} devices, every one of them missing its heartbeat, late "
        f"deadlines spread evenly over {lat['deadline_spread_s']:g} s ({rate:,.0f} "
        f"deadlines/s: a mass outage, the worst case). Detected {lat['detected']:,}: "
        f"**p50 {q.get('p50', 0) * 1000:.0f} ms, p99 {q.get('p99', 0) * 1000:.0f} ms**, "
        f"max {q.get('max', 0) * 1000:.0f} ms (target p99 ≤ 1 s: "
        f"{_meets(q.get('p99', 99) <= 1.0)}).",
        "",
        "How: a `MonitorService` with its own tick loop "
        f"(`asyncio.sleep({lat['tick_interval_s']})`, then "
        "`engine.tick(time.monotonic(), time.time())` on the real clock) and real "
        "transition handling: transition rows to the write-behind, alerting, status "
        "payloads to the MQTT link's queue (not connected: no socket write), an INFO log "
        "line per transition into a file. Latency = monotonic time when the tick's "
        "transitions have all been handled minus the device's deadline (last heartbeat + "
        "interval + grace). No message load on the event loop meanwhile. With few devices "
        "failing at a time the latency is the tick interval plus the tick's cost; here it "
        "is bounded by the cost of handling each transition.",
        "",
    ]


def render_section(report: dict[str, Any]) -> str:
    m = report["machine"]
    pg = report.get("throughput", {}).get("postgresql")
    lines = [
        "## Monitor end to end (`bench/bench_monitor.py`)",
        "",
        f"Measured {report['date']} in one run of `python -m bench.bench_monitor` "
        f"({report['seconds']:.0f} s) on {m['nproc']} CPUs ({m['cpu']}), "
        f"{m['memory_gib']} GiB RAM, Python {m['python']}, {m['mosquitto']}"
        + (f", PostgreSQL {pg}" if pg else "")
        + f", paho-mqtt {m['paho_mqtt']}, aiomqtt {m['aiomqtt']}. Broker, PostgreSQL, "
        "load generators and the process measured all share these CPUs.",
        "",
    ]
    if "throughput" in report:
        lines += _throughput_lines(report["throughput"], m)
    if "memory" in report:
        lines += _memory_lines(report["memory"])
    if "latency" in report:
        lines += _latency_lines(report["latency"])
    if report.get("profile"):
        lines += [
            "### Where the monitor's time goes",
            "",
            "cProfile of the monitor process over the throughput run, by own time (a "
            "profiled run: the profiler slows the monitor, so its figures above are low):",
            "",
            "```",
            report["profile"].rstrip(),
            "```",
            "",
        ]
    if report.get("errors"):
        lines += ["Failed parts of this run: " + "; ".join(report["errors"]), ""]
    return "\n".join(lines)


def write_doc(section: str) -> None:
    replace_section("bench_monitor", section)
