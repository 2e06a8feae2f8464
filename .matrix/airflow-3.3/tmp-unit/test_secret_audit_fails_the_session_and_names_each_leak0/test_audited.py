import json, logging
from airflow_provider_polytomic.testing.state import PolytomicState

def test_clean():
    print("nothing to see")

def test_leaks_the_fake_key_on_stdout():
    print("calling with fake-api-key-0123456789")

def test_leaks_a_connection_password_in_logs(monkeypatch):
    conn = {"conn_type": "polytomic", "password": "conn-secret-4242"}
    monkeypatch.setenv("AIRFLOW_CONN_OTHER", json.dumps(conn))
    logging.getLogger("x").warning("sending conn-secret-4242")

def test_leaks_a_webhook_secret_in_an_exception():
    PolytomicState().create_webhook({"endpoint": "http://127.0.0.1:1/hook", "secret": "hook-secret-9876"})
    raise RuntimeError("signature check with hook-secret-9876 failed")

def test_mentions_a_secret_in_its_own_assertion():
    key = "fake-api-key-0123456789"
    assert key == "something else"