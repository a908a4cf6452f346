"""Settings for the test suite: the real ones, with a fast password hasher.

PBKDF2 spends about half a second per password on purpose; the suite creates hundreds of users.
pytest-django exports DJANGO_SETTINGS_MODULE, so the servers the tests start use these too.
"""

from eventsite.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
