"""Issue 15's items, tried again with cases their first tests did not write."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run_datagc


def test_every_problem_of_the_configuration_is_named_at_once(tmp_path: Path) -> None:
    """Unknown keys, values that don't parse, from the file and the environment: one run names them all (and
    touches nothing), rather than one per run."""
    config = tmp_path / "datagc.toml"
    config.write_text('[sweep]\nmax_age = "soon"\ntemp_max_age = "later"\nmax_agee = "7d"\n[pressur]\nx = 1\n')
    orphan = tmp_path / "posts.json.tmp.1"
    orphan.write_text("old")
    result = run_datagc("sweep", "--data-dir", str(tmp_path), "--config", str(config), "--temp-max-age", "0s",
                        env={"DATAGC_PRESSURE_THRESHOLD": "2", "TEST_MODE": "maybe"})
    assert result.code == 2 and result.stdout == ""
    message = result.stderr
    assert message.startswith(f"datagc: config file {config}: unknown keys 'pressur.x', 'sweep.max_agee' ")
    for said in ("TEST_MODE = 'maybe' (from environment TEST_MODE): not a boolean",
                 f"sweep.max_age = 'soon' (from file {config}): not a duration",
                 "pressure.threshold = '2' (from environment DATAGC_PRESSURE_THRESHOLD): must be above 0"):
        assert said in message, message
    assert "temp_max_age = 'later'" not in message, "the flag given wins: the file's value is not read"
    assert len(message.splitlines()) == 1 and orphan.exists()
