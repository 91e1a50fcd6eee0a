"""The real parts of the scale-out test: a Kafka broker, the agent Collector and the Jaeger ingester.

    app (gunicorn -w 2) ──OTLP/HTTP──> agent (deploy/collector-agent.yaml) ──> Kafka (one KRaft node)
        ──> ingester (deploy/jaeger-ingester.yaml: Kafka in, tail sampling, memory storage, query API)

Kafka is Apache Kafka's own server, from the jars ``scripts/install-kafka`` copies out of Maven
Central, run by the machine's Java as one KRaft node (broker and controller in one process) on
free loopback ports, its data in the test's work folder. The agent and the ingester are the Jaeger
v2 binary with the repo's shipped configs, unchanged. Every part is a child process of its own
(``stack.Process``), stopped with the stack; the broker can be stopped and started again on the
same ports and data, which is how the outage test takes Kafka away.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .stack import (ROOT, START_TIMEOUT, Process, Stack, StackError, accepts_an_empty_export, clean_environ,
                    free_ports, wait_for)

AGENT_CONFIG = ROOT / "deploy" / "collector-agent.yaml"
INGESTER_CONFIG = ROOT / "deploy" / "jaeger-ingester.yaml"
STORAGE_OVERLAYS = sorted((ROOT / "deploy" / "storage").glob("*.yaml"))
KAFKA_VERSION = "4.4.0"  # what scripts/install-kafka installs by default
TOPIC = "sigobs-spans"


def find_kafka() -> tuple[Path | None, str]:
    """Kafka's jar folder, or None and why not: ``SIGOBS_KAFKA_HOME`` (exported by ``scripts/test``
    after ``scripts/install-kafka``), else the install's cache location; and a Java to run it."""
    if shutil.which("java") is None:
        return None, "no java on the PATH: the scale-out test runs Apache Kafka, which needs Java 17+"
    home = os.environ.get("SIGOBS_KAFKA_HOME")
    if not home:
        cache = Path(os.environ.get("SIGOBS_CACHE") or Path.home() / ".cache" / "flask-sigobs")
        home = str(cache / f"kafka-{KAFKA_VERSION}")
    libs = Path(home) / "libs"
    if not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return None, (f"no Kafka jars in {libs}: run ./scripts/test (it installs them with "
                      f"scripts/install-kafka, which needs Java and Maven), or set SIGOBS_KAFKA_HOME")
    return Path(home), ""


@dataclass
class KafkaBroker:
    """One KRaft node on loopback; ``stop()`` then ``start()`` brings back the same broker."""

    home: Path
    workdir: Path
    processes: list[Process]  # the stack's list: a started broker is stopped with the stack
    port: int = 0
    controller_port: int = 0
    process: Process | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.port, self.controller_port = free_ports(2)
        self.data = self.workdir / "kafka-data"
        self.properties = self.workdir / "kafka.properties"
        self.properties.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.data}",
            "num.partitions=2",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "",
        ]))
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # "=" joined: a cluster id is URL-safe base64, and one that starts with "-" is no option
        self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "--config",
                   str(self.properties))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _classpath(self) -> str:
        return str(self.home / "libs" / "*")

    def _java(self, main: str, *args: str) -> str:
        result = subprocess.run(["java", "-Xmx256m", "-cp", self._classpath(), main, *args],
                                capture_output=True, text=True, timeout=120, env=clean_environ())
        if result.returncode != 0:
            raise StackError(f"{main} {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def start(self) -> Process:
        self.starts += 1
        self.process = Process(f"kafka-{self.starts}",
                               ["java", "-Xms256m", "-Xmx512m", "-cp", self._classpath(), "kafka.Kafka",
                                str(self.properties)],
                               clean_environ(), self.workdir / f"kafka-{self.starts}.log")
        self.processes.append(self.process)
        self.process.start()
        wait_for(f"Kafka on {self.address}", self._accepts, START_TIMEOUT * 2,
                 alive=self.process.check_alive)
        return self.process

    def _accepts(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def create_topic(self, name: str, partitions: int = 2) -> None:
        self._java("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", self.address,
                   "--create", "--if-not-exists", "--topic", name, "--partitions", str(partitions),
                   "--replication-factor", "1")


@dataclass
class ScaleStack(Stack):
    """Kafka + the ingester + the agent + the example app: ``start_jaeger`` starts the ingester
    (Jaeger's query API is the ingester's) and ``start_collector`` the agent (what the app sends to)."""

    kafka_home: Path = Path()
    sample_percent: int = 100
    decision_wait: str = "1s"
    kafka: KafkaBroker | None = field(default=None, init=False)

    def start_kafka(self) -> KafkaBroker:
        self.kafka = KafkaBroker(self.kafka_home, self.workdir, self.processes)
        self.kafka.start()
        self.kafka.create_topic(TOPIC)
        return self.kafka

    def ingester_env(self) -> dict[str, str]:
        assert self.kafka is not None
        return clean_environ(SIGOBS_KAFKA_BROKERS=self.kafka.address, SIGOBS_KAFKA_TOPIC=TOPIC,
                             SIGOBS_JAEGER_QUERY_HTTP=f"127.0.0.1:{self.query_http}",
                             SIGOBS_JAEGER_QUERY_GRPC=f"127.0.0.1:{self.query_grpc}",
                             SIGOBS_TAIL_SAMPLE_PERCENT=str(self.sample_percent),
                             SIGOBS_TAIL_DECISION_WAIT=self.decision_wait)

    def agent_env(self) -> dict[str, str]:
        assert self.kafka is not None
        return clean_environ(SIGOBS_KAFKA_BROKERS=self.kafka.address, SIGOBS_KAFKA_TOPIC=TOPIC,
                             SIGOBS_COLLECTOR_GRPC=f"127.0.0.1:{self.collector_grpc}",
                             SIGOBS_COLLECTOR_HTTP=f"127.0.0.1:{self.collector_http}")

    def start_jaeger(self) -> Process:
        env = self.ingester_env()
        self.validate(INGESTER_CONFIG, env)
        process = self.start_process("ingester", [self.jaeger_binary, f"--config={INGESTER_CONFIG}"], env)
        wait_for("the ingester's query API", lambda: self.query.get("/api/services") is not None,
                 START_TIMEOUT, alive=process.check_alive)
        self.query.bodies.clear()
        return process

    def start_collector(self) -> Process:
        env = self.agent_env()
        self.validate(AGENT_CONFIG, env)
        process = self.start_process("agent", [self.jaeger_binary, f"--config={AGENT_CONFIG}"], env)
        wait_for("the agent's OTLP/HTTP receiver",
                 lambda: accepts_an_empty_export(f"http://127.0.0.1:{self.collector_http}/v1/traces"),
                 START_TIMEOUT, alive=process.check_alive)
        return process
