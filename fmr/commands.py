"""The base of every fmr management command. argparse takes any unambiguous prefix of a flag
(`--d` for `--delete`) and Django's --verbosity any int() (`٣`): here a mistyped flag is refused
and numbers are parsed by fmr/parsing.py, whose InvalidValue argparse reports (argument_type)."""

from functools import partial

from django.core.management.base import BaseCommand

from .parsing import parse_int

argument_type = partial


class StrictCommand(BaseCommand):
    def create_parser(self, prog_name, subcommand, **kwargs):
        return super().create_parser(prog_name, subcommand, allow_abbrev=False, **kwargs)

    def add_base_argument(self, parser, *args, **kwargs):
        if "--verbosity" in args:
            kwargs["type"] = argument_type(parse_int, minimum=0, maximum=3, expected="0, 1, 2 or 3")
        super().add_base_argument(parser, *args, **kwargs)
