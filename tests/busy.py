"""A busy organization for tests: unrelated syncs emitting events while something waits."""

from __future__ import annotations

import threading

from airflow_provider_polytomic.testing import FakePolytomic


class Chatter(threading.Thread):
    """Unrelated syncs of the fake starting and completing (two events each) at about
    ``events_per_second``, until :meth:`halt` is set; :attr:`emitted` counts the events."""

    def __init__(self, fake: FakePolytomic, events_per_second: int, *, syncs: int = 20) -> None:
        super().__init__(daemon=True)
        self.fake, self.rate = fake, events_per_second
        self.syncs = [fake.add_sync(f"unrelated-{i}") for i in range(syncs)]
        self.halt = threading.Event()
        self.emitted = 0

    def run(self) -> None:
        tick = 0.05
        while not self.halt.wait(tick):
            for _ in range(int(self.rate * tick / 2)):
                sync_id = self.syncs[self.emitted % len(self.syncs)]
                self.fake.complete_execution(sync_id, self.fake.start_execution(sync_id))
                self.emitted += 2

    def stop(self) -> None:
        """Stop emitting and wait for the thread (a no-op if it never started)."""
        self.halt.set()
        if self.is_alive():
            self.join()
