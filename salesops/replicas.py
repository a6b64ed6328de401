"""Where the replicas of `salesops up --replicas N` listen, what they are called, and what each may use.

Replica k (1-based) of a service listens on port-base + 10 * (k - 1) + the service's offset: replica 1 keeps the
ports of a single stack (promotion +1, fulfillment +2, returns +3, planning +4), replica 2 takes +11 .. +14, and so
on. The console (+5) and the embedded broker (+92) sit outside every replica's ports."""

from __future__ import annotations

from dataclasses import dataclass

SERVICE_PORT_OFFSETS = {"promotion": 1, "fulfillment": 2, "returns": 3, "planning": 4}
CONSOLE_PORT_OFFSET = 5
BROKER_PORT_OFFSET = 92
REPLICA_PORT_STRIDE = 10
# More replicas than partitions would only stand by (the default of 6 partitions gives each of 6 replicas one),
# and the embedded PostgreSQL accepts 100 connections for all of them.
MAX_REPLICAS = 6
# Connections the services of one machine may open to the embedded PostgreSQL, all replicas together; the rest
# of its 100 are for migrations, the tools and its superuser reserve.
EMBEDDED_CONNECTION_BUDGET = 80
# A pool below this could not hold the stream listener, the relay and a request at once.
MIN_CONNECTIONS_PER_PROCESS = 3


@dataclass(frozen=True)
class Replica:
    service: str
    index: int  # 1-based
    port: int
    # Whether the stack runs more than one replica of each service; names carry the index only then.
    numbered: bool

    @property
    def name(self) -> str:
        """`promotion` in a stack of single processes, `promotion-1`, `promotion-2` ... otherwise."""
        return f"{self.service}-{self.index}" if self.numbered else self.service

    @property
    def log_name(self) -> str:
        return f"{self.name}.log"


def check_replicas(replicas: int) -> None:
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ValueError(f"replicas must be from 1 to {MAX_REPLICAS}, not {replicas}")


def replica_port(port_base: int, service: str, index: int) -> int:
    """The port of replica `index` (1-based) of `service`."""
    return port_base + REPLICA_PORT_STRIDE * (index - 1) + SERVICE_PORT_OFFSETS[service]


def replicas_of(port_base: int, replicas: int) -> list[Replica]:
    """Every process of a stack, replica 1 of each service first, then replica 2 of each, and so on."""
    check_replicas(replicas)
    return [
        Replica(service, index, replica_port(port_base, service, index), replicas > 1)
        for index in range(1, replicas + 1)
        for service in SERVICE_PORT_OFFSETS
    ]


def stack_ports(port_base: int, replicas: int) -> dict[str, int]:
    """Every port a stack listens on (the broker's is only preferred: any free one does), by what holds it."""
    ports = {f"{r.name} service": r.port for r in replicas_of(port_base, replicas)}
    ports["console"] = port_base + CONSOLE_PORT_OFFSET
    ports["broker"] = port_base + BROKER_PORT_OFFSET
    return ports


def connection_pool(replicas: int) -> tuple[int, int]:
    """(pool size, overflow) per process so that every replica of the four services fits the embedded
    PostgreSQL together: 20 + 0 for a single stack (the services' defaults), less per process with more. No
    overflow: a connection kept in the pool is reused, an overflow one is opened and closed per use."""
    check_replicas(replicas)
    per_process = max(MIN_CONNECTIONS_PER_PROCESS, EMBEDDED_CONNECTION_BUDGET // (len(SERVICE_PORT_OFFSETS) * replicas))
    return per_process, 0
