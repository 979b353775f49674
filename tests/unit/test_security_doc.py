"""docs/security.md's table of RBAC rules is deploy/rbac.yaml's, rule for rule, with a reason."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
Rule = tuple[str, frozenset[str], frozenset[str], frozenset[str], str]


def manifest_rules(*paths: Path) -> set[Rule]:
    rules: set[Rule] = set()
    docs = [d for p in paths or (DEPLOY / "rbac.yaml",) for d in yaml.safe_load_all(p.read_text())]
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "Role"):
            continue
        scope = doc["metadata"].get("namespace", "cluster")
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                rules.add(
                    (
                        group,
                        frozenset(rule["resources"]),
                        frozenset(rule.get("resourceNames", ())),
                        frozenset(rule["verbs"]),
                        scope,
                    )
                )
    return rules


def documented_rules(table_number: int = 0) -> set[Rule]:
    """The rules of the ``table_number``-th table of RBAC rules in docs/security.md."""
    text = (REPO / "docs" / "security.md").read_text()
    table = "| API group |" + text.split("| API group |")[table_number + 1]
    rules: set[Rule] = set()
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        group, resources, verbs, scope, why = (c.strip() for c in line.strip("|").split("|"))
        assert why, f"no reason given for {line}"
        if group.startswith("role "):
            continue  # a binding to a built-in role, not a rule of ours
        names = re.findall(r"\(`([^`]+)` only\)", resources)
        plain = re.sub(r"\(.*?\)", "", resources)
        rules.add(
            (
                group.strip("`").replace('""', ""),
                frozenset(r.strip(" `") for r in plain.split(",")),
                frozenset(names),
                frozenset(v.strip() for v in verbs.split(",")),
                scope.strip("`"),
            )
        )
    return rules


def test_every_rbac_rule_is_documented_and_every_documented_rule_exists() -> None:
    manifest, documented = manifest_rules(), documented_rules()
    assert manifest - documented == set(), "rules in deploy/rbac.yaml missing from the docs"
    assert documented - manifest == set(), "rules in docs/security.md not in deploy/rbac.yaml"


def test_the_restricted_secret_access_table_is_what_its_overlay_changes() -> None:
    """deploy/restrict-secret-access/ replaces the ClusterRole's rules and adds a Role: the
    second table holds the rules that come out different."""
    overlay = DEPLOY / "restrict-secret-access"
    default = manifest_rules()
    restricted = manifest_rules(overlay / "clusterrole.yaml", overlay / "secrets.yaml")
    assert restricted - default == documented_rules(1)
    [dropped] = default - restricted - {r for r in default if r[4] != "cluster"}
    assert dropped[1] == frozenset({"secrets", "configmaps"})
