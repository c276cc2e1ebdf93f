"""`darkfab.runtime`'s references: which factory a reference means, and a stored spec rebuilt."""

from __future__ import annotations

from pathlib import Path

import pytest

from darkfab.errors import SpecError
from darkfab.runtime import resolve_factory, stored_spec
from darkfab.spec import spec_from_dict
from darkfab.store import Store


def _store(tmp_path: Path, *names: str) -> Store:
    st = Store(f"sqlite:///{tmp_path / 'refs.db'}")
    for name in names:
        spec = spec_from_dict({"name": name, "data": {"source": "sklearn:iris"}})
        st.ensure_factory(name, spec.model_dump(mode="json"))
    return st


def test_a_name_a_file_or_the_only_factory(tmp_path: Path) -> None:
    with _store(tmp_path, "iris") as st:
        assert resolve_factory(st, None) == "iris"
        assert resolve_factory(st, "iris") == "iris"
        (tmp_path / "f.yaml").write_text("name: iris\ndata: {source: sklearn:iris}\n")
        assert resolve_factory(st, str(tmp_path / "f.yaml")) == "iris"
        assert stored_spec(st, "iris").name == "iris"


def test_each_mistake_names_the_choices_and_the_fix(tmp_path: Path) -> None:
    with _store(tmp_path) as st, pytest.raises(SpecError, match=r"holds no factory yet; fix: run `darkfab run`"):
        resolve_factory(st, None)
    with _store(tmp_path, "a", "b") as st:
        with pytest.raises(SpecError, match=r"several factories \(a, b\); fix: name one"):
            resolve_factory(st, None)
        with pytest.raises(SpecError, match=r"no factory 'nope' in the store .*; fix: use one of a, b"):
            resolve_factory(st, "nope")


def test_the_model_server_asks_the_same_question(tmp_path: Path) -> None:
    # darkfab.serve sits below the runtime; serve(factory=None) must still fail as the command line does
    import darkfab.serve

    with _store(tmp_path) as st, pytest.raises(SpecError, match=r"holds no factory yet; fix: run `darkfab run`"):
        darkfab.serve.serve(store=st)
    with _store(tmp_path, "a", "b") as st:
        with pytest.raises(SpecError, match=r"several factories \(a, b\); fix: name one"):
            darkfab.serve.serve(store=st)
        with pytest.raises(SpecError, match=r"no factory 'nope' in the store .*; fix: use one of a, b"):
            darkfab.serve.serve("nope", store=st)
    assert darkfab.serve.resolve_factory is resolve_factory
