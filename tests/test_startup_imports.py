"""What a rotate command imports: only its own machinery, since its start-up is most of its cost (bench_rotate)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import clean_env

#: the CLI run in a fresh interpreter, then every module it had loaded written to argv[1]
RUN_CLI = """
import sys
from pathlib import Path
from datagc.cli import main
out = Path(sys.argv[1])
sys.argv = ["datagc", *sys.argv[2:]]
status = 0
try:
    main()
except SystemExit as done:
    status = done.code
out.write_text(f"{status}\\n" + "\\n".join(sorted(sys.modules)))
"""

#: needed by audit, sweep, pressure or dry runs, never by a rotation
NOT_FOR_ROTATE = ("datagc.passes.audit", "datagc.census", "datagc.limits", "datagc.safety.walk", "datagc.parallel",
                  "datagc.foresight", "datagc.cdn", "datagc.feed.rewrite", "ctypes", "concurrent.futures")


def modules_after(tmp_path: Path, *args: str) -> tuple[str, set[str]]:
    out = tmp_path / "modules.txt"
    subprocess.run([sys.executable, "-c", RUN_CLI, str(out), *args], env=clean_env(), check=True,
                   stdout=subprocess.DEVNULL, timeout=120)
    status, *names = out.read_text().splitlines()
    return status, set(names)


def test_rotate_imports_none_of_the_other_passes_machinery(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    small, large = data / "small.jsonl", data / "large.jsonl"
    small.write_bytes(b'{"n":1}\n' * 10)
    large.write_bytes(b"".join(b'{"n":%d}\n' % n for n in range(20_000)))
    for logs, exit_status in (("small.jsonl", "0"), ("large.jsonl", "4")):  # 4: space reclaimed
        status, names = modules_after(tmp_path, "rotate", "--data-dir", str(data), "--logs", logs,
                                      "--max-bytes", "64KiB", "--keep-lines", "100", "--json")
        assert status == exit_status
        assert "datagc.passes.rotate" in names
        assert not names & set(NOT_FOR_ROTATE), sorted(names & set(NOT_FOR_ROTATE))
    assert large.read_bytes().splitlines()[0] == b'{"n":19900}'  # rotated: the newest 100 lines kept


def test_version_and_the_configuration_layer_define_no_dataclass(tmp_path: Path) -> None:
    """A dataclass costs ~0.5 ms to define (frozen: more), paid by every run: --version, the options
    and the configuration (schema, keys, loader) use NamedTuples and plain classes instead."""
    status, names = modules_after(tmp_path, "--version")
    assert status == "0"
    assert "dataclasses" not in names
    assert not {name for name in names if name.startswith("datagc.config")}
    loaded = subprocess.run([sys.executable, "-c", "import sys, datagc.cli, datagc.config.load, datagc.options; "
                             "print('dataclasses' in sys.modules)"],
                            env=clean_env(), check=True, capture_output=True, text=True, timeout=120)
    assert loaded.stdout.strip() == "False"


def test_sweep_and_pressure_without_cdn_verification_load_no_thread_pool(tmp_path: Path) -> None:
    """concurrent.futures (and the logging it imports) is for CDN verification only (unlinks fork their workers)."""
    data = tmp_path / "data"
    data.mkdir()
    for command, *options in (("sweep", "--max-age", "7d"), ("pressure", "--threshold", "0.99")):
        status, names = modules_after(tmp_path, command, "--data-dir", str(data), *options, "--json")
        assert status == "0"
        assert "datagc.cdn" in names
        assert not names & {"concurrent.futures", "logging"}, sorted(names & {"concurrent.futures", "logging"})


def test_audit_in_plain_lines_loads_no_json_library(tmp_path: Path) -> None:
    """orjson (and the json module it imports) is for JSON output; the boot audit writes plain lines."""
    data = tmp_path / "data"
    data.mkdir()
    status, names = modules_after(tmp_path, "audit", "--data-dir", str(data))
    assert status == "0"
    assert not names & {"orjson", "json"}, sorted(names & {"orjson", "json"})
    status, names = modules_after(tmp_path, "audit", "--data-dir", str(data), "--json")
    assert status == "0" and "orjson" in names


#: the CLI run with typer's command builder counting what it builds, written to argv[1]
COUNT_BUILT = """
import os
import sys
from pathlib import Path
import typer.main
built = []
build = typer.main.get_command_from_info
def counting(command_info, **kwargs):
    built.append(command_info.name)
    return build(command_info, **kwargs)
typer.main.get_command_from_info = counting
from datagc.cli import main
sys.argv = ["datagc", *sys.argv[2:]]
try:
    main()
except SystemExit:
    pass
Path(os.environ["BUILT_OUT"]).write_text(" ".join(built))
"""


def test_a_command_builds_only_its_own_click_command(tmp_path: Path) -> None:
    """Each of the eight commands costs the start-up its options' converters and help: a run builds its own;
    --help and a mistyped command still see them all."""
    data = tmp_path / "data"
    data.mkdir()
    out = tmp_path / "built.txt"

    def built(*args: str) -> list[str]:
        subprocess.run([sys.executable, "-c", COUNT_BUILT, "-", *args], env={**clean_env(), "BUILT_OUT": str(out)},
                       check=False, capture_output=True, timeout=120)
        return out.read_text().split()

    assert built("audit", "--data-dir", str(data)) == ["audit"]
    assert built("sweep", "--data-dir", str(data), "--dry-run") == ["sweep"]
    everything = built("--help")
    assert {"audit", "sweep", "pressure", "rotate", "run-all", "watch"} <= set(everything)
    assert set(built("audti")) == set(everything)
