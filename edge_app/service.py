"""Tell systemd how a `digits run` service is doing (sd_notify), so its watchdog can restart a capture that hangs.

Under a unit with `Type=notify` and `WatchdogSec=`, systemd sets $NOTIFY_SOCKET (and $WATCHDOG_USEC) and
expects "READY=1" once and "WATCHDOG=1" more often than the watchdog interval; a process that stops
sending (a camera read that never returns) is killed and restarted. Anywhere else this does nothing.
The protocol is one datagram on a Unix socket, so no library is needed for it.
"""
from __future__ import annotations

import os
import socket
import time

_last_heartbeat = 0.0


def notify(state: str) -> bool:
    """Send `state` ("READY=1", "WATCHDOG=1", "STATUS=...") to systemd; False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError:
        return False
    return True


def heartbeat() -> None:
    """Tell the watchdog the app is alive (at most every half of its interval; cheap to call per frame)."""
    global _last_heartbeat
    interval_us = os.environ.get("WATCHDOG_USEC")
    if not interval_us or not interval_us.isdigit():
        return
    now = time.monotonic()
    if now - _last_heartbeat >= int(interval_us) / 2e6:
        _last_heartbeat = now
        notify("WATCHDOG=1")
