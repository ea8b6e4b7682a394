"""The two ways a CLI command ends badly, mapped onto the exit codes scripts rely on.

* :class:`Failure` (exit 1): the operation failed or the object was not found.
* :class:`ConfigProblem` (exit 2): the kubeconfig or the invocation is unusable; the same code
  click uses for usage errors, so "fix your command line" is one exit code.

Both are ``click.ClickException`` subclasses, so click prints ``Error: <message>`` on stderr
and exits with the code; commands never call ``sys.exit`` themselves.
"""

from __future__ import annotations

from typing import Final

import click

#: The operation failed or the object was not found.
EXIT_FAILURE: Final = 1
#: Usage or configuration error (click's own code for usage errors).
EXIT_USAGE: Final = 2


class Failure(click.ClickException):
    """The command could not do what was asked; the message says what to do instead."""

    exit_code = EXIT_FAILURE


class NotFound(Failure):
    """A named object does not exist where the command looked."""


class ConfigProblem(click.ClickException):
    """No usable kubeconfig, context or namespace."""

    exit_code = EXIT_USAGE
