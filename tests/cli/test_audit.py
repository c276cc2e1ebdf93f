"""Attacks on the factory's records and inputs, through the `darkfab` command, as an attacker would try them."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import stat
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from ..helpers.factories import small_factory
from .conftest import CLI, env_for

ESTIMATOR_FACTORY = """\
name: est
data: {{source: "sklearn:breast_cancer", target: target}}
trainers:
  - name: mine
    estimator: "{path}"
budget: {{trials: 2}}
"""


@pytest.mark.parametrize(
    "path",
    ["os:system", "builtins:eval", "collections:OrderedDict"],  # a builtin, a function-like, a class without fit
)
def test_estimator_import_path_must_name_an_estimator_class(cli, tmp_path, path):
    (tmp_path / "factory.yaml").write_text(ESTIMATOR_FACTORY.format(path=path))
    proc = cli("run", "factory.yaml", check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    text = " ".join(proc.stderr.split())
    assert "trainers[mine].estimator" in text  # the field
    assert repr(path) in text  # the value
    assert "class with fit and predict" in text  # the rule
    assert "fix:" in text
    assert not (tmp_path / ".darkfab").exists() or not any((tmp_path / ".darkfab" / "artifacts").glob("*"))


# -- the audit chain: edit, truncate, swap -----------------------------------------------------------------

SMALL = small_factory("small")


@pytest.fixture(scope="module")
def campaign_store(tmp_path_factory):
    """The .darkfab folder of one real small campaign (a registered champion); tests attack copies of it."""
    cwd = tmp_path_factory.mktemp("campaign")
    (cwd / "factory.yaml").write_text(SMALL)
    CLI(cwd).json("run", "factory.yaml")
    return cwd / ".darkfab"


@pytest.fixture
def victim(campaign_store, tmp_path):
    """A CLI in a folder holding its own copy of the campaign's store (database, key, head, artifacts)."""
    shutil.copytree(campaign_store, tmp_path / ".darkfab")
    return CLI(tmp_path)


def _db(cli: CLI) -> sqlite3.Connection:
    return sqlite3.connect(cli.cwd / ".darkfab" / "darkfab.db", isolation_level=None)


