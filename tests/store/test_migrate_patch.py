"""Migration 0011: a code edit moves out of ``params["_patch"]`` / ``["_diff"]`` into the proposal's own columns.

A database is built at revision 0010 with the rows an ``llm_code`` campaign wrote then (a code-edit trial, a
plain one, a model version registered from the code edit), then opened by today's store, then downgraded.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from darkfab.errors import StoreError
from darkfab.patch import CodePatch
from darkfab.store import Store, alembic_config, current_revision, head_revision, metadata

EDITS = [{"block": "prior", "search": "SHIFT = 1.0", "replace": "SHIFT = 0.25"}]
DIFF = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-SHIFT = 1.0\n+SHIFT = 0.25\n"
OLD_PARAMS = {"scale": 2.0, "_patch": EDITS, "_diff": DIFF}
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def _t(name: str, *cols: str) -> sa.TableClause:
    """Table ``name`` with only ``cols`` (as they were at 0010), typed as the store types them."""
    return sa.table(name, *(sa.column(c, metadata.tables[name].c[c].type) for c in cols))


def _at_0010_with_a_code_edit(engine: sa.Engine) -> None:
    """The schema at 0010 and the rows a code-edit campaign wrote then (params carried the edit)."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0010")
        conn.execute(
            _t("factories", "id", "name", "spec", "created_at").insert(),
            [{"id": 1, "name": "f", "spec": {}, "created_at": NOW}],
        )
        campaign = {"id": 1, "factory_id": 1, "number": 1, "status": "finished", "trigger": "manual", "seed": 0}
        campaign |= {"budget": {}, "data_fingerprint": "x", "elapsed_s": 0.0, "cpu_s": 0.0, "summary": {}}
        conn.execute(_t("campaigns", *campaign, "created_at").insert(), [{**campaign, "created_at": NOW}])
        proposal: dict[str, Any] = {"campaign_id": 1, "trainer": "prior", "reason": "r", "key": "", "parents": []}
        conn.execute(
            _t("proposals", "id", "proposer", "params", "created_at", *proposal).insert(),
            [
                {"id": 1, "proposer": "llm_code", "params": OLD_PARAMS, "created_at": NOW, **proposal},
                {"id": 2, "proposer": "tpe", "params": {"scale": 1.0}, "created_at": NOW, **proposal},
            ],
        )
        trial = {"campaign_id": 1, "state": "completed", "attempt": 1, "worker": "w", "seed": 0, "lease_owner": ""}
        trial |= {"log_tail": "", "resources": {}, "intermediate": {}, "created_at": NOW}
        conn.execute(
            _t("trials", "id", "proposal_id", "number", *trial).insert(),
            [{"id": n, "proposal_id": n, "number": n, **trial} for n in (1, 2)],
        )
        version = {"factory_id": 1, "version": 1, "artifact_hash": "0" * 64, "artifact_path": "a", "trial_id": 1}
        version |= {"trainer": "prior", "metrics": {}, "created_at": NOW}
        lineage = {"trial_id": 1, "params": OLD_PARAMS, "factory": "f"}
        conn.execute(
            _t("model_versions", "params", "lineage", *version).insert(),
            [{"params": OLD_PARAMS, "lineage": lineage, **version}],
        )
    assert current_revision(str(engine.url.render_as_string(hide_password=False))) == "0010"


def test_a_code_edit_moves_out_of_params_and_back_on_downgrade(
    url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DARKFAB_ARTIFACTS", str(tmp_path / "arts"))
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        _at_0010_with_a_code_edit(engine)
        with Store(url) as store:  # opening migrates to head
            edited, plain = store.get_trial(1), store.get_trial(2)
            version = store.get_model_version(1, 1)
        assert current_revision(url) == head_revision()
        assert edited.params == {"scale": 2.0}
        assert edited.patch == CodePatch(tuple(EDITS), DIFF)
        assert plain.params == {"scale": 1.0} and plain.patch is None
        assert version.params == {"scale": 2.0} and version.lineage["params"] == {"scale": 2.0}
        assert version.lineage["patch"] == {"edits": EDITS, "diff": DIFF}
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []

        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0010")
        with engine.connect() as conn:
            assert {c["name"] for c in sa.inspect(conn).get_columns("proposals")}.isdisjoint({"patch", "diff"})
            old = _t("proposals", "id", "params")
            params = conn.execute(sa.select(old.c.params).order_by(old.c.id)).scalars().all()
            kept = conn.execute(sa.select(_t("model_versions", "params", "lineage"))).one()
        assert params == [OLD_PARAMS, {"scale": 1.0}]
        assert kept.params == OLD_PARAMS and kept.lineage == {"trial_id": 1, "params": OLD_PARAMS, "factory": "f"}
    finally:
        engine.dispose()


def test_a_code_edit_in_params_is_refused_with_the_fix(
    url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DARKFAB_ARTIFACTS", str(tmp_path / "arts"))
    with Store(url) as store:
        fid = store.ensure_factory("f", {}).id
        cid = store.create_campaign(fid, budget={}, trigger="manual", seed=0, data_fingerprint="x").id
        with pytest.raises(StoreError, match=r"hold \['_diff', '_patch'\].*add_trial\(patch=darkfab.patch.CodePatch"):
            store.add_trial(cid, proposer="llm_code", trainer="prior", params=OLD_PARAMS, reason="r")
        t = store.add_trial(
            cid,
            proposer="llm_code",
            trainer="prior",
            params={"scale": 2.0},
            reason="r",
            patch=CodePatch(tuple(EDITS), DIFF),
        )
        again = store.get_trial(t.id)
        assert again == t and again.patch is not None and again.patch.edit_list() == EDITS
        (proposed,) = [e for e in store.list_events(campaign_id=cid) if e.kind == "proposed"]
        assert proposed.data["params"] == {"scale": 2.0} and proposed.data["patch"] == {"edits": EDITS, "diff": DIFF}
        assert store.verify_chain().ok
