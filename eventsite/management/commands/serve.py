import logging
import secrets
import sys

from daphne.endpoints import build_endpoint_description_strings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from events.models import ApiToken
from eventsite import services
from eventsite.asgi import application
from eventsite.server import EventsiteServer

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Serve web + websockets (Daphne) and the background services in one process."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-engine",
            action="store_true",
            help="Do not run the automation engine here (scale-out: run `manage.py run_engine`).",
        )
        parser.add_argument(
            "--no-first-run",
            action="store_true",
            help="Do not create the first admin and token on an empty database.",
        )

    def handle(self, *args, host: str, port: int, no_engine: bool, no_first_run: bool, **options):
        if not no_first_run:
            self._first_run(f"http://{host}:{port}")
        stop, _ = services.start(engine=not no_engine)
        self.stdout.write(
            f"eventsite serving on http://{host}:{port}/ (engine {'off' if no_engine else 'on'})"
        )
        sys.stdout.flush()
        try:
            EventsiteServer(
                application=application,
                endpoints=build_endpoint_description_strings(host=host, port=port),
                signal_handlers=True,
                verbosity=0,
                websocket_timeout=86400 * 365,
                websocket_handshake_timeout=10,
                application_close_timeout=5,
            ).run()
        finally:
            stop.set()

    def _first_run(self, url: str) -> None:
        """On the very first start, create an admin and an API token and print both, once."""
        User = get_user_model()
        with transaction.atomic():
            if User.objects.exists():
                return
            password = secrets.token_urlsafe(12)
            user = User.objects.create_superuser("admin", "", password)
            _, token = ApiToken.issue(user, name="first-run")
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "First run: created an admin account and an API token. They are shown only once.",
                    "  username: admin",
                    f"  password: {password}",
                    f"  API token: {token}",
                    f"  Prefect clients: PREFECT_API_URL={url}/api "
                    f"PREFECT_API_AUTH_STRING=eventsite:{token}",
                    "",
                ]
            )
        )
