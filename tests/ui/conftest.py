"""A store holding a real small campaign (run by the `darkfab` command on iris), hostile records added
through the Store API, and the console serving it from a real `darkfab ui` process on loopback."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from darkfab.patch import CodePatch
from darkfab.store import Store

from ..helpers.factories import small_factory
from ..helpers.loopback import free_port, wait_answers

REPO = Path(__file__).resolve().parents[2]
TOKEN = "console-test-token-0123456789"
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'

FACTORY = """\
name: iris_console
data: {source: "sklearn:iris", target: target}
trainers:
  - name: logistic_regression
  - name: random_forest
    space:
      n_estimators: {low: 10, high: 40}
objective: {constraints: ["latency_p95_ms <= 100000"]}  # never binding: the campaign page shows its Pareto front
search: {proposer: tpe, startup_trials: 2}
budget: {trials: 4}
execution: {workers: 2, trial_timeout: 60s, latency_rows: 3}
gate: {bootstrap: 200}
"""

DIFF = f"""\
--- train.py
+++ train.py
@@ -1,2 +1,2 @@
-model = Ridge()
+model = Ridge(alpha=0.5)  # {HOSTILE}
 return model
"""


@dataclass(frozen=True)
class ConsoleSite:
    url: str  # the console's base address
    store_url: str
    factory: str
    campaign_id: int  # the real campaign
    hostile_campaign: int  # a second campaign holding the two trials below
    hostile_trial: int  # failed, with HOSTILE in its error and log
    code_trial: int  # a code edit with a diff and the LLM call behind it


def console_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("DARKFAB_STORE", None)
    env["DARKFAB_UI_TOKEN"] = TOKEN
    return env


def _add_hostile_records(store_url: str) -> tuple[int, int, int]:
    """In a second campaign: a failed trial whose error is a script, and a code-edit trial with its LLM
    call. Then version 2 (a copy of the champion) takes the champion alias, so there is a rollback to make."""
    with Store(store_url) as st:
        factory = st.get_factory("iris_console")
        first = st.latest_campaign(factory.id)
        assert first is not None
        campaign = st.create_campaign(
            factory.id, budget={"trials": 2}, trigger="drift", seed=1, data_fingerprint=first.data_fingerprint
        )
        bad = st.add_trial(
            campaign.id,
            proposer="llm",
            trainer="random_forest",
            params={"n_estimators": 10},
            reason=HOSTILE,
            start_as="test-worker",
        )
        st.finish_trial(
            bad.id, state="failed", error=f"ValueError: {HOSTILE}", failure_kind="trainer", log_tail=HOSTILE
        )
        code = st.add_trial(
            campaign.id,
            proposer="llm_code",
            trainer="script",
            params={},
            patch=CodePatch(({"block": "model", "search": "Ridge()", "replace": "Ridge(alpha=0.5)"},), DIFF),
            reason="an edit the LLM proposed",
            key="edit-1",
            start_as="test-worker",
        )
        st.finish_trial(
            code.id,
            state="completed",
            value=0.9,
            reward=0.9,
            feasible=False,
            metrics={"accuracy": 0.9},
            breakdown={"terms": {}, "violations": [f"latency_p95_ms 80 > 50 {HOSTILE}"], "reward": 0.9},
        )
        st.add_llm_call(
            factory_id=factory.id,
            campaign_id=campaign.id,
            call_id="call-1",
            proposer="llm_code",
            model="fake-model",
            request=[{"role": "user", "content": f"improve this script {HOSTILE}"}],
            response=f"here is an edit {HOSTILE}",
            status="ok",
            prompt_tokens=120,
            completion_tokens=40,
            cost=0.002,
            proposal_keys=["edit-1"],
        )
        st.finish_campaign(campaign.id, status="stopped", summary={}, reason=f"stopped by a test {HOSTILE}")
        champion = st.get_model_version(factory.id, "champion")
        st.add_model_version(
            factory.id,
            artifact_hash=champion.artifact_hash,
            artifact_path=champion.artifact_path,
            trial_id=champion.trial_id,
            trainer=champion.trainer,
            params=champion.params,
            metrics=champion.metrics,
            lineage={**champion.lineage, "parents": [champion.version]},
            reason="a second version, so there is something to roll back from",
            aliases=("champion",),
        )
        return campaign.id, bad.id, code.id


@contextlib.contextmanager
def serve_console(store_url: str, cwd: Path, env: dict[str, str]) -> Iterator[str]:
    """`darkfab ui` over ``store_url`` in its own process on a free loopback port; yields its address."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "darkfab", "ui", "--port", str(port), "--store", store_url],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answers(proc, f"{url}/login", pause_s=0.2)  # darkfab ui started
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stdout:
            proc.stdout.close()


def _ran(tmp: Path, factory: str) -> tuple[str, dict[str, str]]:
    """``darkfab run`` of the factory file ``factory`` in ``tmp``: the store's URL and the environment used."""
    (tmp / "factory.yaml").write_text(factory)
    store_url = f"sqlite:///{tmp / 'store.db'}"
    env = console_env(tmp)
    run = subprocess.run(
        [sys.executable, "-m", "darkfab", "run", "factory.yaml", "--store", store_url],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    return store_url, env


OpenClient = Callable[[str], httpx.Client]


@pytest.fixture
def clients() -> Iterator[OpenClient]:
    """Opens an HTTP client on a console's URL; every one is closed after the test (an open one leaks its socket)."""
    with contextlib.ExitStack() as stack:
        yield lambda url: stack.enter_context(httpx.Client(base_url=url, timeout=60))


@pytest.fixture(scope="package")
def console_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleSite]:
    """Built once for tests/ui (package scope: the campaign is the slow part, every module reads it)."""
    tmp = tmp_path_factory.mktemp("console")
    store_url, env = _ran(tmp, FACTORY)
    with Store(store_url) as st:
        real = st.latest_campaign(st.get_factory("iris_console").id)
    assert real is not None
    hostile_campaign, hostile, code = _add_hostile_records(store_url)
    with serve_console(store_url, tmp, env) as url:
        yield ConsoleSite(url, store_url, "iris_console", real.id, hostile_campaign, hostile, code)


# -- a second store: a factory whose gate winner waits for approval (the approval and pause levers) -----

GATED_FACTORY = small_factory(
    "iris_gated", source="sklearn:iris", budget="{trials: 2}", gate="{bootstrap: 200, approval: required}"
)
GATED_NAME = "iris_gated"


@dataclass(frozen=True)
class GatedSite:
    url: str
    store_url: str


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def logged_in(clients: OpenClient, site: ConsoleSite | GatedSite, person: str = "ada") -> tuple[httpx.Client, str]:
    """A client (closed after the test) logged in to the console as ``person`` with the admin token, and the
    CSRF token of its forms."""
    client = clients(site.url)
    r = client.post("/login", data={"person": person, "token": TOKEN})
    assert r.status_code == 303, r.text
    match = CSRF.search(client.get("/").text)
    assert match, "a logged-in page carries the CSRF token in its forms"
    return client, match.group(1)


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatedSite]:
    """One campaign whose version 1 waits as ``pending``, and the console over it (per module: the browser
    tests approve it, the HTTP tests need it still pending)."""
    tmp = tmp_path_factory.mktemp("gated-console")
    store_url, env = _ran(tmp, GATED_FACTORY)
    with Store(store_url) as st:
        assert st.aliases(st.get_factory(GATED_NAME).id) == {"pending": 1}
    with serve_console(store_url, tmp, env) as url:
        yield GatedSite(url, store_url)
