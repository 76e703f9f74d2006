"""contrib/prometheus/: the alert rules checked and unit-tested by promtool, and every metric they read exported."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from datagc.facts import DiskUsage
from datagc.metrics import build_registry
from datagc.model import RunReport, StepReport
from tests.tools import ROOT, run_tool

PROMETHEUS = ROOT / "contrib" / "prometheus"
RULES = PROMETHEUS / "datagc.rules.yml"
RULE_TESTS = PROMETHEUS / "datagc.rules.test.yml"


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


ALERTS = [rule["alert"] for rule in rules()]


def test_promtool_checks_the_rules() -> None:
    result = run_tool("promtool", "check", "rules", str(RULES))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = run_tool("promtool", "test", "rules", RULE_TESTS.name, cwd=PROMETHEUS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def alert_tests(alert: str) -> list[dict[str, Any]]:
    """The test groups of the unit-test file that evaluate ``alert``."""
    groups = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    return [group for group in groups if any(case["alertname"] == alert for case in group["alert_rule_test"])]


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    for alert in ALERTS:
        cases = [case for group in alert_tests(alert) for case in group["alert_rule_test"]
                 if case["alertname"] == alert]
        assert any(case["exp_alerts"] for case in cases), f"{alert} is never expected to fire"
        assert any(not case["exp_alerts"] for case in cases), f"{alert} is never expected to stay quiet"


@pytest.mark.parametrize("alert", ALERTS)
@pytest.mark.parametrize(("mutation", "template"), [
    ("never fires", "({expr}) and on() (vector(0) == 1)"),
    ("also fires for what it must not", '({expr}) or label_replace(vector(1), "mutant", "yes", "", "")'),
])
def test_the_unit_tests_catch_a_broken_alert(alert: str, mutation: str, template: str, tmp_path: Path) -> None:
    """An attacker's edit of one alert's expression, run against that alert's tests only: promtool must fail."""
    document = yaml.safe_load(RULES.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == alert:
                rule["expr"] = template.format(expr=rule["expr"])
    (tmp_path / RULES.name).write_text(yaml.safe_dump(document))
    suite = yaml.safe_load(RULE_TESTS.read_text())
    suite["tests"] = alert_tests(alert)
    (tmp_path / RULE_TESTS.name).write_text(yaml.safe_dump(suite))

    result = run_tool("promtool", "test", "rules", RULE_TESTS.name, cwd=tmp_path)

    assert result.returncode != 0, f"{alert}: the tests pass even when it {mutation}"
    assert f"alertname: {alert}" in result.stdout + result.stderr


def exported_names() -> set[str]:
    """Every metric family datagc exports (textfile and endpoint alike), from a pass with every gauge set."""
    disk = DiskUsage(total_bytes=100, used_bytes=50, free_bytes=50, used_fraction=0.5)
    report = RunReport("run-all", "/data", False, disk, disk_after=disk, steps=[StepReport("rotate")],
                       started_at=1.0, duration_seconds=1.0)
    return {family.name for family in build_registry(report, {}).collect()}


def test_every_datagc_metric_the_rules_read_is_exported() -> None:
    named = {name for rule in rules() for name in re.findall(r"\bdatagc_[a-z_]+", rule["expr"])}
    assert named and named <= exported_names(), sorted(named - exported_names())
