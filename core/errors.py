"""Errors a user can act on. The CLI prints them as one line; ``--debug`` adds the traceback."""

from __future__ import annotations


class FtpError(Exception):
    """Base of expected failures; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UserError(FtpError):
    """Bad input: a pipeline file, a data file, an option. Exit 2."""

    exit_code = 2


class ConfigError(UserError):
    """A problem in a pipeline file, located by file, line and key path."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, key: str | None = None,
                 hint: str | None = None) -> None:
        self.file, self.line, self.key, self.hint, self.detail = file, line, key, hint, message
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.file or "<pipeline>"
        if self.line:
            where += f":{self.line}"
        key = f" {self.key}:" if self.key else ""
        hint = f"; {self.hint}" if self.hint else ""
        return f"{where}:{key} {self.detail}{hint}"


class StepFailed(FtpError):
    """A pipeline step failed for a reason that is not bad input (gate, training error). Exit 1."""

    def __init__(self, step: str, message: str, exit_code: int = 1) -> None:
        self.step = step
        self.exit_code = exit_code
        super().__init__(f"{step}: {message}")


class Interrupted(FtpError):
    """Ctrl-C: the run's state is saved and resumable. Exit 130, as shells expect."""

    exit_code = 130


class HandedOff(Exception):
    """Not a failure: a step did this host's share and the rest of the pipeline belongs to another host
    (a training node other than node 0, whose processes trained their part of every batch while node 0
    writes the model and goes on to evaluate, register and deploy). The step is recorded done with
    ``outputs``, and the run stops after it, ``partial``, exit 0."""

    def __init__(self, message: str, outputs: dict[str, object] | None = None) -> None:
        self.outputs = dict(outputs or {})
        super().__init__(message)


class NotEvaluable(FtpError):
    """A trainer cannot answer prompts for one candidate (e.g. no deployment of the base model on Azure).

    The evaluate step goes on without that candidate and says why; it is not a failure of the run.
    """


class RequestRejected(UserError):
    """A serving request the model cannot take as sent (a prompt longer than its context, messages its
    chat template refuses): ``ftp serve`` answers HTTP 400 with OpenAI's ``code`` and ``param``."""

    def __init__(self, message: str, code: str | None = None, param: str | None = "messages") -> None:
        self.code, self.param = code, param
        super().__init__(message)
