"""Terraform/OpenTofu runner: one root, one run directory, streamed logs, timeouts, retries, one-line errors.

Layout inside a run directory for a root named NAME (e.g. platform):
    NAME.tfstate                       state (local backend, `-backend-config=path=...`)
    terraform/NAME/data/               TF_DATA_DIR (providers, modules, backend config)
    terraform/NAME/terraform.tfvars.json  input variables
    logs/NAME-NN-STEP.log              every command's combined output
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from harness.errors import EnvironmentProblem, HarnessError, InputError
from harness.terraform.providers import ProviderSource, install_failure

TERRAFORM_ENV = "HARNESS_TERRAFORM"
CLI_NAMES = ("terraform", "tofu")
DEFAULT_TIMEOUT_S = 45 * 60.0
STOP_GRACE_S = 60.0  # time Terraform gets after SIGINT to finish in-flight calls and write state
POLL_S = 0.2

# Failures worth another attempt: each named, so the log says which one was retried.
TRANSIENT_ERRORS: dict[str, re.Pattern[str]] = {
    "connection reset": re.compile(r"connection reset by peer", re.IGNORECASE),
    "TLS handshake timeout": re.compile(r"TLS handshake timeout", re.IGNORECASE),
    "HTTP client timeout": re.compile(r"Client\.Timeout exceeded|i/o timeout", re.IGNORECASE),
    "API throttling": re.compile(r"Throttling|Rate exceeded|RequestLimitExceeded|TooManyRequests"),
    "service unavailable": re.compile(r"ServiceUnavailable|StatusCode: 503"),
    "provider binary busy": re.compile(r"text file busy"),
}
# A destroy plans from the state alone, without reading every object back first: the state holds what the run
# created, and a provider delete of an object already gone counts as done (NotFound), so the refresh would only add
# a provider start and a read of each resource (about 2 s of an emulator destroy; seconds of minutes on AWS).
DESTROY_FLAGS = ("-refresh=false",)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_BOX = re.compile(r"^[│╷╵]\s?")
_WHERE = re.compile(r"^\s*on (.+?) line (\d+)")
_SNIPPET = re.compile(r"^\s+(\d+:|[├│└]|\()|^\s*with \S+")
_LOCAL_BACKEND = re.compile(r'^\s*backend\s+"local"\s*\{', re.MULTILINE)


class TerraformFailed(HarnessError):
    """A Terraform command exited non-zero; the message is its first error, with file:line when given."""

    exit_code = 1


class TransientFailure(TerraformFailed):
    """A failure matching one of TRANSIENT_ERRORS: retried with backoff."""


@dataclass(frozen=True)
class TerraformCli:
    path: Path
    flavour: str  # "terraform" or "tofu"


def find_cli(env: Mapping[str, str] | None = None) -> TerraformCli:
    """$HARNESS_TERRAFORM (a name or path), else `terraform`, else `tofu`, on PATH."""
    env = os.environ if env is None else env
    search_path = env.get("PATH")
    if wanted := env.get(TERRAFORM_ENV):
        found = shutil.which(wanted, path=search_path)
        if not found:
            raise EnvironmentProblem(f"{TERRAFORM_ENV}={wanted}: no such executable")
        return TerraformCli(Path(found), "tofu" if "tofu" in Path(found).name else "terraform")
    for name in CLI_NAMES:
        if found := shutil.which(name, path=search_path):
            return TerraformCli(Path(found), name)
    raise EnvironmentProblem(
        f"Terraform not found on PATH: install Terraform >= 1.7 or OpenTofu, or set {TERRAFORM_ENV}=/path/to/terraform"
    )


def first_error(output: str, root: Path | None = None) -> str:
    """Terraform's first `Error:` as one line: `file:line: summary: detail` (file relative to the cwd).

    An error that names a location wins over an earlier one that does not (e.g. init's "Terraform
    encountered problems during initialisation" preamble before the real configuration error).
    """
    lines = [_BOX.sub("", _ANSI.sub("", line)).rstrip() for line in output.splitlines()]
    starts = [i for i, line in enumerate(lines) if line.lstrip().startswith("Error: ")]
    if not starts:
        tail = [line for line in lines if line.strip()]
        return tail[-1].strip() if tail else "no output"
    blocks = [_error_block(lines[i : next((j for j in starts if j > i), len(lines))], root) for i in starts]
    where, summary, detail = next((b for b in blocks if b[0]), blocks[0])
    return f"{where}{summary}" + (f": {detail}" if detail and detail not in summary else "")


def _error_block(block: list[str], root: Path | None) -> tuple[str, str, str]:
    """(where, summary, detail) of one `Error:` block."""
    summary = block[0].strip().removeprefix("Error: ").strip()
    where, detail = "", ""
    for line in block[1:]:
        if not where and (match := _WHERE.match(line)):
            where = f"{_display_path(match.group(1).rstrip(':'), root)}:{match.group(2)}: "
        elif line.strip() and not _SNIPPET.match(line) and not _WHERE.match(line):
            detail = line.strip()
            break
    return where, summary, detail


def _display_path(name: str, root: Path | None) -> str:
    path = Path(name.split(",")[0])
    if root is not None and not path.is_absolute():
        path = root / path
    try:
        return os.path.relpath(path.resolve())
    except ValueError:
        return str(path)


def transient_error(output: str) -> str | None:
    """The name of the TRANSIENT_ERRORS pattern the output matches, if any."""
    return next((name for name, pattern in TRANSIENT_ERRORS.items() if pattern.search(output)), None)


def state_resources(state: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every resource of a `show -json` state document (root module and child modules): address, mode, type,
    name, index and values, as Terraform renders them."""
    modules = [state.get("values", {}).get("root_module", {})]
    while modules:
        module = modules.pop(0)
        yield from (dict(resource) for resource in module.get("resources", []))
        modules.extend(module.get("child_modules", []))


@dataclass(frozen=True)
class Plan:
    """A saved plan, read back with `show -json`."""

    document: dict[str, Any]

    @property
    def changes(self) -> list[tuple[str, list[str]]]:
        """(address, actions) of every resource the plan would touch."""
        return [
            (str(rc["address"]), list(rc["change"]["actions"]))
            for rc in self.document.get("resource_changes", [])
            if rc["change"]["actions"] not in (["no-op"], ["read"])
        ]

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)


