"""Settings for the test suite: the real ones, with a fast password hasher and a shared cache.

PBKDF2 spends about half a second per password on purpose; the suite creates hundreds of users.
pytest-django exports DJANGO_SETTINGS_MODULE, so the servers the tests start use these too.

The cache is a directory shared by the test process and the servers it starts (they inherit the
environment variable set here), so a test can empty the server's cache: the feed caches counts
per time bucket, and a test must not see the counts of the test before it.
"""

import os
import tempfile

from eventsite.settings import *  # noqa: F403

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": os.environ.setdefault(
            "EVENTSITE_TEST_CACHE_DIR", tempfile.mkdtemp(prefix="eventsite-test-cache-")
        ),
    }
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
