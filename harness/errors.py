"""Errors a user can act on: the CLI prints them as one line, never a traceback."""


class HarnessError(Exception):
    """A problem with input or environment, phrased as one line that names the file or the fix."""

    exit_code = 2


class InputError(HarnessError):
    """Input could not be read (file, YAML/HCL syntax, path)."""


class EnvironmentProblem(HarnessError):
    """A tool, provider, credential or endpoint the command needs is missing or unreachable."""
