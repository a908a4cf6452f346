import logging
import sys

from daphne.endpoints import build_endpoint_description_strings
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from eventsite import first_run, services
from eventsite.asgi import application
from eventsite.links import public_url
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
            "--migrate",
            action="store_true",
            help=(
                "Apply database migrations first. Safe with any number of processes starting "
                "at once: one migrates, the others wait for it."
            ),
        )
        parser.add_argument(
            "--no-first-run",
            action="store_true",
            help="Do not create the first admin and token on an empty database.",
        )

    def handle(
        self,
        *args,
        host: str,
        port: int,
        no_engine: bool,
        migrate: bool,
        no_first_run: bool,
        **options,
    ):
        local = f"http://{host}:{port}"
        try:
            admin = first_run.prepare(migrate=migrate, first_admin=not no_first_run)
        except first_run.NotMigrated as exc:
            raise CommandError(
                f"{exc}: run `manage.py migrate` first, or start with `serve --migrate`."
            ) from None
        if admin:
            self._print_first_admin(admin, settings.EVENTSITE_PUBLIC_URL or local)
        stop, _ = services.start(engine=not no_engine)
        behind = f", public URL {public_url('/')}" if settings.EVENTSITE_PUBLIC_URL else ""
        self.stdout.write(
            f"eventsite serving on {local}/ (engine {'off' if no_engine else 'on'}{behind})"
        )
        sys.stdout.flush()
        # Behind a TLS proxy (an https public URL), the client's address is the proxy's
        # X-Forwarded-For: login throttling and the audit log need the real one.
        proxy = (
            {
                "proxy_forwarded_address_header": "X-Forwarded-For",
                "proxy_forwarded_proto_header": "X-Forwarded-Proto",
            }
            if settings.EVENTSITE_BEHIND_TLS_PROXY
            else {}
        )
        try:
            EventsiteServer(
                application=application,
                endpoints=build_endpoint_description_strings(host=host, port=port),
                signal_handlers=True,
                verbosity=0,
                websocket_timeout=86400 * 365,
                websocket_handshake_timeout=10,
                # Daphne's default (1 MiB) would drop the connection on a valid 1.4 MB event;
                # up to this size an oversized frame is read, skipped and reported instead.
                websocket_max_message_size=settings.EVENTSITE_WEBSOCKET_MAX_MESSAGE_BYTES,
                websocket_max_frame_size=settings.EVENTSITE_WEBSOCKET_MAX_MESSAGE_BYTES,
                application_close_timeout=5,
                **proxy,
            ).run()
        finally:
            stop.set()

    def _print_first_admin(self, admin: first_run.FirstAdmin, url: str) -> None:
        """On the very first start, show the admin and API token created, once."""
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "First run: created an admin account and an API token. They are shown only once.",
                    f"  username: {admin.username}",
                    f"  password: {admin.password}",
                    f"  API token: {admin.token}",
                    f"  Prefect clients: PREFECT_API_URL={url}/api "
                    f"PREFECT_API_AUTH_STRING=eventsite:{admin.token}",
                    "",
                ]
            )
        )
