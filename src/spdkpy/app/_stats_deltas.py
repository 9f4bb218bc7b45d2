"""Per-interval deltas beside SPDK's totals in the stats RPCs (deviation 5; spdk/spdk#2037).

SPDK's ``thread_get_stats``, ``thread_get_pollers`` and ``framework_get_reactors`` report totals
since start, so every tool has to keep the previous answer to show a rate. spdkpy keeps it for
them: each answer also carries ``"interval_ticks"`` (ticks since the previous snapshot of the
same window) and, per entry, a ``"delta"`` object with the changes of the counting fields.

Which previous snapshot? With params ``{"window": NAME}`` (spdkpy's one extension param on these
methods), the window NAME. Otherwise the previous call on the same connection, if it made one,
else the shared default window, so that repeated ``spdk-rpc thread_get_stats`` runs (one
connection each) still see deltas since the last run. The first snapshot of a window counts from
the start of the app. SPDK's own fields are never changed.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Final, final

__all__ = ["DeltaTracker", "DeltaWindowError"]

_DEFAULT_WINDOW: Final = ""
_MAX_NAMED_WINDOWS: Final = 64

# The counting fields of each method's entries, by method; entry identity is the key function.
_THREAD_FIELDS: Final = ("busy", "idle", "messages_run", "messages_refused")
_REACTOR_FIELDS: Final = ("busy", "idle", "sleeps", "events_run")
_POLLER_FIELDS: Final = ("run_count", "busy_count")
_POLLER_KINDS: Final = ("active_pollers", "timed_pollers", "paused_pollers")


class DeltaWindowError(ValueError):
    """Bad ``window`` params (not a string, or too many named windows)."""


@dataclass(frozen=True, slots=True)
class _Snapshot:
    ticks: int
    counters: dict[object, dict[str, int]]


@final
class DeltaTracker:
    """Remembers the previous snapshot of each window and annotates new answers."""

    def __init__(self, start_ticks: int) -> None:
        self._start = start_ticks
        self._lock = threading.Lock()
        self._named: dict[tuple[str, str], _Snapshot] = {}
        self._by_client: weakref.WeakKeyDictionary[object, dict[str, _Snapshot]] = (
            weakref.WeakKeyDictionary()
        )

    @staticmethod
    def window_of(params: object) -> str | None:
        """The window NAME in ``{"window": NAME}``, ``None`` for no params; else an error."""
        if params is None:
            return None
        if isinstance(params, dict) and set(params) == {"window"}:
            name = params["window"]
            if isinstance(name, str) and name:
                return name
        raise DeltaWindowError('the only parameter is {"window": "<non-empty name>"}')

    def annotate(
        self, method: str, result: dict[str, object], now: int, window: str | None, client: object
    ) -> dict[str, object]:
        """Add ``interval_ticks`` and per-entry ``delta`` to ``result`` (in place); returns it."""
        current = self._extract(method, result)
        snapshot = _Snapshot(now, current)
        with self._lock:
            previous = self._previous(method, window, client)
            self._store(method, window, client, snapshot)
        base_ticks = previous.ticks if previous is not None else self._start
        base = previous.counters if previous is not None else {}
        result["interval_ticks"] = max(0, now - base_ticks)
        self._apply(method, result, base)
        return result

    def _previous(self, method: str, window: str | None, client: object) -> _Snapshot | None:
        if window is not None:
            return self._named.get((method, window))
        if client is not None:
            mine = self._by_client.get(client)
            if mine is not None and method in mine:
                return mine[method]
        return self._named.get((method, _DEFAULT_WINDOW))

    def _store(self, method: str, window: str | None, client: object, snapshot: _Snapshot) -> None:
        if window is not None:
            if (method, window) not in self._named and len(self._named) >= _MAX_NAMED_WINDOWS:
                raise DeltaWindowError(f"too many named windows (at most {_MAX_NAMED_WINDOWS})")
            self._named[(method, window)] = snapshot
            return
        self._named[(method, _DEFAULT_WINDOW)] = snapshot
        if client is not None:
            try:
                self._by_client.setdefault(client, {})[method] = snapshot
            except TypeError:  # not weak-referenceable: the default window serves it
                pass

    # ------------------------------------------------------------------ per method

    @staticmethod
    def _extract(method: str, result: dict[str, object]) -> dict[object, dict[str, int]]:
        out: dict[object, dict[str, int]] = {}
        if method == "framework_get_reactors":
            for reactor in _dicts(result.get("reactors")):
                out[reactor.get("lcore")] = _fields(reactor, _REACTOR_FIELDS)
                for poller in _dicts(reactor.get("active_pollers")):
                    out[
                        ("poller", reactor.get("lcore"), poller.get("thread_id"), poller.get("id"))
                    ] = {"busy_count": _int(poller.get("busy_count"))}
            return out
        for thread in _dicts(result.get("threads")):
            if method == "thread_get_stats":
                out[thread.get("id")] = _fields(thread, _THREAD_FIELDS)
                continue
            for kind in _POLLER_KINDS:
                for poller in _dicts(thread.get(kind)):
                    out[(thread.get("id"), poller.get("id"))] = _fields(poller, _POLLER_FIELDS)
        return out

    @staticmethod
    def _apply(method: str, result: dict[str, object], base: dict[object, dict[str, int]]) -> None:
        def delta(entry: dict[str, object], key: object, fields: tuple[str, ...]) -> dict[str, int]:
            old = base.get(key, {})
            change = {f: _int(entry.get(f)) - old.get(f, 0) for f in fields}
            entry["delta"] = change
            return change

        if method == "framework_get_reactors":
            for reactor in _dicts(result.get("reactors")):
                lcore = reactor.get("lcore")
                change = delta(reactor, lcore, _REACTOR_FIELDS)
                # Which pollers keep this reactor awake: if it never slept in the interval, the
                # active pollers that reported busy in it.
                spinning = change["sleeps"] == 0 and change["busy"] > 0
                awake_by: list[str] = []
                if spinning:
                    for poller in _dicts(reactor.get("active_pollers")):
                        key = ("poller", lcore, poller.get("thread_id"), poller.get("id"))
                        before = base.get(key, {}).get("busy_count", 0)
                        if _int(poller.get("busy_count")) > before:
                            awake_by.append(f"{poller.get('thread')}/{poller.get('name')}")
                reactor["mode"] = "spinning" if spinning else "sleeping"
                reactor["awake_by"] = awake_by
            return
        for thread in _dicts(result.get("threads")):
            if method == "thread_get_stats":
                delta(thread, thread.get("id"), _THREAD_FIELDS)
                continue
            for kind in _POLLER_KINDS:
                for poller in _dicts(thread.get(kind)):
                    delta(poller, (thread.get("id"), poller.get("id")), _POLLER_FIELDS)


def _dicts(value: object) -> list[dict[str, object]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _fields(entry: dict[str, object], fields: tuple[str, ...]) -> dict[str, int]:
    return {f: _int(entry.get(f)) for f in fields}
