"""The server's ROUTER socket: its limits, CurveZMQ, and the refusal to expose NPCs on the network
without keys."""
from __future__ import annotations

from pathlib import Path

import zmq

from runtime import protocol as p

LOCAL_PREFIXES = ("tcp://127.", "tcp://localhost:", "tcp://[::1]:", "ipc://", "inproc://")
CLIENT_KEYS_WITHOUT_KEYS = ("--client-keys needs --keys: an allow-list of client keys means nothing without "
                            "CurveZMQ, and every plaintext client would get in. Pass --keys DIR/server.key_secret "
                            "(from `parley keys DIR`) as well")

# Per client connection: frames ZeroMQ queues to it, and kernel socket buffers both ways (fixed sizes,
# so that neither a client that never reads nor one that floods makes them grow).
SEND_HWM_FRAMES = 16
RECEIVE_HWM_MESSAGES = 2  # per connection; past it ZeroMQ stops reading that connection until we catch up
SOCKET_BUFFER_BYTES = 128 * 1024


ZAP_DOMAIN = b"parley"


class InsecureBind(ValueError):
    pass


def is_local(endpoint: str) -> bool:
    return endpoint.startswith(LOCAL_PREFIXES)


def insecure_bind_refusal(bind: str) -> str:
    return (f"refusing to bind {bind} without CurveZMQ keys: anyone on the network could drive your NPCs. Make "
            "keys with `parley keys DIR` and pass --keys DIR/server.key_secret, or pass --insecure")


def bind_router(ctx: zmq.Context, bind: str, curve_secret_file: Path | None, client_keys_dir: Path | None,
                insecure: bool):
    """The bound socket, and the authenticator thread when client keys are checked (stop it at the end; its
    `allow_list`, runtime/client_keys.py, is read again as the folder changes)."""
    if client_keys_dir is not None and curve_secret_file is None:
        raise ValueError(CLIENT_KEYS_WITHOUT_KEYS)
    if not is_local(bind) and curve_secret_file is None and not insecure:
        raise InsecureBind(insecure_bind_refusal(bind))
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.MAXMSGSIZE, p.MAX_FRAME_BYTES)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a full queue is an error the outbox handles, not a silent drop
    sock.setsockopt(zmq.SNDHWM, SEND_HWM_FRAMES)
    sock.setsockopt(zmq.RCVHWM, RECEIVE_HWM_MESSAGES)
    sock.setsockopt(zmq.SNDBUF, SOCKET_BUFFER_BYTES)
    sock.setsockopt(zmq.RCVBUF, SOCKET_BUFFER_BYTES)
    sock.setsockopt(zmq.LINGER, 1000)
    if bind.startswith("tcp://["):  # libzmq binds IPv6 addresses only when asked to ("No such device")
        sock.setsockopt(zmq.IPV6, 1)
    # A ZAP domain makes libzmq refuse peers speaking ZeroMQ's protocols before 3.0, which need no greeting:
    # an HTTP request (a web page's <img> or fetch to this port) reads as one, and its bytes could otherwise
    # frame a request. With no ZAP handler in the context (no --client-keys), every ZMTP 3 peer still gets in.
    sock.zap_domain = ZAP_DOMAIN
    auth = None
    try:
        if curve_secret_file is not None:
            from zmq.auth import load_certificate
            public, secret = load_certificate(str(curve_secret_file))
            if secret is None:
                raise ValueError(f"{curve_secret_file}: not a secret certificate (use the .key_secret file)")
            if client_keys_dir is not None:
                from zmq.auth.thread import ThreadAuthenticator

                from runtime.client_keys import AllowList
                auth = ThreadAuthenticator(ctx)
                auth.start()
                auth.allow_list = AllowList(client_keys_dir)  # the server reads the folder again as it changes
                auth.configure_curve_callback(domain=ZAP_DOMAIN.decode(), credentials_provider=auth.allow_list)
            sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True
        sock.bind(bind)
    except BaseException:
        sock.close(0)
        if auth is not None:
            auth.stop()
        raise
    return sock, auth
