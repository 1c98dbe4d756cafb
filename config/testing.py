"""Settings for the test suite (loaded by tests/conftest.py on top of the defaults)."""

ENV_NAME = "testing"
TESTING = True
# Tests exercise rate limits explicitly; keep the defaults out of their way.
RATELIMIT_LOGIN_PER_IP = "1000/60"
RATELIMIT_LOGIN_PER_ACCOUNT = "1000/60"
RATELIMIT_REGISTER_PER_IP = "1000/60"
