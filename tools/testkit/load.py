"""Steady closed-loop load from a few client threads, each on its own keep-alive session, recording every outcome."""

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

import requests

REQUEST_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class Outcome:
    started: float
    finished: float
    status: int | None
    model_version: str | None
    error: str | None


@dataclass
class SteadyLoad:
    base_url: str
    paths: Sequence[str]
    clients: int = 4
    headers: dict[str, str] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._client, args=(index,), daemon=True) for index in range(self.clients)
        ]

    def __enter__(self) -> "SteadyLoad":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        """Start no new request (as a load balancer does once a target drains) and wait for those in flight."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT_SECONDS + 5)
        assert not any(thread.is_alive() for thread in self._threads), "a load client is stuck"

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.outcomes) < count:
            assert time.monotonic() < deadline, f"only {len(self.outcomes)} requests in {timeout}s"
            time.sleep(0.02)

    def failures(self) -> list[Outcome]:
        with self._lock:
            return [outcome for outcome in self.outcomes if outcome.status != 200]

    def versions(self) -> list[str | None]:
        with self._lock:
            return [outcome.model_version for outcome in sorted(self.outcomes, key=lambda o: o.finished)]

    def _client(self, index: int) -> None:
        with requests.Session() as session:
            sent = index
            while not self._stop.is_set():
                path = self.paths[sent % len(self.paths)]
                sent += self.clients
                started = time.monotonic()
                try:
                    response = session.get(self.base_url + path, headers=self.headers, timeout=REQUEST_TIMEOUT_SECONDS)
                    body = response.json() if response.status_code == 200 else {}
                    outcome = Outcome(started, time.monotonic(), response.status_code, body.get("model_version"), None)
                except (requests.RequestException, ValueError) as error:
                    outcome = Outcome(started, time.monotonic(), None, None, repr(error))
                with self._lock:
                    self.outcomes.append(outcome)
