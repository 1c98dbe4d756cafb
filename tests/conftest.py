"""Fixtures come from ``bestchat.testing.pytest_plugin`` (installed as a pytest11 entry point,
so first- and third-party plugins get the same ones). Only suite-local fixtures live here."""
