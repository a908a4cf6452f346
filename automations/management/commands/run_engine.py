import signal
import threading

from django.core.management.base import BaseCommand

from automations.engine import Engine, run_forever


class Command(BaseCommand):
    help = (
        "Run the automation engine on its own (scale-out: web processes run `serve --no-engine`)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--once",
            action="store_true",
            help="Evaluate what is in the log, run the proactive tick and due actions, then exit.",
        )

    def handle(self, *args, once: bool, **options):
        if once:
            engine = Engine()
            while engine.step():
                pass
            engine.tick()
            done = engine.run_actions()
            self.stdout.write(f"engine: caught up; {done} action runs performed")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write("automation engine running (Ctrl-C to stop)")
        self.stdout.flush()
        run_forever(stop)
