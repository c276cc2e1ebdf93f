from __future__ import annotations

import pytest

from darkfab.spec import TrainerSpec
from darkfab.testing.trainer_contract import TrainerContract
from darkfab.train import BUILTINS

CASES = [(task, name) for name, make in BUILTINS.items() for task in make().tasks]
CASES.append(("classification", "tree-by-path"))


class TestBuiltinTrainers(TrainerContract):
    @pytest.fixture(params=CASES, ids=[f"{n}-{t}" for t, n in CASES])
    def case(self, request):
        task, name = request.param
        if name == "tree-by-path":
            return task, TrainerSpec(
                name=name, estimator="sklearn.tree:DecisionTreeClassifier", params={"max_depth": 4}
            )
        return task, TrainerSpec(name=name)
