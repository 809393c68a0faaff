"""Lifecycle housekeeping: SLA breaches, open-alert gauges, trimming.

The transitions themselves (new → acknowledged → dispatched → resolved | dismissed, 409 on an
illegal step) are ``AlertStore.transition``; this runs the clock-driven part in the background.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import get_args

from camera_hub import metrics
from camera_hub.alerts.model import Alert
from camera_hub.alerts.store import AlertStore
from camera_hub.events import AlertType

log = logging.getLogger(__name__)


async def refresh_open_gauges(store: AlertStore) -> None:
    for (type_, state), n in (await store.open_counts()).items():
        metrics.ALERTS_OPEN.labels(type_, state).set(n)


def _count_breach(alert: Alert) -> None:
    metrics.SLA_BREACHES.labels(alert.type).inc()


async def housekeeping(store: AlertStore, *, interval_s: float = 5.0, trim_every_s: float = 600.0) -> None:
    """Forever: mark SLA breaches (each counted once across processes), refresh gauges, trim."""
    for alert_type in get_args(AlertType):  # 0 series from the start: "no breach" is data, not a gap
        metrics.SLA_BREACHES.labels(alert_type)
    last_trim = 0.0
    while True:
        try:
            await store.sweep_sla(on_breach=_count_breach)
            await refresh_open_gauges(store)
            if time.monotonic() - last_trim > trim_every_s:
                await store.trim()
                last_trim = time.monotonic()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis away for a while: try again next round
            log.warning("alert housekeeping: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)
