"""docs/security.md's table of RBAC rules is deploy/rbac.yaml's, rule for rule, with a reason."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
Rule = tuple[str, frozenset[str], frozenset[str], frozenset[str], str]


def manifest_rules() -> set[Rule]:
    rules: set[Rule] = set()
    for doc in yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text()):
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


def documented_rules() -> set[Rule]:
    text = (REPO / "docs" / "security.md").read_text()
    table = text[text.index("| API group |") :]
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