class Terraform:
    """Runs one Terraform root for one run.

    `env` is the child's whole environment (e.g. the emulator's endpoint and dummy credentials);
    `watchdog`, polled while a command runs, returns a reason to abort (e.g. "the emulator exited").
    """

    def __init__(
        self,
        root: Path,
        run_dir: Path,
        *,
        env: Mapping[str, str],
        provider: ProviderSource,
        cli: TerraformCli | None = None,
        name: str | None = None,
        live: bool = False,
        console: Console | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        attempts: int = 3,
        retry_wait_s: float = 2.0,
        watchdog: Callable[[], str | None] | None = None,
    ) -> None:
        self.root = check_root(root)
        self.name = name or self.root.name
        self.cli = cli or find_cli(env)
        self.provider = provider
        self.state_path = run_dir / f"{self.name}.tfstate"
        self.work_dir = run_dir / "terraform" / self.name
        self.log_dir = run_dir / "logs"
        self.live = live
        self.console = console or Console(highlight=False)
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.retry_wait_s = retry_wait_s
        self.watchdog = watchdog
        self.use_env(env)
        self._sequence = 0
        self.command_seconds: list[tuple[str, float]] = []  # (step, wall time) of every command run

    def use_env(self, env: Mapping[str, str]) -> None:
        """The child's whole environment from now on (e.g. once the emulator it talks to has started)."""
        self._env = {k: v for k, v in env.items() if k not in self.provider.unset}
        self._env.update(self.provider.env)
        self._env.update(TF_DATA_DIR=str(self.work_dir / "data"), TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")

    @property
    def initialized(self) -> bool:
        """`init` has run in this run's data dir (it records the backend configuration there)."""
        return (self.work_dir / "data" / "terraform.tfstate").is_file()

    # --- commands -----------------------------------------------------------------------------------
    def init(self) -> None:
        try:
            self._run("init", ["init", "-input=false", f"-backend-config=path={self.state_path}"])
        except TerraformFailed as exc:
            raise install_failure(str(exc), self.provider) or exc from None

    def plan(self, variables: Mapping[str, Any], *, destroy: bool = False) -> Plan:
        plan_file = self.work_dir / "tfplan"
        args = ["plan", *self._change_flags(variables), f"-out={plan_file}", *(["-destroy"] if destroy else [])]
        self._run("plan-destroy" if destroy else "plan", args)
        return Plan(json.loads(self._run("show-plan", ["show", "-json", str(plan_file)], echo=False)))

    def apply(self, variables: Mapping[str, Any]) -> None:
        self._run("apply", ["apply", "-auto-approve", *self._change_flags(variables)])

    def destroy(self, variables: Mapping[str, Any]) -> None:
        self._run("destroy", ["destroy", "-auto-approve", *DESTROY_FLAGS, *self._change_flags(variables)])

    def output(self) -> dict[str, Any]:
        """Root outputs as plain values."""
        raw = json.loads(self._run("output", ["output", "-json"], echo=False))
        return {name: entry["value"] for name, entry in raw.items()}

    def state(self) -> dict[str, Any]:
        """The state as `show -json` renders it ({} when nothing was ever applied)."""
        if not self.state_path.is_file():
            return {}
        return dict(json.loads(self._run("show-state", ["show", "-json"], echo=False)))

    def managed_resources(self) -> list[str]:
        """Addresses of managed resources the state still holds."""
        if not self.state_path.is_file():
            return []
        try:
            document = json.loads(self.state_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputError(f"{self.state_path}: unreadable state ({exc})") from None
        return [
            f"{r.get('module', '') + '.' if r.get('module') else ''}{r['type']}.{r['name']}"
            for r in document.get("resources", [])
            if r.get("mode") == "managed" and r.get("instances")
        ]

    # --- plumbing -----------------------------------------------------------------------------------
    def _change_flags(self, variables: Mapping[str, Any]) -> list[str]:
        return ["-input=false", "-lock-timeout=30s", f"-var-file={self._write_vars(variables)}"]

    def _write_vars(self, variables: Mapping[str, Any]) -> Path:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / "terraform.tfvars.json"
        path.write_text(json.dumps(dict(variables), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path

    def _run(self, step: str, args: Sequence[str], *, echo: bool = True) -> str:
        def announce(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.console.print(f"terraform {step}: retrying after transient error ({exc})", markup=False)

        retrying = Retrying(
            retry=retry_if_exception_type(TransientFailure),
            stop=stop_after_attempt(self.attempts),
            # Exponential backoff plus jitter, so parallel runs do not retry in lockstep.
            wait=wait_exponential(multiplier=self.retry_wait_s, max=30 * self.retry_wait_s)
            + wait_random(0, self.retry_wait_s),
            before_sleep=announce,
            reraise=True,
        )
        return retrying(self._execute, step, list(args), echo)

    def _execute(self, step: str, args: list[str], echo: bool) -> str:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        log_path = self.log_dir / f"{self.name}-{self._sequence:02d}-{step}.log"
        command = [str(self.cli.path), f"-chdir={self.root}", args[0], "-no-color", *args[1:]]
        chunks: list[str] = []
        log_path.write_text(f"$ {shlex.join(command)}\n", encoding="utf-8")
        # Own session: a terminal Ctrl-C reaches only the harness, which forwards exactly one SIGINT
        # (a second one would make Terraform abandon in-flight calls).
        process = subprocess.Popen(
            command,
            env=self._env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        assert process.stdout is not None
        # The pump alone writes the log from here on: a stopped Terraform's provider plugins may hold its output
        # open after this method has given up on it.
        pump = threading.Thread(
            target=self._pump, args=(process.stdout, log_path, chunks, echo and self.live), daemon=True
        )
        pump.start()
        started = time.monotonic()
        try:
            self._supervise(process, step, log_path)
            pump.join()  # all of its output: `terraform output -json` is parsed
        finally:
            pump.join(STOP_GRACE_S)  # given up on (time-out, watchdog, Ctrl-C): no longer than its stop's grace
            self.command_seconds.append((step, time.monotonic() - started))
        output = "".join(chunks)
        if process.returncode == 0:
            return output
        message = f"{self.cli.flavour} {step} failed: {first_error(output, self.root)} (log: {log_path})"
        if name := transient_error(output):
            raise TransientFailure(f"{message} [{name}]")
        raise TerraformFailed(message)

    def _pump(self, stream: IO[str], log_path: Path, chunks: list[str], echo: bool) -> None:
        with log_path.open("a", encoding="utf-8") as log:
            for line in stream:
                chunks.append(line)
                log.write(line)
                log.flush()
                if echo:
                    self.console.print(
                        f"  [{self.name}] {line.rstrip()}", markup=False, highlight=False, soft_wrap=True
                    )

    def _supervise(self, process: subprocess.Popen[str], step: str, log_path: Path) -> None:
        deadline = time.monotonic() + self.timeout_s
        try:
            while process.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(POLL_S)
                if process.returncode is not None:
                    break
                if time.monotonic() > deadline:
                    _stop(process)
                    raise TerraformFailed(
                        f"{self.cli.flavour} {step} timed out after {self.timeout_s:.0f}s (log: {log_path})"
                    )
                if self.watchdog is not None and (problem := self.watchdog()):
                    _stop(process)
                    raise EnvironmentProblem(f"{problem} during {self.cli.flavour} {step} (log: {log_path})")
        except KeyboardInterrupt:
            _stop(process)
            raise


def _stop(process: subprocess.Popen[str]) -> None:
    """One SIGINT (Terraform finishes in-flight calls and saves state), then SIGKILL after a grace period."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def check_root(root: Path) -> Path:
    """A Terraform root the harness can run: exists, has .tf files, keeps state in a local backend."""
    if not root.is_dir():
        raise InputError(f"{root}: stack directory not found")
    sources = sorted(root.glob("*.tf"))
    if not sources:
        raise InputError(f"{root}: no *.tf files in the stack directory")
    if not any(_LOCAL_BACKEND.search(p.read_text(encoding="utf-8", errors="replace")) for p in sources):
        raise InputError(
            f'{root}: no `backend "local" {{}}` block; the harness keeps each run\'s state in its run directory'
        )
    return root.resolve()
