"""The durable engine: jobs and steps in the database, claimed and run by workers.

``store`` holds every state change (submit, claim, complete, fail, release, heartbeat,
reap), ``claim`` the claim query, ``clock`` the injectable time source.
"""

from podmill.engine.claim import ClaimedStep
from podmill.engine.clock import Clock, ManualClock, SystemClock
from podmill.engine.store import Store, Waiter

__all__ = ["ClaimedStep", "Clock", "ManualClock", "Store", "SystemClock", "Waiter"]
