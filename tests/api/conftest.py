import pytest
from django.core.cache import cache

from api.tokens import bad_token_key


@pytest.fixture(autouse=True)
def _no_bad_tokens_counted_yet():
    """The count of bad tokens lives in the cache (Redis in CI), which outlives a test: each
    test starts with none counted for the test client's and the live server's address."""
    for address in ("127.0.0.1", "::1"):
        cache.delete(bad_token_key(address))
    yield
