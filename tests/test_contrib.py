"""contrib/: the systemd units checked by systemd itself, the crontab's commands run, the container entrypoint run."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from datagc.config.keys import KEYS
from datagc.demo import build_sample
from datagc.exitcodes import Exit
from tests.helpers import DATAGC, clean_env, run_datagc
from tests.process_lines import Running

CONTRIB = Path(__file__).resolve().parent.parent / "contrib"
UNITS = ("datagc.service", "datagc.timer", "datagc-audit.service")
INSTALLED = "/usr/local/bin/datagc"
ORPHAN = "posts.json.tmp.1763000000000"
ENV_NAMES = {name for key in KEYS for name in key.env}


def settings(unit: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file, every value of each key."""
    found: dict[str, list[str]] = {}
    for line in (CONTRIB / "systemd" / unit).read_text().splitlines():
        if re.match(r"^[A-Za-z]+=", line):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.fixture
def units(tmp_path: Path) -> Path:
    """The units with ExecStart pointing at the datagc under test (verify checks the binary exists)."""
    for unit in UNITS:
        text = (CONTRIB / "systemd" / unit).read_text()
        (tmp_path / unit).write_text(text.replace(INSTALLED, DATAGC))
    return tmp_path


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed: the units can't be verified here")
    return path


def test_systemd_verifies_the_units_without_a_warning(units: Path) -> None:
    result = subprocess.run([systemd_analyze(), "verify", *(str(units / unit) for unit in UNITS)],
                            capture_output=True, text=True, check=False)

    ours = [line for line in (result.stdout + result.stderr).splitlines() if str(units) in line]
    assert result.returncode == 0 and ours == [], result.stdout + result.stderr


@pytest.mark.parametrize("unit", ["datagc.service", "datagc-audit.service"])
def test_the_services_are_hardened(units: Path, unit: str) -> None:
    """systemd's own exposure score stays at 3.0 or below ("OK"; an unhardened service scores 9.6)."""
    result = subprocess.run([systemd_analyze(), "security", "--offline=true", "--threshold=30", str(units / unit)],
                            capture_output=True, text=True, check=False)
    if "unrecognized option" in result.stderr:
        pytest.skip(f"this systemd-analyze has no offline security scoring: {result.stderr.strip()}")
    exposure = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert exposure is not None, result.stdout + result.stderr
    assert result.returncode == 0, f"exposure {exposure.group(1)} is above 3.0"


def test_success_exit_status_lists_exactly_the_reclaim_only_codes() -> None:
    reclaim = (Exit.ROTATED, Exit.SWEPT, Exit.PRESSURE_DELETED)
    codes = sorted({int(sum(combo)) for n in (1, 2, 3) for combo in itertools.combinations(reclaim, n)})
    service = settings("datagc.service")
    assert service["SuccessExitStatus"] == [" ".join(map(str, codes))] == ["4 8 12 16 20 24 28"]
    assert service["Type"] == ["oneshot"]
    assert service["ExecStart"] == [f"{INSTALLED} run-all"]
    assert settings("datagc-audit.service")["ExecStart"] == [f"{INSTALLED} audit"]


def test_the_data_dir_is_the_one_writable_path_and_the_same_everywhere() -> None:
    service = settings("datagc.service")
    data_dir = service["Environment"][0].removeprefix("DATAGC_DATA_DIR=")
    assert service["ReadWritePaths"] == service["RequiresMountsFor"] == [data_dir]
    assert service["ProtectSystem"] == ["strict"] and service["NoNewPrivileges"] == ["yes"]
    audit = settings("datagc-audit.service")
    assert audit["Environment"] == service["Environment"] and "ReadWritePaths" not in audit
    assert audit["EnvironmentFile"] == service["EnvironmentFile"] == ["-/etc/default/datagc"]


def test_the_timer_is_hourly_spread_and_catches_up() -> None:
    timer = settings("datagc.timer")
    assert timer["OnCalendar"] == ["hourly"] and timer["Persistent"] == ["true"] and timer["RandomizedDelaySec"]