def _public_hash(prev: str, row: tuple) -> str:
    """The chain's published rule as it stood: sha256 over the previous hash and the event's canonical JSON."""
    created_at, kind, reason, factory_id, campaign_id, trial_id, data = row
    when = datetime.fromisoformat(created_at)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    body = json.dumps(
        {
            "created_at": when.isoformat(),
            "kind": kind,
            "reason": reason,
            "factory_id": factory_id,
            "campaign_id": campaign_id,
            "trial_id": trial_id,
            "data": json.loads(data),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256((prev + body).encode("utf-8")).hexdigest()


def _rechain(db: sqlite3.Connection, from_id: int) -> None:
    """Recompute the hash and link of every event from ``from_id`` on, as an attacker without the key would."""
    prev = db.execute("SELECT hash FROM events WHERE id < ? ORDER BY id DESC LIMIT 1", (from_id,)).fetchone()
    prev_hash = prev[0] if prev else "0" * 64
    rows = db.execute(
        "SELECT id, created_at, kind, reason, factory_id, campaign_id, trial_id, data FROM events WHERE id >= ? "
        "ORDER BY id",
        (from_id,),
    ).fetchall()
    db.execute("BEGIN")
    for row in rows:
        digest = _public_hash(prev_hash, row[1:])
        # a temporary unique value first: prev_hash is unique, and the old links are still in place
        db.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?", (f"tmp{row[0]}", digest, row[0]))
        prev_hash = digest
    prev_hash = prev[0] if prev else "0" * 64
    for row in rows:
        db.execute("UPDATE events SET prev_hash = ? WHERE id = ?", (prev_hash, row[0]))
        prev_hash = db.execute("SELECT hash FROM events WHERE id = ?", (row[0],)).fetchone()[0]
    db.execute("COMMIT")


def _verify(cli: CLI) -> dict:
    proc = cli("audit", "verify", "--json", check=False)
    report = json.loads(proc.stdout)
    assert (proc.returncode == 0) == report["ok"], proc.stdout + proc.stderr
    return report


@pytest.mark.slow
def test_the_untouched_store_verifies_and_exports_its_head(victim):
    report = _verify(victim)
    assert report["ok"] and report["checked"] > 5
    victim("audit", "export", "-o", "head.json")
    head = json.loads((victim.cwd / "head.json").read_text())
    assert head["factories"] == ["small"] and head["count"] == report["checked"]
    assert head["last_hash"] in report["message"] and head["exported_at"]
    assert json.loads(victim("audit", "export").stdout)["last_hash"] == head["last_hash"]


def test_an_edited_and_rechained_event_fails_verification(victim):
    db = _db(victim)
    target_id, data = db.execute("SELECT id, data FROM events WHERE kind = 'completed' ORDER BY id LIMIT 1").fetchone()
    payload = json.loads(data)
    payload["value"] = 1.0  # a perfect score, after the fact
    db.execute("UPDATE events SET data = ? WHERE id = ?", (json.dumps(payload, separators=(",", ":")), target_id))
    _rechain(db, target_id)
    db.close()
    report = _verify(victim)
    assert not report["ok"] and report["first_bad_id"] == target_id
    assert f"event {target_id}" in report["message"] and "altered" in report["message"]
    proc = victim("audit", "export", check=False)
    assert proc.returncode == 1 and "does not verify" in proc.stderr and not proc.stdout.strip()


def test_deleting_the_newest_events_fails_verification(victim):
    db = _db(victim)
    (last,) = db.execute("SELECT max(id) FROM events").fetchone()
    db.execute("DELETE FROM events WHERE id > ?", (last - 3,))
    db.close()
    report = _verify(victim)
    assert not report["ok"] and report["first_bad_id"] == last - 2
    assert "removed" in report["message"] and "audit.head" in report["message"]


def test_an_edited_head_file_fails_verification(victim):
    db = _db(victim)
    (last,) = db.execute("SELECT max(id) FROM events").fetchone()
    db.execute("DELETE FROM events WHERE id > ?", (last - 2,))
    new_last, new_hash = db.execute("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
    db.close()
    head_file = victim.cwd / ".darkfab" / "audit.head"
    head = json.loads(head_file.read_text())
    head.update(count=head["count"] - 2, last_id=new_last, last_hash=new_hash)
    head_file.write_text(json.dumps(head))
    report = _verify(victim)
    assert not report["ok"] and "head file" in report["message"] and "altered" in report["message"]


def _rows_csv(cli: CLI) -> str:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"]).head(5)
    frame.to_csv(cli.cwd / "rows.csv", index=False)
    return "rows.csv"


def test_a_model_version_pointed_at_another_artifact_is_caught_and_not_served(victim):
    rows = _rows_csv(victim)
    victim("predict", rows, "-o", "before.csv")  # the genuine champion serves
    db = _db(victim)
    version, genuine = db.execute("SELECT version, artifact_hash FROM model_versions ORDER BY id LIMIT 1").fetchone()
    other = next(
        p.name for p in (victim.cwd / ".darkfab" / "artifacts" / "sha256").glob("*/*") if p.name != genuine
    )  # another trial's model, a real stored artifact
    db.execute(
        "UPDATE model_versions SET artifact_hash = ?, artifact_path = ? WHERE version = ?",
        (other, f"sha256/{other[:2]}/{other}", version),
    )
    db.close()
    report = _verify(victim)
    assert not report["ok"]
    assert f"model version {version}" in report["message"] and "artifact hash" in report["message"]
    proc = victim("predict", rows, "-o", "after.csv", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    text = " ".join(proc.stderr.split())
    assert "does not match its chained registration" in text and "Traceback" not in proc.stderr
    assert not (victim.cwd / "after.csv").exists()


def test_an_alias_moved_by_sql_is_caught(victim):
    db = _db(victim)
    (version,) = db.execute("SELECT version FROM aliases WHERE alias = 'champion'").fetchone()
    genuine = db.execute("SELECT * FROM model_versions WHERE version = ?", (version,)).fetchone()
    columns = [c[1] for c in db.execute("PRAGMA table_info(model_versions)")]
    row = dict(zip(columns, genuine, strict=True))
    # the attacker needs a second version to point at: a copy of the row with the next number
    row.pop("id")
    row["version"] = version + 1
    db.execute(
        f"INSERT INTO model_versions ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", tuple(row.values())
    )
    db.execute("UPDATE aliases SET version = ? WHERE alias = 'champion'", (version + 1,))
    db.close()
    report = _verify(victim)
    assert not report["ok"] and f"model version {version + 1}" in report["message"]  # no registration for it
    db = _db(victim)
    db.execute("DELETE FROM aliases WHERE alias = 'champion'")
    db.execute("DELETE FROM model_versions WHERE version = ?", (version + 1,))
    db.execute("INSERT INTO aliases (factory_id, alias, version) SELECT id, 'champion', ? FROM factories", (version,))
    db.execute("INSERT INTO aliases (factory_id, alias, version) SELECT id, 'challenger', ? FROM factories", (version,))
    db.close()
    report = _verify(victim)
    assert not report["ok"] and "alias 'challenger'" in report["message"]


def test_the_store_files_are_private(campaign_store):
    assert stat.S_IMODE(campaign_store.stat().st_mode) == 0o700
    files = [p for p in campaign_store.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"darkfab.db", "audit.key", "audit.head"} <= names
    assert any(p.parent.parent.name == "sha256" for p in files)  # artifacts
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for folder in (p for p in campaign_store.rglob("*") if p.is_dir()):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_a_missing_key_is_refused_with_the_fix(victim):
    (victim.cwd / ".darkfab" / "audit.key").unlink()
    proc = victim("audit", "verify", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    text = " ".join(proc.stdout.split())
    assert "audit key" in text and "missing" in text and "DARKFAB_AUDIT_KEY" in text
    assert victim("status").returncode == 0  # the records stay readable
    proc = victim("predict", _rows_csv(victim), "-o", "out.csv", check=False)  # but nothing is served
    assert proc.returncode == 1 and "audit key" in proc.stderr and not (victim.cwd / "out.csv").exists()
    assert not (victim.cwd / ".darkfab" / "audit.key").exists()  # never silently replaced


def test_a_legacy_unkeyed_store_is_keyed_from_a_switch_event(victim):
    # what an older darkfab left: the unkeyed rule everywhere, no key, no head
    db = _db(victim)
    _rechain(db, 1)
    (legacy,) = db.execute("SELECT count(*) FROM events").fetchone()
    db.close()
    (victim.cwd / ".darkfab" / "audit.key").unlink()
    (victim.cwd / ".darkfab" / "audit.head").unlink()
    # never keyed behind the operator's back: an old log and a log re-chained by hand look the same
    report = _verify(victim)
    assert not report["ok"] and "darkfab db upgrade" in report["message"]
    assert "keyed from now on" in victim("db", "upgrade").stdout
    report = _verify(victim)
    assert report["ok"] and report["checked"] == legacy + 1, report
    db = _db(victim)
    kind, data = db.execute("SELECT kind, data FROM events ORDER BY id DESC LIMIT 1").fetchone()
    db.close()
    assert kind == "chain_keyed" and json.loads(data)["legacy_events"] == legacy
    assert (victim.cwd / ".darkfab" / "audit.key").exists()
    # from the switch on, the keyed rule holds: re-chaining the switch without the key is caught
    db = _db(victim)
    db.execute("UPDATE events SET reason = 'nothing happened' WHERE kind = 'chain_keyed'")
    _rechain(db, legacy + 1)
    db.close()
    report = _verify(victim)
    assert not report["ok"] and report["first_bad_id"] == legacy + 1


# -- redaction ------------------------------------------------------------------------------------------

LEAKY_SCRIPT = """\
def train(X, y, X_valid, params, report):
    token = {hidden_token!r}[::-1]  # the key the trial got hold of, kept reversed so its source never shows it
    print("using", token, "and postgresql://admin:{url_password}@db.internal:5432/prod")
    raise RuntimeError(
        "cannot reach the service with " + token + " via postgresql://admin:{url_password}@db.internal:5432/prod"
    )
"""

LEAKY_FACTORY = """\
name: leaky
data: {source: "sklearn:breast_cancer", target: target}
trainers:
  - name: leaky
    script: leaky.py
budget: {trials: 2}
execution: {workers: 1, trial_timeout: 60s}
"""


@pytest.mark.slow  # a whole campaign of failing script trials: ~30 s on 2 shared cores
def test_a_secret_raised_by_a_trial_is_stored_nowhere(tmp_path):
    token = "sk-live-" + "7f3a9c2e" * 4  # the factory's own API key, which the trial got hold of
    url_password = "Hunter2-" + "e1d2c3"  # a password the factory never knew, in a URL
    (tmp_path / "leaky.py").write_text(LEAKY_SCRIPT.format(hidden_token=token[::-1], url_password=url_password))
    (tmp_path / "factory.yaml").write_text(LEAKY_FACTORY)
    env = {**env_for(tmp_path), "LEAKY_API_TOKEN": token}
    run = subprocess.run(
        [sys.executable, "-m", "darkfab", "run", "factory.yaml", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    listed = subprocess.run(
        [sys.executable, "-m", "darkfab", "trials", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    trials = json.loads(listed.stdout)
    assert trials and all(t["state"] == "failed" for t in trials), listed.stdout
    assert any("cannot reach the service with ***" in (t.get("error") or "") for t in trials), listed.stdout
    assert any("postgresql://admin:***@db.internal" in (t.get("error") or "") for t in trials), listed.stdout
    for secret in (token, url_password):
        assert secret not in listed.stdout
        assert secret not in run.stdout
        for path in (tmp_path / ".darkfab").iterdir():  # the database, its WAL, the head
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
