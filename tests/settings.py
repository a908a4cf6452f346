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

# pytest-xdist's workers (`-n 2`) each have a database of their own (pytest-django names it), so
# each needs its own cache and, on Redis, its own channel layer too: the cache's counts are of one
# database, and a socket of one worker must not receive another's groups. A worker's name is in
# the environment of the servers it starts too.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
CACHE_PREFIX_VARIABLE = f"EVENTSITE_TEST_CACHE_PREFIX_{WORKER}"

if REDIS_URL:  # noqa: F405
    # On Redis the cache outlives a test run; a prefix per session (inherited by the servers the
    # suite starts, through the environment) keeps one run's cached counts out of the next.
    prefix = os.environ.setdefault(CACHE_PREFIX_VARIABLE, f"eventsite-test-{uuid.uuid4().hex}")
    CACHES["default"]["KEY_PREFIX"] = prefix  # noqa: F405
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"{prefix}-asgi"  # noqa: F405
else:
    # Without Redis each process would keep a cache of its own: one directory for all of them.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": os.environ.setdefault(
                f"EVENTSITE_TEST_CACHE_DIR_{WORKER}",
                tempfile.mkdtemp(prefix="eventsite-test-cache-"),
            ),
        }
    }
