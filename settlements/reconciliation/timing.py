"""How long each step of a reconciliation takes: logged at DEBUG by `settlements.reconciliation.timing`
(PGI_LOG_LEVEL=DEBUG shows them), so the steps of a slow run can be told apart."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Iterator

logger = logging.getLogger("settlements.reconciliation.timing")


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Log the step's wall time (also when it fails)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        logger.debug("%s: %.3f s", name, time.perf_counter() - started)
