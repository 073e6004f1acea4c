"""An in-memory :class:`scaler.ports.Journal` for replays and tests: the SQLite journal's
semantics without a file or an fsync.

``scaler replay`` runs the daemon's engine over hundreds of thousands of simulated seconds; the
engine journals every order intent and flushes its funding and risk state every few simulated
seconds, which on the durable :class:`~scaler.adapters.journal.SqliteJournal` costs an fsync
each. A replay has nothing to recover after a crash, so it journals here instead.

Same contract as the SQLite journal, call for call:

- ``record_intent`` raises :class:`~scaler.errors.InvariantViolation` for an id already journaled;
- ``record_update`` makes a report the latest one when it is further along the lifecycle
  (intended, then open, then terminal) or as far along and not older, so a late "open" never
  resurrects a filled order;
- ``record_fill`` is idempotent per ``(venue, symbol, fill_id)``;
- ``save_state`` refuses NaN and infinities (``ValueError``) and stores a JSON copy, so what
  ``load_state`` returns is a fresh object that the caller may mutate, with floats exact.

To keep memory flat over a long replay it keeps only what the port can be asked for: the latest
status of every order (not the history of updates), the requests of unresolved intents, the
identities of the fills seen and the named states.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from scaler.domain.orders import Fill, OrderRequest, OrderStatus, OrderUpdate
from scaler.errors import InvariantViolation

_UNRESOLVED = frozenset((OrderStatus.INTENDED, OrderStatus.OPEN))


def _rank(status: OrderStatus) -> int:
    if status.is_terminal:
        return 2
    return 1 if status is OrderStatus.OPEN else 0


class MemoryJournal:
    """The journal in process memory; lost when the process ends (by design)."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[OrderStatus, int]] = {}
        self._unresolved: dict[str, OrderRequest] = {}
        self._fill_ids: set[tuple[str, str, str]] = set()
        self._states: dict[str, str] = {}
        self.intents_recorded = 0
        self.updates_recorded = 0

    # -- orders -------------------------------------------------------------------------------

    def record_intent(self, request: OrderRequest) -> None:
        """Record an order before it is sent; a second intent with the same id is a bug."""
        cid = request.client_order_id
        if cid in self._latest:
            raise InvariantViolation(f"order intent {cid!r} is already journaled")
        self._latest[cid] = (OrderStatus.INTENDED, request.ts_created_ns)
        self._unresolved[cid] = request
        self.intents_recorded += 1

    def record_update(self, update: OrderUpdate) -> None:
        """Let a venue report become the latest if it supersedes the one held."""
        self.updates_recorded += 1
        cid = update.client_order_id
        latest = self._latest.get(cid)
        if latest is not None:
            status, ts_ns = latest
            new_rank, old_rank = _rank(update.status), _rank(status)
            if new_rank < old_rank or (new_rank == old_rank and update.ts_ns < ts_ns):
                return
        self._latest[cid] = (update.status, update.ts_ns)
        if update.status not in _UNRESOLVED:
            self._unresolved.pop(cid, None)

    def record_fill(self, fill: Fill) -> None:
        """Record an execution; the same ``(venue, symbol, fill_id)`` again is a no-op."""
        self._fill_ids.add((fill.key.venue, fill.key.symbol, fill.fill_id))

    @property
    def fills_recorded(self) -> int:
        return len(self._fill_ids)

    def unresolved_intents(self) -> list[OrderRequest]:
        """Intents whose latest status is intended or open, oldest first."""
        return sorted(self._unresolved.values(), key=lambda r: (r.ts_created_ns, r.client_order_id))

    def order_status(self, client_order_id: str) -> OrderStatus | None:
        """The latest status; ``INTENDED`` for an intent with no update; ``None`` if unknown."""
        latest = self._latest.get(client_order_id)
        return None if latest is None else latest[0]

    def orders_by_status(self) -> dict[str, int]:
        """How many orders have each latest status; every status is present, zero included."""
        counts = Counter(status.value for status, _ in self._latest.values())
        return {status.value: counts.get(status.value, 0) for status in OrderStatus}

    # -- state --------------------------------------------------------------------------------

    def save_state(self, name: str, value: Mapping[str, Any]) -> None:
        """Replace the state named ``name``; NaN or inf is ``ValueError``, as in SQLite."""
        self._states[name] = json.dumps(dict(value), allow_nan=False, separators=(",", ":"))

    def load_state(self, name: str) -> dict[str, Any] | None:
        """A fresh copy of the state last saved under ``name``, or ``None`` if none was."""
        text = self._states.get(name)
        if text is None:
            return None
        value = json.loads(text)
        if not isinstance(value, dict):  # save_state only stores objects
            raise InvariantViolation(f"journal state {name!r} is not a JSON object")
        return value
