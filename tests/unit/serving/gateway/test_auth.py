"""API keys: stored hashed, checked per model, reloaded on rotation; loopback-only without."""

from __future__ import annotations

import json
import os

import pytest

from serving.gateway.auth import KeysFileError, KeyStore, add_key, hash_key
from serving.gateway.cli import GatewayError, is_loopback, load_keys, main
from serving.gateway.contract import Rejected


def test_a_new_key_is_stored_only_as_its_hash(tmp_path):
    path = tmp_path / "keys.json"
    key = add_key(path, "app-a", ["fraud-classifier"])
    text = path.read_text()
    assert key not in text and hash_key(key) in text
    store = KeyStore(path)
    assert store.authenticate(f"Bearer {key}", None, "fraud-classifier") == "app-a"
    assert store.authenticate(None, key, "fraud-classifier") == "app-a"
    with pytest.raises(KeysFileError, match="already has a key named 'app-a'"):
        add_key(path, "app-a")


@pytest.mark.parametrize(
    ("authorization", "api_key", "model", "status", "words"),
    [
        (None, None, "m", 401, "missing credentials"),
        ("Basic abc", None, "m", 401, "Bearer"),
        ("Bearer ", None, "m", 401, "Bearer"),
        ("Bearer nope", None, "m", 401, "unknown API key"),
        (None, "nope", "m", 401, "unknown API key"),
    ],
)
def test_missing_or_unknown_credentials_are_401(
    tmp_path, authorization, api_key, model, status, words
):
    add_key(tmp_path / "keys.json", "app")
    with pytest.raises(Rejected) as caught:
        KeyStore(tmp_path / "keys.json").authenticate(authorization, api_key, model)
    assert caught.value.status == status and words in caught.value.message


def test_a_key_limited_to_one_model_gets_403_on_another(tmp_path):
    key = add_key(tmp_path / "keys.json", "app", ["a"])
    store = KeyStore(tmp_path / "keys.json")
    with pytest.raises(Rejected) as caught:
        store.authenticate(f"Bearer {key}", None, "b")
    assert caught.value.status == 403 and "'app' may not call model 'b'" in caught.value.message


def test_only_a_key_granted_labels_may_post_them(tmp_path):
    path = tmp_path / "keys.json"
    plain = add_key(path, "app")
    labeller = add_key(path, "labeller", ["m"], labels=True)
    entries = {e["name"]: e for e in json.loads(path.read_text())["keys"]}
    assert "labels" not in entries["app"] and entries["labeller"]["labels"] is True
    store = KeyStore(path)
    assert store.authenticate(None, labeller, "m", labels=True) == "labeller"
    assert store.authenticate(None, labeller, "m") == "labeller"  # it may infer too
    assert store.authenticate(None, plain, "m") == "app"
    with pytest.raises(Rejected) as caught:
        store.authenticate(None, plain, "m", labels=True)
    assert caught.value.status == 403 and "'app' may not post labels" in caught.value.message
    with pytest.raises(Rejected) as caught:  # the model limit holds for labels as well
        store.authenticate(None, labeller, "other", labels=True)
    assert caught.value.status == 403 and "model 'other'" in caught.value.message


def test_a_keys_file_without_the_labels_field_grants_no_labels(tmp_path):
    """Files written before the field existed keep working for infer, and grant no labels."""
    key = "gw_existing"
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [{"name": "old", "sha256": hash_key(key)}]}))
    store = KeyStore(path)
    assert store.authenticate(f"Bearer {key}", None, "m") == "old"
    with pytest.raises(Rejected, match="may not post labels"):
        store.authenticate(f"Bearer {key}", None, "m", labels=True)
    path.write_text(json.dumps({"keys": [{"name": "old", "sha256": hash_key(key),
                                          "labels": False}]}))  # fmt: skip
    with pytest.raises(Rejected, match="may not post labels"):
        KeyStore(path).authenticate(None, key, "m", labels=True)


def test_rotation_is_picked_up_and_a_broken_file_keeps_the_old_keys(tmp_path):
    path = tmp_path / "keys.json"
    old = add_key(path, "old")
    store = KeyStore(path)
    new = add_key(path, "new")
    assert store.reload_if_changed() and store.authenticate(None, new, "m") == "new"
    path.write_text("{broken")
    os.utime(path, ns=(1, 1))
    with pytest.raises(KeysFileError, match="cannot read keys file"):
        store.reload_if_changed()
    assert store.authenticate(None, old, "m") == "old"  # the last good keys still hold


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ([], "expected {'keys'"),
        ({"keys": [1]}, "keys[0] must be an object"),
        ({"keys": [{"name": "a b", "sha256": "0" * 64}]}, "keys[0].name"),
        ({"keys": [{"name": "a", "sha256": "xyz"}]}, "keys[0].sha256"),
        ({"keys": [{"name": "a", "sha256": "0" * 64, "models": "m"}]}, "keys[0].models"),
        ({"keys": [{"name": "a", "sha256": "0" * 64, "labels": "yes"}]}, "keys[0].labels"),
        ({"keys": [{"name": "a", "sha256": "0" * 64, "labels": 1}]}, "keys[0].labels"),
        ({"keys": [{"name": "a", "sha256": "0" * 64}, {"name": "b", "sha256": "0" * 64}]},
         "keys[1] repeats"),
        ({"keys": []}, "holds no keys"),
    ],
)  # fmt: skip
def test_a_malformed_keys_file_names_the_entry(tmp_path, document, words):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(document))
    with pytest.raises(KeysFileError, match=words.replace("[", r"\[").replace("{", r"\{")):
        KeyStore(path)


def test_beyond_loopback_the_gateway_needs_keys(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("host")
    assert load_keys("127.0.0.1", None) is None
    with pytest.raises(GatewayError, match="refusing to serve on 0.0.0.0 without API keys"):
        load_keys("0.0.0.0", None)
    with pytest.raises(GatewayError, match="cannot read keys file"):
        load_keys("0.0.0.0", tmp_path / "absent.json")
    add_key(tmp_path / "keys.json", "app")
    assert len(load_keys("0.0.0.0", tmp_path / "keys.json")) == 1


def test_keys_cli_prints_the_key_once_and_serve_refuses_without_keys(tmp_path, capsys):
    path = tmp_path / "keys.json"
    assert main(["keys", "add", "--name", "app", "--keys-file", str(path)]) == 0
    key = capsys.readouterr().out.strip()
    assert KeyStore(path).authenticate(None, key, "m") == "app"
    assert main(["keys", "add", "--name", "labeller", "--labels", "--keys-file", str(path)]) == 0
    labeller = capsys.readouterr().out.strip()
    assert KeyStore(path).authenticate(None, labeller, "m", labels=True) == "labeller"
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "without API keys" in capsys.readouterr().err