@pytest.mark.parametrize("name", ["systemd/datagc.env", "crontab"])
def test_every_setting_named_in_contrib_exists(name: str) -> None:
    named = set(re.findall(r"\b((?:DATAGC|GC)_[A-Z_]+)=", (CONTRIB / name).read_text()))
    assert named and named <= ENV_NAMES, sorted(named - ENV_NAMES)


def crontab_commands() -> list[list[str]]:
    """The datagc command of each job line, without redirections or pipes."""
    commands = []
    for line in (CONTRIB / "crontab").read_text().splitlines():
        if not line.strip() or line.startswith("#") or re.match(r"^[A-Z_]+=", line):
            continue
        words = shlex.split(line.split("|")[0], comments=True)
        start = words.index("datagc")
        schedule = words[:start - 1]  # the sixth field is the user
        assert len(schedule) == 5 or schedule[:1] == ["@reboot"], line
        commands.append([word for word in words[start + 1:] if not word.startswith("2>")])
    return commands


def test_the_crontab_commands_run(tmp_path: Path) -> None:
    commands = crontab_commands()
    assert [command[0] for command in commands] == ["run-all", "pressure", "audit"]
    build_sample(tmp_path)
    for command in commands:
        dry = ["--dry-run"] if command[0] != "audit" else []
        result = run_datagc(*command, *dry, "--data-dir", str(tmp_path), "--threshold", "1")
        assert result.code not in (1, 2, 75), (command, result.stderr)


# --- the container entrypoint -----------------------------------------------------------------

SERVICE = """
import signal, sys, time
def stop(signum, frame):
    print(f"service: got {signal.Signals(signum).name}", flush=True)
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGHUP, lambda signum, frame: print("service: got SIGHUP", flush=True))
print("service: started", flush=True)
while True:
    time.sleep(0.05)
"""


def shells() -> list[str]:
    return [shell for shell in ("dash", "bash", "busybox") if shutil.which(shell)]


@pytest.fixture(params=shells())
def entrypoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, list[str], dict[str, str]]]:
    """(data dir, argv prefix running the entrypoint under one shell, its environment)."""
    root = tmp_path / "data"
    build_sample(root)
    shell = [request.param, "sh"] if request.param == "busybox" else [request.param]
    env = clean_env({
        "PATH": f"{Path(DATAGC).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATAGC_DATA_DIR": str(root),
        "DATAGC_WATCH_INITIAL_DELAY": "0",
        "DATAGC_WATCH_INTERVAL": "300ms",
        "DATAGC_PRESSURE_THRESHOLD": "1",
    })
    yield root, [*shell, str(CONTRIB / "docker-entrypoint.sh")], env
    marker = f"DATAGC_DATA_DIR={root}".encode()
    leftover = [pid for pid in os.listdir("/proc") if pid.isdigit() and marker in environ(pid).split(b"\0")]
    for pid in leftover:
        os.kill(int(pid), signal.SIGKILL)
    assert leftover == [], "the entrypoint left processes running"


