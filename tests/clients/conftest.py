from tests.service.conftest import live  # noqa: F401  (a live server on loopback)
