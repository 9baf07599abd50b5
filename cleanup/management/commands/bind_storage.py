import contextlib
import getpass

from django.core.management.base import CommandError

from cleanup.report import format_binding, show
from cleanup.services import PurgeNotPossible, bind_storage, binding_state, verify_storage
from fmr.commands import StrictCommand


class Command(StrictCommand):
    help = (
        "Show the storage the database's files live in (the binding) and the one this process is "
        "configured for. --rebind binds the configured one: the one way to switch storage, once "
        "the files really were moved there."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rebind", action="store_true", help="Bind the configured storage.")
        parser.add_argument("--by", metavar="NAME", help="Who is switching (default: the OS user).")
        parser.add_argument("--json", action="store_true", help="Print the facts as JSON.")

    def handle(self, *args, rebind, by, **options):
        try:
            state = bind_storage(by=by or _os_user()) if rebind else binding_state()
            show(self, options, _facts(state), format_binding(state, rebind=rebind))
            verify_storage()  # what every purge, sweep and reconcile will say about this storage
        except PurgeNotPossible as exc:
            raise CommandError(str(exc)) from exc


def _os_user() -> str:
    with contextlib.suppress(KeyError, OSError):
        return getpass.getuser()
    return "unknown operator"


def _facts(state) -> dict:
    bound, configured = state.bound, state.configured
    return {
        "bound": bound and bound.describe(),
        "bound_kind": bound and bound.kind,
        "bound_at": state.bound_at and state.bound_at.isoformat(),
        "bound_by": state.bound_by or None,
        "previous": state.previous or None,
        "configured": configured.describe(),
        "configured_kind": configured.kind,
        "matches": state.matches,
        "changed": state.changed,
    }
