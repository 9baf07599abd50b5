import getpass

from django.core.management.base import CommandError

from cleanup.report import format_binding, show
from cleanup.services import PurgeNotPossible, bind_storage, binding_state, verify_storage
from fmr.commands import StrictCommand


class Command(StrictCommand):
    help = (
        "Show which storage the database's files live in (the binding) and which storage this "
        "process is configured for. With --rebind, bind the configured storage: the one explicit "
        "way to switch storage, after the files really were moved there."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--rebind",
            action="store_true",
            help="Bind the configured storage (records who and when, and what it replaced).",
        )
        parser.add_argument(
            "--by",
            metavar="NAME",
            help="Who is switching, for the record (default: the operating-system user).",
        )
        parser.add_argument("--json", action="store_true", help="Print the facts as JSON.")

    def handle(self, *args, **options):
        try:
            if options["rebind"]:
                state = bind_storage(by=options["by"] or _os_user())
            else:
                state = binding_state()
            text = format_binding(state, state.changed, rebind=options["rebind"])
            show(self, options, _facts(state), text)
            verify_storage()  # what every purge, sweep and reconcile will say about this storage
        except PurgeNotPossible as exc:
            raise CommandError(str(exc)) from exc


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown operator"


def _facts(state) -> dict:
    bound = state.bound
    return {
        "bound": bound and bound.describe(),
        "bound_kind": bound and bound.kind,
        "bound_at": state.bound_at and state.bound_at.isoformat(),
        "bound_by": state.bound_by or None,
        "previous": state.previous or None,
        "configured": state.configured.describe(),
        "configured_kind": state.configured.kind,
        "matches": state.matches,
        "changed": state.changed,
    }
