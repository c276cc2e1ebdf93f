"""The contract every store backend passes (SQLite and PostgreSQL).

Use it by subclassing in a test module that provides a ``store`` fixture yielding a fresh, empty
:class:`~darkfab.store.Store`::

    from darkfab.testing.store_contract import StoreContract

    class TestMyBackend(StoreContract):
        pass

The tests reach the database only through the public API, except where they play an attacker who edits
the event table with raw SQL (through a separate engine on ``store.url``), and where they move the store's
``clock`` instead of sleeping.
"""

from __future__ import annotations

from ._store_chain import ChainContract
from ._store_records import RecordsContract


class StoreContract(RecordsContract, ChainContract):
    """pytest-style tests; the subclass provides the ``store`` fixture (a fresh, empty store)."""
