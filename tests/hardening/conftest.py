from tests.service.conftest import live, make_server  # noqa: F401  (live servers on loopback)
