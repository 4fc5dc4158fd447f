"""Remote use needs CurveZMQ keys; a client without the server's key gets nothing through."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import zmq.auth

from runtime.client import ParleyClient, ParleyError
from runtime.server_socket import InsecureBind


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    # under the usual umask (022), which would leave new files readable by everyone
    result = subprocess.run([sys.executable, "-m", "runtime.cli", "keys", str(folder)], capture_output=True, text=True,
                            preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 0, result.stderr
    return folder


def test_non_loopback_bind_without_keys_is_refused(make_server):
    with pytest.raises(InsecureBind, match="parley keys"):
        make_server(bind="tcp://0.0.0.0:0")


def test_curve_client_with_the_server_key_connects_and_one_without_does_not(make_server, keys):
    server = make_server(curve_secret_file=keys / "server.key_secret")
    server_public, _ = zmq.auth.load_certificate(str(keys / "server.key"))
    with ParleyClient(server.endpoint, timeout_s=20, retries=0, server_public_key=server_public) as good:
        assert good.health()["status"] == "ok"
        assert list(good.reply("brenna", "Hello"))[-1]["type"] == "done"
    with ParleyClient(server.endpoint, timeout_s=1.0, retries=0) as plain:
        with pytest.raises(ParleyError, match="no answer|no connection"):
            plain.health()
    wrong_public, _ = zmq.curve_keypair()
    with ParleyClient(server.endpoint, timeout_s=1.0, retries=0, server_public_key=wrong_public) as wrong:
        with pytest.raises(ParleyError, match="no answer|no connection"):
            wrong.health()
    assert server.server.counters["frames"] == 2  # only the good client's two requests ever arrived


def test_client_allow_list(make_server, keys):
    allowed = keys / "allowed"
    allowed.mkdir(exist_ok=True)
    (allowed / "client.key").write_bytes((keys / "client.key").read_bytes())
    server = make_server(curve_secret_file=keys / "server.key_secret", client_keys_dir=allowed)
    server_public, _ = zmq.auth.load_certificate(str(keys / "server.key"))
    client_keys = zmq.auth.load_certificate(str(keys / "client.key_secret"))
    with ParleyClient(server.endpoint, timeout_s=20, retries=0, server_public_key=server_public,
                      client_keys=client_keys) as known:
        assert known.health()["status"] == "ok"
    with ParleyClient(server.endpoint, timeout_s=1.0, retries=0, server_public_key=server_public) as stranger:
        with pytest.raises(ParleyError, match="no answer|no connection"):
            stranger.health()


def test_the_allow_list_is_read_again_when_its_folder_changes(make_server, keys, tmp_path):
    """An outside probe: the folder was read once at start, so a key taken out (a leaked one) kept getting in,
    with new connections too, and a key put in waited for a restart."""
    import time

    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "client.key").write_bytes((keys / "client.key").read_bytes())
    _, later_secret = zmq.auth.create_certificates(str(tmp_path), "later")
    server = make_server(curve_secret_file=keys / "server.key_secret", client_keys_dir=allowed)
    server_public, _ = zmq.auth.load_certificate(str(keys / "server.key"))

    def client(secret_file, timeout_s: float) -> ParleyClient:
        return ParleyClient(server.endpoint, timeout_s=timeout_s, retries=0, server_public_key=server_public,
                            client_keys=zmq.auth.load_certificate(str(secret_file)))

    with client(keys / "client.key_secret", 20) as known:
        assert known.health()["status"] == "ok"
        (allowed / "client.key").unlink()  # revoked while it is connected
        (allowed / "later.key").write_bytes((tmp_path / "later.key").read_bytes())
        time.sleep(1.0)  # the server scans every profile_poll_s (0.2 s here)
        known.timeout_s = 1.0
        with pytest.raises(ParleyError, match="no answer|no connection"):
            known.health()  # its open connection is closed at its next message
    with client(keys / "client.key_secret", 1.0) as again:
        with pytest.raises(ParleyError, match="no answer|no connection"):
            again.health()  # and a new handshake is refused
    with client(tmp_path / "later.key_secret", 20) as newcomer:
        assert newcomer.health()["status"] == "ok"  # the key put in gets in without a restart
    assert server.server.counters["requests_dropped.key_removed"] >= 1


def test_a_client_the_server_refuses_gets_timeouts_never_a_hang(make_server, keys):
    # A refused handshake leaves a DEALER without a connection, and its send would block forever.
    server = make_server(curve_secret_file=keys / "server.key_secret")
    with ParleyClient(server.endpoint, timeout_s=0.5, retries=1) as plain:
        for _ in range(5):
            with pytest.raises(ParleyError, match="no answer|no connection"):
                plain.health()


def test_an_allow_list_without_server_keys_is_refused_not_ignored(make_server, keys, tiny_model, tmp_path):
    allowed = keys / "allowed-only"
    allowed.mkdir(exist_ok=True)
    with pytest.raises(ValueError, match="--client-keys needs --keys"):
        make_server(client_keys_dir=allowed)
    # the command refuses before it loads the model, with the same reason and no traceback
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    result = subprocess.run([sys.executable, "-m", "runtime.cli", "serve", "--model", str(tiny_model), "--profiles",
                             str(profiles), "--client-keys", str(allowed)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "--client-keys needs --keys" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_keys_folder_is_refused_before_the_model_loads_with_the_file_to_pass(keys, tiny_model, tmp_path):
    """An outside review: the refusals said `--keys DIR`; following them wrote blob.key beside the folder and,
    after the model loaded, failed with "cannot bind ...: Is a directory"."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for extra in (["--bind", "tcp://0.0.0.0:5599"], ["--client-keys", str(keys)]):
        result = subprocess.run([sys.executable, "-m", "runtime.cli", "serve", "--model", str(tiny_model),
                                 "--profiles", str(profiles), *extra], capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and "server.key_secret" in result.stderr, result.stderr
    result = subprocess.run([sys.executable, "-m", "runtime.cli", "serve", "--model", str(tiny_model), "--profiles",
                             str(profiles), "--keys", str(keys), "--blob-key", str(tmp_path / "blob.key")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "not a file" in result.stderr and "server.key_secret" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "blob.key").exists()


def test_parley_keys_writes_secret_keys_only_their_owner_can_read(keys):
    """An outside probe found the .key_secret files 0644: readable by every user of the machine."""
    for name in ("server", "client"):
        assert (keys / f"{name}.key_secret").stat().st_mode & 0o777 == 0o600
        assert (keys / f"{name}.key").stat().st_mode & 0o444  # the public halves stay readable


def test_two_servers_of_one_process_never_check_each_others_clients(make_server, keys):
    """libzmq asks the ZAP handler of a socket's context about its connections: servers sharing one context
    shared the handler, and a server with an allow-list refused the keys of a second server's clients (a
    handler just stopped also left a new connection of another server waiting for ever, in one test run)."""
    allowed = keys / "allowed-one"
    allowed.mkdir(exist_ok=True)
    (allowed / "client.key").write_bytes((keys / "client.key").read_bytes())
    guarded = make_server(curve_secret_file=keys / "server.key_secret", client_keys_dir=allowed)
    open_to_any_key = make_server(curve_secret_file=keys / "server.key_secret")
    server_public, _ = zmq.auth.load_certificate(str(keys / "server.key"))
    with ParleyClient(open_to_any_key.endpoint, timeout_s=5, retries=0, server_public_key=server_public) as any_key:
        assert any_key.health()["status"] == "ok"  # its own key, on no allow-list
    with ParleyClient(guarded.endpoint, timeout_s=1.0, retries=0, server_public_key=server_public) as stranger:
        with pytest.raises(ParleyError, match="no answer|no connection"):
            stranger.health()
