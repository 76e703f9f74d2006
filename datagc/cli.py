"""The command line: a thin typer layer over the library.

Each command turns its options into configuration overrides, loads and
validates the configuration before touching anything, calls the library and
hands the report to the renderer. This is the one place errors become
messages and exit statuses. Heavy modules (rich, orjson, humanize, the passes)
are imported only when a command needs them, so ``datagc --version`` starts fast.
"""

from __future__ import annotations

import copy
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import typer

from datagc import __version__
from datagc.errors import ConfigError, DatagcError, LockHeld
from datagc.exitcodes import Exit
from datagc.options import (
    AUDIT,
    CDN,
    COMMON,
    CONFIG_FILE,
    DATA_DIR,
    HISTORY,
    JSON,
    PRESSURE,
    READ,
    ROTATE,
    RUN_ALL,
    SWEEP,
    WATCH,
    Opt,
)

if TYPE_CHECKING:
    from datagc.config.schema import Config
    from datagc.render.terminal import Renderer

try:  # typer >= 0.26 carries its own copy of click
    from typer._click.exceptions import NoSuchOption
except ImportError:  # pragma: no cover - older typer
    from click.exceptions import NoSuchOption  # type: ignore[import-not-found,no-redef]
from typer.core import TyperGroup


class _Root(TyperGroup):
    """The top-level group: an option given before the command says where options go."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except NoSuchOption as error:
            takers = [name for name, command in self.commands.items()
                      if any(error.option_name in param.opts + param.secondary_opts for param in command.params)]
            if takers:
                name = next((arg for arg in args if arg in self.commands), "COMMAND")
                error.message = (f"No such option: {error.option_name}. Options go after the command: "
                                 f"datagc {name} {error.option_name} ...")
                error.possibilities = None
            raise


app = typer.Typer(
    cls=_Root,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Invocation:
    """The options one command was called with (a plain class: no dataclass is defined at start-up)."""

    __slots__ = ("opts", "values")

    def __init__(self, values: dict[str, Any], opts: tuple[Opt, ...]) -> None:
        self.values = values
        self.opts = opts

    def __getattr__(self, name: str) -> Any:
        """An option's value; False for a switch this command doesn't take (audit has no --dry-run)."""
        try:
            return self.values[name]
        except KeyError:
            if name in ("dry_run", "verbose", "quiet", "json_output"):
                return False
            raise AttributeError(name) from None

    def config(self) -> Config:
        from datagc.config.load import FlagValue, load_config

        flags = {
            opt.key: FlagValue(opt.flag_given(self.values[opt.param]), self.values[opt.param])
            for opt in self.opts
            if opt.key is not None and self.values.get(opt.param) is not None
        }
        return load_config(flags, os.environ, self.values.get("config_path"))

    def renderer(self) -> Renderer:
        from datagc.render.shared_stdout import whole_line_writes
        from datagc.render.terminal import Renderer

        sys.stdout = whole_line_writes(sys.stdout)  # everything written after this keeps its order
        return Renderer(
            out=sys.stdout,
            err=sys.stderr,
            is_terminal=sys.stdout.isatty(),
            err_is_terminal=sys.stderr.isatty(),
            json=self.json_output,
            quiet=self.quiet,
            verbose=self.verbose,
        )

    def wait_seconds(self) -> float | None:
        if self.wait is None:
            return None
        from datagc.config.values import parse_duration_setting

        try:
            return parse_duration_setting(self.wait)
        except ValueError as error:
            raise ConfigError(f"--wait '{self.wait}': {error}") from None


def command(name: str, opts: Sequence[Opt]) -> Callable[[Callable[[Invocation], int]], None]:
    """Register ``func`` as command ``name`` taking ``opts``; its docstring is its --help.

    The options are declared once (``datagc.options``) and shared by every command that
    takes them; the function receives them as one ``Invocation``.
    """
    options = tuple(opts)

    def decorate(func: Callable[[Invocation], int]) -> None:
        def handler(**values: Any) -> None:
            invocation = Invocation(values, options)
            raise typer.Exit(_guard(func, invocation))

        handler.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(o.param, inspect.Parameter.KEYWORD_ONLY, default=o.info, annotation=o.annotation)
             for o in options]
        )
        handler.__annotations__ = {o.param: o.annotation for o in options}
        handler.__doc__ = func.__doc__
        handler.__name__ = func.__name__
        app.command(name)(handler)

    return decorate


def _guard(func: Callable[[Invocation], int], invocation: Invocation) -> int:
    """The one boundary where errors become a message on stderr and an exit status."""
    from datagc.text import escape

    try:
        return func(invocation)
    except DatagcError as error:
        if not (isinstance(error, LockHeld) and invocation.quiet):  # -q under cron: 75 says it, no mail
            sys.stderr.write(f"datagc: {escape(str(error))}\n")
        return int(error.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("datagc: interrupted\n")
        return 130


def _run(invocation: Invocation, command_name: str, steps: Sequence[str]) -> int:
    from datagc.runner import RunOptions, run_and_report

    config = invocation.config()
    options = RunOptions(invocation.dry_run, invocation.wait_seconds(), invocation.verbose)
    return run_and_report(command_name, steps, config, options, invocation.renderer())[1]


@command("audit", READ + AUDIT + tuple(opt for opt in PRESSURE if opt.key != "pressure.min_age"))  # the limits
def audit_command(invocation: Invocation) -> int:
    """Read-only: sizes, the largest files, disk usage, and space held by deleted-but-open files.

    Takes no lock and changes nothing. Exit 32 when the disk is above the
    pressure threshold.

    Example: datagc audit --data-dir /app/.data --top 20
    """
    from datagc.passes.audit import audit
    from datagc.safety.datadir import DataDir

    config = invocation.config()
    renderer = invocation.renderer()
    if not config.enabled:
        renderer.message(f"note: datagc is disabled (enabled=false from {config.sources['enabled']}); "
                         "audit only reads, so it runs")
    with DataDir(config.data_dir) as data_dir, renderer.pass_progress() as progress:
        if progress is not None:
            progress.begin("audit")
        report = audit(config, data_dir, progress)
    renderer.audit_report(report)
    return int(report.flags)


@command("rotate", COMMON + ROTATE)
def rotate_command(invocation: Invocation) -> int:
    """Keep only the newest lines of each event log larger than rotate.max_bytes, losing no event.

    Example: datagc rotate --max-bytes 50MiB --keep-lines 10000 --dry-run
    """
    return _run(invocation, "rotate", ["rotate"])


@command("sweep", COMMON + CDN + SWEEP)
def sweep_command(invocation: Invocation) -> int:
    """Delete old and already-published media (CDN on) and orphan temp files, keeping the feed consistent.

    Example: datagc sweep --cdn --max-age 7d --dry-run
    """
    return _run(invocation, "sweep", ["sweep"])


@command("pressure", COMMON + CDN + PRESSURE)
def pressure_command(invocation: Invocation) -> int:
    """When the disk is fuller than the threshold, evict media down to the target, least harmful first.

    Example: datagc pressure --threshold 0.7 --target 0.6 --min-age 1d
    """
    return _run(invocation, "pressure", ["pressure"])


@command("run-all", COMMON + RUN_ALL)
def run_all_command(invocation: Invocation) -> int:
    """Rotate, sweep, then pressure; each step isolated, so one failing never stops the others.

    Example: datagc run-all --json
    """
    from datagc.runner import RUN_ALL_STEPS

    return _run(invocation, "run-all", RUN_ALL_STEPS)


@command("watch", COMMON + RUN_ALL + WATCH)
def watch_command(invocation: Invocation) -> int:
    """For hosts without cron: run-all after watch.initial_delay, then every watch.interval.

    SIGTERM or SIGINT ends it cleanly between passes (exit 0); a failing pass
    never ends the loop.

    Example: datagc watch --interval 1h --initial-delay 60s
    """
    import dataclasses

    from datagc.runner import RunOptions
    from datagc.watch import run_watch

    config = invocation.config()
    renderer = dataclasses.replace(invocation.renderer(), json_lines=True)
    options = RunOptions(invocation.dry_run, invocation.wait_seconds(), invocation.verbose)
    return run_watch(config, options, renderer)


@command("history", HISTORY)
def history_command(invocation: Invocation) -> int:
    """What datagc did here, newest first, from its journal: where did this file go, and why.

    Each deletion, rotation and feed change with its time, command, reason
    and bytes. Read-only: takes no lock, creates nothing.

    Example: datagc history 'images/*.png' --since 7d --data-dir /app/.data
    """
    import time

    from datagc.history import history
    from datagc.safety.datadir import DataDir
    from datagc.units import parse_duration

    config = invocation.config()
    try:
        since = None if invocation.since is None else parse_duration(invocation.since)
    except ValueError as error:
        raise ConfigError(f"--since {invocation.since!r}: {error}") from None
    with DataDir(config.data_dir) as data_dir:
        report = history(data_dir, config, invocation.pattern, since, time.time())
    invocation.renderer().history_report(report)
    return 0


@command("config", (DATA_DIR, CONFIG_FILE, JSON))
def config_command(invocation: Invocation) -> int:
    """Print the effective configuration and where each value came from.

    Example: datagc config --config /etc/datagc.toml --json
    """
    from datagc.config.explain import effective_values, explain_limits

    config = invocation.config()
    invocation.renderer().config_table(effective_values(config), explain_limits(config.pressure))
    return 0


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"datagc {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Keep a service's data directory from filling its disk, without touching its product.

    Exit status is a bit mask: 1 a step failed, 2 usage or configuration error,
    4 logs rotated, 8 files swept, 16 pressure eviction, 32 disk still above the
    threshold, 75 another datagc holds the lock.
    """


def main() -> None:
    """Run the command line; typer builds the click command of only the datagc command named (each of the
    others would cost the start-up ~1 ms: their options' converters and help)."""
    named = [info for info in app.registered_commands if info.name in sys.argv[1:2]]
    if not named:
        app()  # --help, --version, no command, or a mistyped one: the full group says what there is
        return
    only = copy.copy(app)
    only.registered_commands = named
    only()


__all__ = ["Exit", "app", "main"]
