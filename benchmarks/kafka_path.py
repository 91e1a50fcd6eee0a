"""The scale-out path's figures: spans per second through agent -> Kafka -> ingester, and how long
an outage of Kafka the agent's queue rides out.

    python benchmarks/kafka_path.py throughput [--spans 200000] [--senders 2]
    python benchmarks/kafka_path.py outage [--queue 20] [--retry 30s] [--rate 4]

The same real parts as the scale-out test (tests/e2e/kafka.py): one KRaft Kafka node, the agent
(deploy/collector-agent.yaml) and the ingester (deploy/jaeger-ingester.yaml, every trace kept),
all on loopback. Needs ./scripts/test to have built Jaeger and installed Kafka once.

``throughput``: sender processes post OTLP/HTTP export requests of 512 spans (traces of 8 spans,
each trace id unique) to the agent as fast as it takes them; the clock stops when the ingester's
consumer group has no lag left on the topic and the ingester's search finds every trace. It
prints spans per second end to end, and the CPU (seconds, and cores at that rate) and peak
memory of the agent and the ingester.

``outage``: Kafka is stopped, the sender goes on at ``--rate`` export requests a second (the
example app's order of rate: a batch a second from each worker), and the agent's log is watched
for its first drop. The agent drops a batch when its sending queue is full (``queue`` batches
waiting) or when a batch has been retried for ``retry``; what it holds is the smaller of the two
limits, which the run shows by timing the first drop. The default config holds 5000 batches for
10 minutes (SIGOBS_AGENT_QUEUE_SIZE, SIGOBS_AGENT_RETRY_MAX_TIME).

It prints numbers; it does not pass or fail.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.kafka import TOPIC, ScaleStack, find_kafka  # noqa: E402
from tests.e2e.stack import find_jaeger, stopped_after, wait_for  # noqa: E402

SERVICE = "sigobs-bench"
SPANS_PER_TRACE = 8
SPANS_PER_REQUEST = 512


def export_request(rng: random.Random, trace_ids: list[bytes] | None = None) -> bytes:
    """One OTLP export request of SPANS_PER_REQUEST server and internal spans, fresh ids."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    now = time.time_ns()
    spans = []
    for t in range(SPANS_PER_REQUEST // SPANS_PER_TRACE):
        trace_id = rng.randbytes(16)
        if trace_ids is not None:
            trace_ids.append(trace_id)
        root = rng.randbytes(8)
        for s in range(SPANS_PER_TRACE):
            spans.append(Span(
                trace_id=trace_id, span_id=root if s == 0 else rng.randbytes(8),
                parent_span_id=b"" if s == 0 else root, name="GET /items/<int:id>" if s == 0 else "db",
                kind=Span.SPAN_KIND_SERVER if s == 0 else Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=now, end_time_unix_nano=now + 1_000_000,
                attributes=[KeyValue(key="http.route", value=AnyValue(string_value="/items/<int:id>"))],
                events=[Span.Event(time_unix_nano=now, name="flask.request_finished")] if s == 0 else []))
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=SERVICE))])
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=resource, scope_spans=[ScopeSpans(spans=spans)])])
    return request.SerializeToString()


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def sender(url: str, requests: int, seed: int, rate: float, results: "multiprocessing.Queue") -> None:
    """Posts ``requests`` export requests; puts (refused, the trace ids of the last request)."""
    rng = random.Random(seed)
    refused = 0
    last: list[bytes] = []
    started = time.monotonic()
    for number in range(requests):
        last = []
        if post(url, export_request(rng, last)) != 200:
            refused += 1
        if rate:
            time.sleep(max(0.0, started + (number + 1) / rate - time.monotonic()))
    results.put((refused, [trace_id.hex() for trace_id in last]))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_mib(pid: int) -> float:
    match = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def lag(stack: ScaleStack) -> int | None:
    """The ingester group's lag on the topic (None while the group has no offsets yet)."""
    assert stack.kafka is not None
    out = stack.kafka._java("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                            "--bootstrap-server", stack.kafka.address, "--describe", "--group",
                            "sigobs-ingester")
    lags = [line.split() for line in out.splitlines() if line.strip().startswith("sigobs-ingester")]
    values = [int(cols[5]) for cols in lags if len(cols) > 5 and cols[1] == TOPIC and cols[5].isdigit()]
    return sum(values) if values else None


def parts(workdir: Path, **kwargs: object) -> ScaleStack:
    jaeger, why = find_jaeger()
    kafka_home, why_kafka = find_kafka()
    if jaeger is None or kafka_home is None:
        sys.exit(why or why_kafka)
    return ScaleStack(jaeger, workdir, kafka_home=kafka_home, **kwargs)  # type: ignore[arg-type]


