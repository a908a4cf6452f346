from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from events.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it (shown once) as the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")
        parser.add_argument(
            "--scope",
            default="",
            choices=["", "viewer", "editor", "events-write"],
            help="narrower than the user's role: viewer, editor, or events-write (SDKs)",
        )

    def handle(self, *args, username: str, name: str, scope: str = "", **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(
                f"No user named {username!r}. Create one with `manage.py createsuperuser`."
            ) from None
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive.")
        _, secret = ApiToken.issue(user, name=name, scope=scope)
        self.stderr.write(f"Created API token {name!r} for {username}. It is shown only once:")
        self.stdout.write(secret)
