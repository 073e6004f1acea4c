"""``scaler exchange-sim``: the paper exchange served in the Deribit v2 API dialect.

The unmodified ccxt ``deribit`` classes (REST and ccxt.pro) trade against it on 127.0.0.1 when
pointed at it with ``exchange.urls['api'] = {'rest': sim.url, 'ws': sim.ws_url}``. See
``docs/exchange-sim.md`` for what it serves, its faults and its admin API.
"""

from scaler.adapters.sim.auth import Credentials, load_or_create_credentials
from scaler.adapters.sim.dialect import instrument_name
from scaler.adapters.sim.faults import ErrorKind, Faults
from scaler.adapters.sim.server import ExchangeSim
from scaler.adapters.sim.state import OrderRequestRecord, SimStore

__all__ = [
    "Credentials",
    "ErrorKind",
    "ExchangeSim",
    "Faults",
    "OrderRequestRecord",
    "SimStore",
    "instrument_name",
    "load_or_create_credentials",
]
