"""The argument parser every `rtt` command and subcommand is built with.

Subparsers are made with the class of the parser they hang from, so these settings reach every command without
being repeated: no abbreviated options (``--resum`` would silently be ``--resume``, and a typo resume a run) and
every default shown in ``--help`` as argparse holds it, so the help cannot drift from the code.
"""

from __future__ import annotations

import argparse


class DefaultsInHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in ``--help``, except where there is none to show: no default (None; the help says
    what happens then) and off flags (False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


class RttParser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` that takes no abbreviations and shows defaults in help (`DefaultsInHelp`)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsInHelp)
        super().__init__(*args, allow_abbrev=False, **kwargs)
