"""The front door of the ``initlab`` command: every way a call can end, as one clear line.

:class:`InitlabGroup` is the root Typer group. It runs the command line in Click's
non-standalone mode and turns each way out into what a user should see:

- a user's mistake (:class:`~initlab.errors.InitlabError`) or a usage error from Typer (an
  option that does not parse, a missing argument, an unknown command) -> one line
  ``error: ...`` on stderr and exit status 2 (Typer's own 5-line box is not shown);
- a file-system refusal nobody checked for (:class:`OSError` with a file name: a read-only
  folder, a file where a folder belongs) -> ``error: cannot write PATH: REASON`` and exit 2;
- Ctrl-C -> one line (the command's own, from :class:`Interrupted`, e.g. how many runs are
  stored) and exit status 130, as a shell expects after SIGINT.

Because the handling lives in the group's ``main``, the console script and
``typer.testing.CliRunner`` take exactly the same path. Nothing here imports torch.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer import _click
from typer.core import TyperGroup
from typer.exceptions import Abort

from initlab.errors import InitlabError

INTERRUPTED_EXIT = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""


class Interrupted(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by a command that caught Ctrl-C and knows what to tell the user."""


def error_line(message: str) -> str:
    """One line ``error: ...``: newlines of a multi-line message become ``; ``."""
    parts = [part.strip() for part in str(message).splitlines() if part.strip()]
    return "error: " + "; ".join(parts)


def _usage_line(err: _click.exceptions.UsageError) -> str:
    message = err.format_message()
    ctx = err.ctx
    if ctx is not None:
        message = f"{message.rstrip('.')} (see `{ctx.command_path} --help`)"
    return error_line(message)


def _os_line(err: OSError) -> str:
    reason = err.strerror or type(err).__name__
    if err.filename is None:
        return error_line(f"{reason}")
    return error_line(f"cannot write {err.filename}: {reason}")


def _say(line: str) -> None:
    typer.secho(line, err=True, fg=typer.colors.RED)


class InitlabGroup(TyperGroup):
    """The root group: runs the command line and prints every failure as one line."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; exit (or return, when not standalone) with its status."""
        code = self._guarded(args, prog_name, complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _guarded(
        self,
        args: Sequence[str] | None,
        prog_name: str | None,
        complete_var: str | None,
        **extra: Any,
    ) -> int:
        try:
            result = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except _click.exceptions.NoArgsIsHelpError as err:
            err.show()
            return err.exit_code
        except _click.exceptions.UsageError as err:
            _say(_usage_line(err))
            return 2
        except Abort:
            _say("error: aborted")
            return 1
        except InitlabError as err:
            _say(error_line(str(err)))
            return 2
        except Interrupted as err:
            _say(str(err))
            return INTERRUPTED_EXIT
        except KeyboardInterrupt:
            _say("interrupted")
            return INTERRUPTED_EXIT
        except OSError as err:
            _say(_os_line(err))
            return 2
        if result == INTERRUPTED_EXIT:  # Typer turned a Ctrl-C into Exit(130) silently
            _say("interrupted")
        return result if isinstance(result, int) else 0
