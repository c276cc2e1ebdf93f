"""Alembic environment for the darkfab store.

darkfab runs migrations from code (``darkfab.store.upgrade``) and hands this script an open connection
inside a locked transaction. Run by the ``alembic`` command instead (``alembic -c
src/darkfab/store/migrations/alembic.ini revision -m ...``), it connects to ``$DARKFAB_STORE`` or the
default store itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from darkfab.store._engine import BEGIN_OPTION, make_engine
from darkfab.store._schema import metadata
from darkfab.store._url import resolve_store_url

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return resolve_store_url(config.get_main_option("sqlalchemy.url") or None)


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
    else:
        engine = make_engine(_url())
        try:
            with engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"}).connect() as conn:
                _run(conn)
                conn.commit()
        finally:
            engine.dispose()
