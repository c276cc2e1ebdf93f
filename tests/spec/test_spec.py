from __future__ import annotations

import json

import pytest
import yaml

from darkfab.errors import SpecError
from darkfab.spec import STARTER, default_spec, json_schema, load_spec, spec_from_dict, with_overrides


def write(tmp_path, text: str):
    p = tmp_path / "factory.yaml"
    p.write_text(text)
    return p


def test_starter_file_is_valid_and_keeps_its_choices(tmp_path):
    spec = load_spec(write(tmp_path, STARTER))
    assert spec.name == "my-factory"
    assert [t.name for t in spec.trainers] == ["lightgbm", "random_forest", "logistic_regression"]
    assert spec.trainers[2].space["C"].log is True
    assert [str(c) for c in spec.objective.constraints] == ["latency_p95_ms <= 20", "model_size_mb <= 50"]
    assert spec.budget.time == 300.0


def test_default_factory_is_digits_with_two_workers():
    spec = default_spec()
    assert spec.data.source == "sklearn:digits"
    assert spec.execution.workers == 2
    assert spec.budget.trials and spec.budget.time


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("name: x\ndata: {source: a.csv, targt: y}\n", ["factory.yaml", "data.targt", "Extra inputs", "fix"]),
        ("name: x\ndata: {source: a.csv}\nbudget: {trials: 0}\n", ["budget.trials", "greater than or equal to 1"]),
        ("name: x\ndata: {source: a.csv}\nobjective: {metric: acuracy}\n", ["objective", "acuracy", "accuracy"]),
        ("name: x\ndata: {source: a.csv}\nobjective: {constraints: ['latency <> 3']}\n", ["latency <> 3", "metric <="]),
        ("name: x\ndata: {source: a.csv}\nsearch: {proposer: grid}\n", ["search.proposer", "'tpe'"]),
        ("name: x\ndata: {source: a.csv}\nbudget: {time: soon}\n", ["budget.time", "'soon' is not a duration"]),
        ("name: x\ndata: {source: a.csv}\nbudget: {}\n", ["budget", "at least one of"]),
        (
            "name: x\ndata: {source: a.csv}\ntrainers: [{name: a, space: {d: {low: 5, high: 1}}}]\n",
            ["trainers[0].space.d", "low <= high"],
        ),
        ("name: x\ndata: {source: a.csv}\ntrainers: [lightgbm, lightgbm]\n", ["appears twice"]),
        ("name: 'bad name!'\ndata: {source: a.csv}\n", ["name", "letters, digits"]),
        (
            "name: x\ndata: {source: a.csv}\nreward: {judge: {base_url: 'http://h/v1', model: m}}\n",
            ["field `reward`", "reward.constitution lists no principles", "constitution:", "- prefer the simpler"],
        ),
        (
            "name: x\ndata: {source: a.csv}\nreward: {constitution: ['be fair', '  ']}\n",
            ["reward.constitution", "principle 2 is empty", "remove it"],
        ),
        (
            "name: x\ndata: {source: a.csv}\nreward: {constitution: ['Be fair', 'be   fair']}\n",
            ["reward.constitution", "appears twice"],
        ),
        (
            "name: x\ndata: {source: a.csv}\nreward: {judge: {base_url: localhost, model: m}, constitution: [x]}\n",
            ["reward.judge.base_url", "not an http(s) URL"],
        ),
        (
            "name: x\ndata: {source: a.csv}\nreward: {judge: {base_url: 'http://h/v1', model: m, api_key_env: "
            "'sk-abc def'}, constitution: [x]}\n",
            ["reward.judge", "NAME of an environment variable"],
        ),
        ("name: x\ndata: {source: a.csv}\nreward: {judje: {}}\n", ["reward.judje", "Extra inputs"]),
        (
            "name: x\ndata: {source: a.csv}\nregistry: {mlflow: {tracking_uri: ''}}\n",
            ["registry.mlflow.tracking_uri", "is empty", "http://127.0.0.1:5000"],
        ),
        (
            "name: x\ndata: {source: a.csv}\nregistry: {mlflow: {tracking_uri: 'localhost:5000'}}\n",
            ["registry.mlflow.tracking_uri", "must be an MLflow tracking URI", "fix: write e.g."],
        ),
        (
            "name: x\ndata: {source: a.csv}\nregistry: {mlflow: {tracking_uri: 'http://h:5000', on_eror: fail}}\n",
            ["registry.mlflow.on_eror", "Extra inputs", "darkfab schema"],
        ),
        (
            "name: x\ndata: {source: a.csv}\nregistry: {mlflow: {tracking_uri: 'http://h:5000', on_error: stop}}\n",
            ["registry.mlflow.on_error", "'warn' or 'fail'", "values listed"],
        ),
        ("name: x\ndata: {source: a.csv}\nregistry: {mlfow: {}}\n", ["registry.mlfow", "Extra inputs"]),
        ("- just\n- a list\n", ["YAML mapping", "darkfab init"]),
        ("name: x\n  data: [\n", ["not valid YAML", "line"]),
    ],
)
def test_bad_files_name_file_field_rule_and_fix(tmp_path, text, needles):
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text))
    message = str(info.value)
    for needle in needles:
        assert needle in message, message


