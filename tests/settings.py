"""Settings for the test suite: the real ones, with a fast password hasher and a shared cache.

PBKDF2 spends about half a second per password on purpose; the suite creates hundreds of users.
pytest-django exports DJANGO_SETTINGS_MODULE, so the servers the tests start use these too.

The cache is shared by the test process and the servers it starts (they inherit the environment
variables set here), so a test can empty the servers' cache (`tests.conftest.empty_cache`): the
feed caches counts per time bucket, and a test must not see the counts of the test before it.
"""

import os
import tempfile
import uuid

from eventsite.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The suite and the servers it starts (always given a database URL) sign with one key, unless the
# environment gives one. Not a secret: it signs nothing outside the test database.
if not EVENTSITE_SECRET_KEY_SHARED:  # noqa: F405
    SECRET_KEY = "eventsite-test-suite-key-shared-by-the-servers-it-starts"
    EVENTSITE_SECRET_KEY_SHARED = True

if REDIS_URL:  # noqa: F405
    # On Redis the cache outlives a test run; a prefix per session (inherited by the servers the
    # suite starts, through the environment) keeps one run's cached counts out of the next.
    os.environ.setdefault("EVENTSITE_TEST_CACHE_PREFIX", f"eventsite-test-{uuid.uuid4().hex}")
    CACHES["default"]["KEY_PREFIX"] = os.environ["EVENTSITE_TEST_CACHE_PREFIX"]  # noqa: F405
else:
    # Without Redis each process would keep a cache of its own: one directory for all of them.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": os.environ.setdefault(
                "EVENTSITE_TEST_CACHE_DIR", tempfile.mkdtemp(prefix="eventsite-test-cache-")
            ),
        }
    }
