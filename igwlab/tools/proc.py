"""The one way igwlab runs another program: an argument list, a timeout, captured output.

Never a shell string. Every command run is handed to the recorder (the run record), and a
running command can be killed when the user interrupts `up`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from igwlab.errors import IgwlabError, PrerequisiteError, StepTimeoutError

INSTALL_HINTS = {
    "k3d": "install k3d v5.7.4+ (https://k3d.io), or use an existing cluster with --context",
    "helm": "install Helm v3.14+ (https://helm.sh/docs/intro/install/)",
    "kubectl": "install kubectl v1.28+ (https://kubernetes.io/docs/tasks/tools/)",
    "docker": "install Docker (or Podman with its Docker socket), or use an existing cluster with --context",
}


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float

    def tail(self, lines: int = 6) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-lines:])


class ToolMissingError(PrerequisiteError):
    pass


class CommandFailedError(IgwlabError):
    def __init__(self, result: CommandResult, fix: str | None = None) -> None:
        self.result = result
        super().__init__(
            f"`{' '.join(result.argv[:3])}` failed (exit {result.returncode})",
            why=result.tail() or "it printed nothing",
            fix=fix or "see the command's output above; the run record has it in full",
        )


class CommandTimeoutError(StepTimeoutError):
    pass


Recorder = Callable[[CommandResult], None]


class ToolRunner:
    def __init__(self, recorder: Recorder | None = None, env: Mapping[str, str] | None = None) -> None:
        self._recorder = recorder
        self._env = dict(env) if env is not None else None
        self._active: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self.cancelled = threading.Event()

    @property
    def env(self) -> dict[str, str] | None:
        return dict(self._env) if self._env is not None else None

    def which(self, tool: str) -> str | None:
        path = (self._env or os.environ).get("PATH")
        return shutil.which(tool, path=path)

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        check: bool = True,
        input_text: str | None = None,
        fix: str | None = None,
    ) -> CommandResult:
        if isinstance(argv, str):  # a shell string would be split wrongly and invites injection
            raise TypeError("ToolRunner.run takes an argument list, not a string")
        executable = self.which(argv[0])
        if executable is None:
            raise ToolMissingError(
                f"{argv[0]} is not installed (not found on PATH)",
                why=f"igwlab runs `{argv[0]}` for this step",
                fix=INSTALL_HINTS.get(argv[0], f"install {argv[0]}"),
            )
        start = time.perf_counter()
        try:
            process = subprocess.Popen(
                [executable, *argv[1:]],
                stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                env=self._env,
            )
        except OSError as error:
            raise cannot_start(argv[0], executable, error) from error
        with self._lock:
            self._active.add(process)
        try:
            stdout, stderr = process.communicate(input=input_text, timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            result = CommandResult(tuple(argv), -9, stdout, stderr, time.perf_counter() - start)
            self._record(result)
            raise CommandTimeoutError(
                f"`{' '.join(argv[:3])}` did not finish within {timeout:.0f}s",
                why=result.tail() or "it printed nothing",
                fix="raise --timeout, or check what it waits for (network, image pulls)",
            ) from None
        finally:
            with self._lock:
                self._active.discard(process)
        result = CommandResult(tuple(argv), process.returncode, stdout, stderr, time.perf_counter() - start)
        self._record(result)
        if self.cancelled.is_set():
            raise KeyboardInterrupt
        if check and result.returncode != 0:
            raise CommandFailedError(result, fix=fix)
        return result

    def kill_all(self) -> None:
        """Stop every running command (Ctrl-C): they are recorded as killed."""
        self.cancelled.set()
        with self._lock:
            for process in list(self._active):
                process.kill()

    def _record(self, result: CommandResult) -> None:
        if self._recorder is not None:
            self._recorder(result)


def cannot_start(tool: str, executable: str, error: OSError) -> ToolMissingError:
    """A tool on PATH that the system refuses to run (not executable, wrong format, broken link)."""
    return ToolMissingError(
        f"cannot run {tool} ({executable}): {error.strerror or error}",
        why="the file found on PATH is not a program this machine can start",
        fix=INSTALL_HINTS.get(tool, f"reinstall {tool}"),
    )


def run_until_interrupted(
    argv: Sequence[str], env: Mapping[str, str] | None = None, on_output: Callable[[str], None] | None = None
) -> int:
    """Run a long-lived command (a port-forward) in the foreground until it ends or Ctrl-C stops it."""
    executable = shutil.which(argv[0], path=(env or os.environ).get("PATH"))
    if executable is None:
        raise ToolMissingError(f"{argv[0]} is not installed (not found on PATH)", fix=INSTALL_HINTS.get(argv[0]))
    process: subprocess.Popen[str] | None = None
    try:
        # Popen inside the try: a Ctrl-C right after the start still stops the child.
        process = subprocess.Popen(
            [executable, *argv[1:]],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
        )
        assert process.stdout is not None
        for line in process.stdout:
            if on_output is not None:
                on_output(line.rstrip())
        return process.wait()
    except OSError as error:
        raise cannot_start(argv[0], executable, error) from error
    except KeyboardInterrupt:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        return 0