def test_a_judge_and_its_constitution_load(tmp_path):
    text = (
        "name: x\ndata: {source: a.csv}\nreward:\n  judge: {base_url: 'http://localhost:11434/v1/', model: llama3.1,"
        " max_tokens_total: 5000}\n  constitution:\n    - ' prefer the   simpler model '\n    - never trade fairness\n"
    )
    spec = load_spec(write(tmp_path, text))
    assert spec.reward.judge is not None and spec.reward.judge.base_url == "http://localhost:11434/v1"
    assert spec.reward.judge.max_tokens_total == 5000
    assert spec.reward.constitution == ["prefer the simpler model", "never trade fairness"]
    assert default_spec().reward.judge is None and default_spec().reward.constitution == []


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(SpecError, match="darkfab init"):
        load_spec(tmp_path / "nope.yaml")


def test_relative_data_paths_resolve_against_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "f.yaml"
    p.write_text("name: x\ndata: {source: rows.csv, target: y}\n")
    assert load_spec(p).data.source == str((tmp_path / "sub" / "rows.csv").resolve())


def test_param_types_are_inferred_from_the_yaml_values():
    spec = spec_from_dict(
        yaml.safe_load(
            "name: x\ndata: {source: a.csv}\ntrainers:\n - name: t\n   space:\n"
            "     n: {low: 1, high: 9}\n     lr: {low: 0.01, high: 1, log: true}\n     k: {choices: [a, b]}\n     fixed: 3\n"
        )
    )
    space = spec.trainers[0].space
    assert (space["n"].type, space["lr"].type, space["k"].type, space["fixed"]) == ("int", "float", "categorical", 3)


def test_overrides_replace_budget_and_are_validated():
    spec = with_overrides(default_spec(), trials=7, time="2m", workers=3, seed=5)
    assert (spec.budget.trials, spec.budget.time, spec.execution.workers, spec.search.seed) == (7, 120.0, 3, 5)
    with pytest.raises(SpecError, match="--time"):
        with_overrides(default_spec(), time="forever")
    with pytest.raises(SpecError, match="workers"):
        with_overrides(default_spec(), workers=0)


def test_json_schema_describes_every_section():
    schema = json_schema()
    json.dumps(schema)
    assert {"name", "data", "objective", "trainers", "search", "budget", "execution", "gate", "registry"} <= set(
        schema["properties"]
    )
    mlflow = schema["$defs"]["MlflowRegistrySpec"]
    assert mlflow["required"] == ["tracking_uri"] and set(mlflow["properties"]["on_error"]["enum"]) == {"warn", "fail"}


def test_a_registry_mlflow_section_loads_with_its_defaults(tmp_path):
    spec = load_spec(
        write(tmp_path, "name: x\ndata: {source: a.csv}\nregistry: {mlflow: {tracking_uri: 'http://h:5000/'}}\n")
    )
    assert spec.registry.mlflow is not None
    assert spec.registry.mlflow.tracking_uri == "http://h:5000"
    assert spec.registry.mlflow.on_error == "warn" and spec.registry.mlflow.registered_name is None
    assert load_spec(write(tmp_path, "name: x\ndata: {source: a.csv}\n")).registry.mlflow is None


def test_the_readme_constitution_example_loads():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Asking an AI judge") :]
    block = section[section.index("```yaml\n") + 8 : section.index("```", section.index("```yaml\n") + 8)]
    spec = spec_from_dict({"name": "x", "data": {"source": "a.csv"}, **yaml.safe_load(block)})
    assert spec.reward.judge is not None and spec.reward.judge.api_key_env == "OPENAI_API_KEY"
    assert len(spec.reward.constitution) == 3