def throughput(args: argparse.Namespace) -> None:
    requests = args.spans // SPANS_PER_REQUEST
    with tempfile.TemporaryDirectory() as tmp:
        stack = parts(Path(tmp), sample_percent=100, decision_wait="1s")
        with stopped_after(stack, "the benchmark's stack"):
            stack.start_kafka()
            ingester = stack.start_jaeger()
            agent = stack.start_collector()
            url = f"http://127.0.0.1:{stack.collector_http}/v1/traces"
            pids = {"agent": agent.popen.pid, "ingester": ingester.popen.pid}  # type: ignore[union-attr]
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            results: multiprocessing.Queue[int] = multiprocessing.Queue()
            started = time.monotonic()
            senders = [multiprocessing.Process(target=sender, args=(url, requests // args.senders, seed, 0, results))
                       for seed in range(args.senders)]
            for process in senders:
                process.start()
            for process in senders:
                process.join()
            sent_s = time.monotonic() - started
            outcomes = [results.get() for _ in senders]
            refused = sum(outcome[0] for outcome in outcomes)
            last_ids = [trace_id for outcome in outcomes for trace_id in outcome[1]]
            total_traces = (requests // args.senders) * args.senders * SPANS_PER_REQUEST // SPANS_PER_TRACE

            # The clock stops when every trace of every sender's last request is in the ingester
            # (cheap lookups, polled often); the lag and the full search below confirm the rest.
            def last_ones_in() -> bool:
                return all(stack.query.trace(trace_id) is not None for trace_id in last_ids)

            wait_for("the senders' last traces in the ingester", last_ones_in, 600, interval=0.1)
            elapsed = time.monotonic() - started
            cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
            wait_for("no lag left on the topic", lambda: lag(stack) == 0, 300, interval=1.0)
            since = int((time.time() - 3600) * 1e6)

            def found_all() -> bool:
                return len(stack.query.search(SERVICE, since, limit=total_traces + 1000)) >= total_traces

            wait_for(f"{total_traces} traces in the ingester", found_all, 300, interval=5.0)
            spans = total_traces * SPANS_PER_TRACE
            print(json.dumps({
                "spans": spans, "refused_requests": refused, "sent_in_s": round(sent_s, 2),
                "through_in_s": round(elapsed, 2), "spans_per_s": round(spans / elapsed),
                **{f"{name}_cpu_s": round(value, 2) for name, value in cpu.items()},
                **{f"{name}_cores": round(value / elapsed, 2) for name, value in cpu.items()},
                **{f"{name}_peak_mib": round(peak_mib(pid), 1) for name, pid in pids.items()},
            }, indent=1))


def outage(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stack = parts(Path(tmp), sample_percent=100, decision_wait="1s")
        original = stack.agent_env

        def agent_env() -> dict[str, str]:
            env = original()
            env.update(SIGOBS_AGENT_QUEUE_SIZE=str(args.queue), SIGOBS_AGENT_RETRY_MAX_TIME=args.retry)
            return env

        stack.agent_env = agent_env  # type: ignore[method-assign]
        with stopped_after(stack, "the benchmark's stack"):
            stack.start_kafka()
            stack.start_jaeger()
            agent = stack.start_collector()
            url = f"http://127.0.0.1:{stack.collector_http}/v1/traces"
            assert stack.kafka is not None
            stack.kafka.stop()
            down = time.monotonic()
            results: multiprocessing.Queue[int] = multiprocessing.Queue()
            load = multiprocessing.Process(target=sender, args=(url, int(args.rate * args.seconds), 7,
                                                                args.rate, results))
            load.start()
            first_drop, why = None, None
            while load.is_alive():
                found = re.search(r"^.*(?:[Dd]ropping data|sending queue is full|[Dd]ropping).*$",
                                  agent.output(tail=100000), re.MULTILINE)
                if found:
                    first_drop, why = time.monotonic() - down, found.group(0)
                    break
                time.sleep(0.5)
            load.terminate()
            load.join()
            print(json.dumps({
                "queue_size_batches": args.queue, "retry_max_elapsed": args.retry,
                "rate_export_requests_per_s": args.rate,
                "first_drop_after_s": None if first_drop is None else round(first_drop, 1),
                "watched_s": args.seconds,
                "the_agent_said": None if why is None else why[:300],
            }, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    through = commands.add_parser("throughput")
    through.add_argument("--spans", type=int, default=200_000)
    through.add_argument("--senders", type=int, default=2)
    hold = commands.add_parser("outage")
    hold.add_argument("--queue", type=int, default=20, help="SIGOBS_AGENT_QUEUE_SIZE for the run")
    hold.add_argument("--retry", default="30s", help="SIGOBS_AGENT_RETRY_MAX_TIME for the run")
    hold.add_argument("--rate", type=float, default=4.0, help="export requests a second while Kafka is away")
    hold.add_argument("--seconds", type=float, default=120.0, help="how long to watch")
    args = parser.parse_args()
    (throughput if args.command == "throughput" else outage)(args)


if __name__ == "__main__":
    main()
