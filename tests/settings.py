"""Settings for the test suite: the real ones, with a fast password hasher.

PBKDF2 spends about half a second per password on purpose; the suite creates hundreds of users.
pytest-django exports DJANGO_SETTINGS_MODULE, so the servers the tests start use these too.
"""

import os
import uuid

from eventsite.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The suite and the servers it starts (always given a database URL) sign with one key, unless the
# environment gives one. Not a secret: it signs nothing outside the test database.
if not EVENTSITE_SECRET_KEY_SHARED:  # noqa: F405
    SECRET_KEY = "eventsite-test-suite-key-shared-by-the-servers-it-starts"
    EVENTSITE_SECRET_KEY_SHARED = True

# On Redis the cache outlives a test run; a prefix per session (inherited by the servers the
# suite starts, through the environment) keeps one run's cached counts out of the next.
if REDIS_URL:  # noqa: F405
    os.environ.setdefault("EVENTSITE_TEST_CACHE_PREFIX", f"eventsite-test-{uuid.uuid4().hex}")
    CACHES["default"]["KEY_PREFIX"] = os.environ["EVENTSITE_TEST_CACHE_PREFIX"]  # noqa: F405
