"""darkfab.redact: what is masked, and what is left alone."""

from __future__ import annotations

from darkfab.redact import MASK, known_secrets, redact, redact_value


def test_key_like_environment_values_and_url_passwords_are_masked():
    env = {
        "OPENAI_API_KEY": "sk-123456789",
        "GH_TOKEN": "ghp_abcdef",
        "DB_PASSWORD": "pa55word",
        "MY_CREDENTIALS": "user:longsecret",
        "DARKFAB_STORE": "postgresql://bob:s3cr3t-pw@db:5432/x",
        "SHORT_KEY": "abc",  # too short to mask safely
        "HOME": "/root",  # not a secret name
    }
    found = known_secrets(env)
    assert {"sk-123456789", "ghp_abcdef", "pa55word", "user:longsecret", "s3cr3t-pw"} <= found
    assert "abc" not in found and "/root" not in found
    text = "tried sk-123456789 then ghp_abcdef; pa55word; https://eve:guessed99@example.com/x; /root abc"
    assert redact(text, found) == f"tried {MASK} then {MASK}; {MASK}; https://eve:{MASK}@example.com/x; /root abc"
    assert redact("reconnect to mysql://u:s3cr3t-pw@h/db", found) == f"reconnect to mysql://u:{MASK}@h/db"


def test_json_values_are_masked_throughout():
    found = frozenset({"topsecret1"})
    value = {"error": "x topsecret1", "list": ["topsecret1", 3, None], "topsecret1": True}
    assert redact_value(value, found) == {"error": f"x {MASK}", "list": [MASK, 3, None], MASK: True}


def test_the_store_masks_what_it_writes(tmp_path, monkeypatch):
    from darkfab.store import Store

    monkeypatch.setenv("SERVICE_TOKEN", "tok-0123456789")
    with Store(str(tmp_path / "s.db")) as store:
        f = store.ensure_factory("f", {})
        c = store.create_campaign(f.id, budget={}, trigger="manual", seed=0, data_fingerprint="x")
        t = store.add_trial(c.id, proposer="p", trainer="t", params={}, reason="r", start_as="w")
        store.finish_trial(t.id, state="failed", error="boom tok-0123456789", log_tail="log tok-0123456789")
        store.append_event(kind="note", reason="tok-0123456789", data={"k": "tok-0123456789"})
        call = store.add_llm_call(
            factory_id=f.id,
            campaign_id=c.id,
            call_id="c1",
            proposer="llm",
            model="m",
            request=[{"role": "user", "content": "last error: tok-0123456789"}],
            response="tok-0123456789",
            status="ok",
        )
        trial = store.get_trial(t.id)
        assert trial.error == f"boom {MASK}" and trial.log_tail == f"log {MASK}"
        assert call.request[0]["content"] == f"last error: {MASK}" and call.response == MASK
        assert all("tok-0123456789" not in repr(e) for e in store.list_events())
        assert store.verify_chain().ok
    for path in tmp_path.iterdir():
        if path.is_file():
            assert b"tok-0123456789" not in path.read_bytes(), path
