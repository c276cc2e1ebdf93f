"""`darkfab run --forever` on a paused factory: it serves the champion but starts no campaign, not even to
finish an open one, until the factory is resumed."""

from __future__ import annotations

from pathlib import Path

import pytest

from darkfab.cli.lifecycle import run_if_needed
from darkfab.errors import PausedError
from darkfab.runtime import Factory
from darkfab.spec import load_spec
from darkfab.store import Pauses, Store

from ..helpers.factories import small_factory

FACTORY = small_factory("paused_loop", source="sklearn:iris", budget="{trials: 2}")


def test_a_paused_factory_starts_no_campaign_until_resumed(tmp_path: Path) -> None:
    (tmp_path / "factory.yaml").write_text(FACTORY)
    with Store(str(tmp_path / "store" / "darkfab.db")) as store:
        f = Factory(load_spec(tmp_path / "factory.yaml"), store=store)
        first = f.run()
        assert first.champion is not None
        fid = store.get_factory("paused_loop").id
        Pauses(store).pause(fid, person="ada", reason="maintenance")
        open_one = store.create_campaign(
            fid, budget={"trials": 1}, trigger="drift", seed=0, data_fingerprint="sha256:whatever"
        )
        asked: list[Factory] = []
        assert run_if_needed(f, lambda g, trigger: asked.append(g)) is None
        assert asked == []  # serves the champion, runs nothing
        with pytest.raises(PausedError, match="factory 'paused_loop' is paused .*maintenance"):
            f.run()
        assert store.get_campaign(open_one.id).status == "running"  # untouched
        Pauses(store).resume(fid, person="ada", reason="done")
        run_if_needed(f, lambda g, trigger: asked.append(g))
        assert len(asked) == 1  # the open campaign is wanted again
