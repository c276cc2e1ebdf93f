"""Script trainers: editable blocks, edits confined to them, diffs, and models that carry their code."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import numpy as np
import pytest

from darkfab.errors import SpecError
from darkfab.patch import CodePatch
from darkfab.spec import TrainerSpec, load_spec
from darkfab.testing.executor_contract import digits_payload
from darkfab.train import (
    ScriptError,
    ScriptTrainer,
    TrialRequest,
    UntrustedCodeError,
    apply_edits,
    block_texts,
    load_model,
    prepare,
    resolve_trainer,
    run_trial,
    trust_script_code,
    unified_diff,
)

SCRIPT = textwrap.dedent(
    """\
    import numpy as np

    # darkfab: editable model
    def scores(X, w):
        return X @ w
    # darkfab: end model

    # darkfab: editable loss
    SMOOTHING = 1.0
    # darkfab: end loss


    class Centroids:
        def __init__(self, centres):
            self.centres = centres

        def predict_proba(self, X):
            d = -((X[:, None, :] - self.centres[None]) ** 2).sum(-1)
            e = np.exp(d - d.max(axis=1, keepdims=True)) + SMOOTHING * 0.0
            return e / e.sum(axis=1, keepdims=True)


    def train(X, y, X_valid, params, report):
        k = params["n_classes"]
        return Centroids(np.stack([X[y == c].mean(axis=0) for c in range(k)]))
    """
)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    return path


def test_blocks_are_found_by_name() -> None:
    blocks = block_texts(SCRIPT)
    assert list(blocks) == ["model", "loss"]
    assert blocks["loss"] == "SMOOTHING = 1.0\n"


def test_an_edit_inside_its_block_is_applied_and_diffed() -> None:
    patched = apply_edits(SCRIPT, [{"block": "loss", "search": "1.0", "replace": "0.5"}])
    assert "SMOOTHING = 0.5" in patched
    diff = unified_diff(SCRIPT, patched)
    assert "-SMOOTHING = 1.0" in diff and "+SMOOTHING = 0.5" in diff
    assert diff.startswith("--- a/train.py")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"block": "loss", "search": "class Centroids", "replace": "x"}, "occurs outside the block"),
        ({"block": "loss", "search": "nowhere", "replace": "x"}, "not in block 'loss'"),
        ({"block": "model", "search": "X", "replace": "Y"}, "occurs 2 times"),
        ({"block": "nope", "search": "a", "replace": "b"}, "the blocks are: model, loss"),
        ({"block": "loss", "search": "1.0", "replace": "1.0\n# darkfab: end loss"}, "markers"),
        ({"block": "loss", "search": "SMOOTHING = 1.0", "replace": "SMOOTHING = ("}, "does not parse"),
        ({"block": "loss", "search": "", "replace": "x"}, "`search` is empty"),
        ({"block": "loss", "search": "1.0"}, "must all be strings"),
    ],
)
def test_bad_edits_are_refused_with_the_reason(edit: dict[str, str], message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        apply_edits(SCRIPT, [edit])


def test_unbalanced_markers_are_refused() -> None:
    with pytest.raises(ScriptError, match="never closed"):
        block_texts("# darkfab: editable a\nx = 1\n")
    with pytest.raises(ScriptError, match="closes no open block"):
        block_texts("# darkfab: end a\n")


def test_a_script_trial_runs_and_its_model_carries_the_exact_code(script: Path) -> None:
    spec = TrainerSpec(name="centroids", script=str(script))
    assert isinstance(resolve_trainer(spec, "classification"), ScriptTrainer)
    state = prepare(digits_payload(rows=400))
    patch = CodePatch(({"block": "loss", "search": "1.0", "replace": "2.0"},))
    out = run_trial(state, TrialRequest(1, spec, {}, patch=patch))
    assert out.valid_predictions.shape == (100, 10)
    assert (out.valid_predictions.argmax(1) >= 0).all()
    with pytest.raises(UntrustedCodeError, match="DARKFAB_TRUST_CODE"):
        load_model(out.artifact)
    trust_script_code()
    try:
        model = load_model(out.artifact)
    finally:
        trust_script_code(False)
    assert "SMOOTHING = 2.0" in model.estimator.source
    assert "+SMOOTHING = 2.0" in model.estimator.diff
    np.testing.assert_allclose(model.predict_raw(state.payload.X_valid), out.valid_predictions)


def test_a_bad_patch_fails_the_trial_with_the_reason(script: Path) -> None:
    state = prepare(digits_payload(rows=200))
    spec = TrainerSpec(name="centroids", script=str(script))
    with pytest.raises(ScriptError, match="edit 1: the search text is not in block 'loss'"):
        bad = CodePatch(({"block": "loss", "search": "x = 9", "replace": ""},))
        run_trial(state, TrialRequest(1, spec, {}, patch=bad))


def test_untrusted_unpickling_never_runs_the_source() -> None:
    from darkfab.train import ScriptEstimator

    est = ScriptEstimator(None, source="raise SystemExit('ran')", diff="", task="classification")
    data = pickle.dumps(est)
    with pytest.raises(UntrustedCodeError):
        pickle.loads(data)


def test_the_factory_file_resolves_script_paths_and_refuses_two_kinds(tmp_path: Path, script: Path) -> None:
    f = tmp_path / "factory.yaml"
    f.write_text("name: s\ndata: {source: sklearn:digits}\ntrainers: [{name: mlp, script: train.py}]\n")
    assert load_spec(f).trainers[0].script == str(script.resolve())
    with pytest.raises(ValueError, match="either `estimator` or `script`"):
        TrainerSpec(name="x", estimator="a.b:C", script="t.py")
    f.write_text("name: s\ndata: {source: sklearn:digits}\ntrainers: [{name: mlp, script: nope.py}]\n")
    with pytest.raises(SpecError, match=r"trainers\[mlp\].script"):
        load_spec(f)
    with pytest.raises(ScriptError, match="cannot read script"):
        ScriptTrainer("x", str(tmp_path / "missing.py")).read()


def test_a_script_model_pickled_under_the_modules_old_name_still_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from darkfab.execute._sandbox import check_artifact, is_script_artifact
    from darkfab.train import DarkfabModel, ScriptEstimator

    est = ScriptEstimator(None, source="SEEN = 1\n", diff="", task="classification")
    with monkeypatch.context() as m:
        m.setattr(ScriptEstimator, "__module__", "darkfab.train._script")  # as models made before the rename
        old = pickle.dumps(est)
    assert b"darkfab.train._script" in old and b"darkfab.train.script" not in old
    model = DarkfabModel.__new__(DarkfabModel)
    model.__dict__["estimator"] = est
    with monkeypatch.context() as m:
        m.setattr(ScriptEstimator, "__module__", "darkfab.train._script")
        artifact = pickle.dumps(model)
    assert is_script_artifact(artifact) and is_script_artifact(pickle.dumps(est))
    check_artifact(artifact)
    trust_script_code()
    try:
        loaded = pickle.loads(old)
    finally:
        trust_script_code(False)
    assert isinstance(loaded, ScriptEstimator) and loaded.source == "SEEN = 1\n"