def environ(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def test_the_entrypoint_audits_then_runs_the_service_and_watch_and_hands_sigterm_to_both(
        entrypoint: tuple[Path, list[str], dict[str, str]]) -> None:
    root, argv, env = entrypoint
    container = Running([*argv, sys.executable, "-c", SERVICE], env, merge=True)
    try:
        container.wait_for(container.out, "service: started")
        container.wait_for(container.out, "[janitor] run-all: ")
        container.process.send_signal(signal.SIGHUP)
        container.wait_for(container.out, "service: got SIGHUP")
        code = container.stop(signal.SIGTERM)
    finally:
        container.close()

    assert code == 3, "the container exits with the service's status"
    lines = container.out
    first_audit = next(i for i, line in enumerate(lines) if line.startswith("[disk-audit] total="))
    assert first_audit < lines.index("service: started"), "the audit runs before the service starts"
    assert "service: got SIGTERM" in lines
    assert "[janitor] watch: stopped by SIGTERM" in lines
    assert not (root / ORPHAN).exists(), "watch swept beside the service"


def test_sigint_stops_the_service_with_sigterm(entrypoint: tuple[Path, list[str], dict[str, str]]) -> None:
    _, argv, env = entrypoint
    container = Running([*argv, sys.executable, "-c", SERVICE], env, merge=True)
    try:
        container.wait_for(container.out, "service: started")
        container.wait_for(container.out, "[janitor] watch: first pass in")
        code = container.stop(signal.SIGINT)
    finally:
        container.close()

    assert code == 3
    assert "service: got SIGTERM" in container.out
    assert "[janitor] watch: stopped by SIGTERM" in container.out


def test_a_service_that_ends_on_its_own_ends_the_watch_and_the_container(
        entrypoint: tuple[Path, list[str], dict[str, str]]) -> None:
    root, argv, env = entrypoint
    service = f"while [ -e {shlex.quote(str(root / ORPHAN))} ]; do sleep 0.1; done; echo 'service: done'; exit 5"
    container = Running([*argv, "sh", "-c", service], env, merge=True)
    try:
        code = container.finish()
    finally:
        container.close()

    assert code == 5
    assert container.out.index("service: done") < container.out.index("[janitor] watch: stopped by SIGTERM")


def test_datagc_failing_never_keeps_the_service_down(
        entrypoint: tuple[Path, list[str], dict[str, str]], tmp_path: Path) -> None:
    _, argv, env = entrypoint
    env = {**env, "DATAGC_DATA_DIR": str(tmp_path / "not-mounted")}
    container = Running([*argv, "sh", "-c", "echo 'service: ran'; exit 0"], env, merge=True)
    try:
        code = container.finish()
    finally:
        container.close()

    assert code == 0
    assert "[entrypoint] datagc audit exited 2; starting the service anyway" in container.out
    assert "service: ran" in container.out


def test_the_entrypoint_needs_a_command() -> None:
    result = subprocess.run(["sh", str(CONTRIB / "docker-entrypoint.sh")], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 64 and "usage: docker-entrypoint.sh COMMAND" in result.stderr


# --- MemoryDenyWriteExecute ------------------------------------------------------------------

PR_SET_MDWE = 65
MDWE_REFUSE_EXEC_GAIN = 1


def test_datagc_works_under_memory_deny_write_execute(tmp_path: Path) -> None:
    """datagc.service sets MemoryDenyWriteExecute=yes; a run-all that rewrites the feed (ctypes renameat2) still works.

    The kernel's own W^X switch (PR_SET_MDWE, Linux 6.3+) is set in a child that then runs datagc.
    """
    probe = subprocess.run([sys.executable, "-c", (
        "import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True);"
        f"sys.exit(0 if libc.prctl({PR_SET_MDWE}, {MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) == 0 else ctypes.get_errno())"
    )], check=False)
    if probe.returncode != 0:
        pytest.skip(f"prctl(PR_SET_MDWE) is refused here (errno {probe.returncode}): kernel older than 6.3")
    root = tmp_path / "data"
    build_sample(root)
    wrapper = (
        "import ctypes, os, sys; libc = ctypes.CDLL(None, use_errno=True);"
        f"assert libc.prctl({PR_SET_MDWE}, {MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) == 0;"
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    result = subprocess.run(
        [sys.executable, "-c", wrapper, DATAGC, "run-all", "--cdn", "--threshold", "1", "--json",
         "--data-dir", str(root)],
        capture_output=True, text=True, env=clean_env(), check=False)

    assert result.returncode == Exit.SWEPT, result.stderr
    sweep = orjson.loads(result.stdout)["steps"][1]
    assert any(action["kind"] == "feed-null" for action in sweep["actions"]), "the feed was rewritten"


#: What rotation asks of the kernel for the old log: a read lease, which on another owner's file needs CAP_LEASE.
LEASE_PROBE = r"""
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    print("leased")
except OSError as error:
    print(error.strerror)
"""


def as_the_unit_runs(user: str | None, without: str | None = None) -> list[str]:
    """A setpriv command line giving a process the capabilities datagc.service gives datagc (but ``without``),
    run as ``user``."""
    service = settings("datagc.service")
    bounding = [cap for cap in service["CapabilityBoundingSet"][0].split() if cap != without]
    ambient = [cap for cap in service.get("AmbientCapabilities", [""])[0].split() if cap != without]
    names = ",".join("+" + cap.removeprefix("CAP_").lower() for cap in bounding)
    command = ["setpriv", f"--bounding-set=-all,{names}"]
    if user is not None:
        command += [f"--reuid={user}", f"--regid={user}", "--clear-groups"]
        if ambient:
            extra = ",".join("+" + cap.removeprefix("CAP_").lower() for cap in ambient)
            command += [f"--inh-caps=-all,{extra}", f"--ambient-caps={extra}"]
    return command


@pytest.mark.parametrize("user", [None, "1000"], ids=["root", "User="])
def test_the_service_can_lease_a_log_another_user_owns(user: str | None) -> None:
    """Run as root (the unit's default) or with User=, datagc leases the old log of another owner (CAP_LEASE)."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed: the unit's capabilities can't be given to a process")
    with tempfile.TemporaryDirectory(prefix="datagc-lease-") as directory:  # reachable by uid 1000, unlike tmp_path
        os.chmod(directory, 0o755)
        log = Path(directory) / "events.jsonl"
        _check_lease_probes(log, user)


def _check_lease_probes(log: Path, user: str | None) -> None:
    log.write_bytes(b"line\n")
    log.chmod(0o644)
    os.chown(log, 2000, 2000)
    python = "/usr/bin/python3"  # the test's own may live where another user can't run it (pyenv under /root)
    if not os.access(python, os.X_OK):
        pytest.skip(f"{python} is not installed: no interpreter every user can run")

    def probe(with_unit_caps: bool) -> str:
        result = subprocess.run([*as_the_unit_runs(user, None if with_unit_caps else "CAP_LEASE"), python, "-c",
                                 LEASE_PROBE, str(log)],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert probe(with_unit_caps=True) == "leased"
    assert probe(with_unit_caps=False) == "Permission denied"  # what the unit gave before CAP_LEASE


#: A process of another user holding a file open until its stdin closes.
HOLDER = "import sys; handle = open(sys.argv[1], 'rb'); print('open', flush=True); sys.stdin.read()"


def test_the_service_sees_the_files_another_users_process_holds_open() -> None:
    """As the unit runs it (root, its bounding set), pressure keeps a file a process of another user holds open,
    and names the holder: /proc/PID/fd of that process is readable with CAP_SYS_PTRACE, and only with it.
    (ProtectProc=invisible, which a test can't apply, hides no process from root with that capability.)"""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed: the unit's capabilities can't be given to a process")
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip(f"{python} is not installed: no interpreter every user can run")
    with tempfile.TemporaryDirectory(prefix="datagc-held-") as directory:  # reachable by uid 2000, unlike tmp_path
        root = Path(directory) / "data"
        (root / "images").mkdir(parents=True)
        os.chmod(directory, 0o755)
        os.chmod(root, 0o755)
        os.chmod(root / "images", 0o755)
        (root / "posts.json").write_text("[]")
        for name in ("held.png", "free.png"):
            (root / "images" / name).write_bytes(b"x" * 4096)
            os.utime(root / "images" / name, (1, 1))
        holder = subprocess.Popen(["setpriv", "--reuid=2000", "--regid=2000", "--clear-groups", python, "-c", HOLDER,
                                   str(root / "images" / "held.png")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "open\n"

            def pressure(without: str | None) -> dict[str, str]:
                """The run's kept files, and why."""
                result = subprocess.run(
                    [*as_the_unit_runs(None, without), DATAGC, "pressure", "--data-dir", str(root), "--json",
                     "--threshold", "0.000001", "--target", "0.000001", "--min-age", "0s"],
                    capture_output=True, text=True, env=clean_env(), timeout=120, check=False)
                assert result.returncode & Exit.PRESSURE_DELETED, result.stderr
                kept: list[dict[str, str]] = orjson.loads(result.stdout)["steps"][0]["kept"]
                return {entry["path"]: entry["why"] for entry in kept}

            kept = pressure(without=None)
            assert (root / "images" / "held.png").exists() and not (root / "images" / "free.png").exists()
            assert f"held open by pid {holder.pid}" in kept["images/held.png"], kept
            pressure(without="CAP_SYS_PTRACE")  # what the unit gave before: the holder is not seen
            assert not (root / "images" / "held.png").exists()
        finally:
            holder.kill()
            holder.wait()
