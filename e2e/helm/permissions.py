#!/usr/bin/env python3
"""Prints the hub permissions of src/permissions.rs (HUB_CONTROLLER) as `kubectl auth can-i` checks, one per line:
SCOPE VERB GROUP RESOURCE SUBRESOURCE NAME ("-" when none). Used by e2e/tests/40-helm-prometheus.sh."""
import re
import sys

text = open(sys.argv[1] if len(sys.argv) > 1 else "src/permissions.rs").read()
crd_names = re.search(r"pub const CRD_NAMES: &\[&str\] = &\[(.*?)\];", text, re.S).group(1)
first_crd = re.findall(r'"([^"]+)"', crd_names)[0]
table = re.search(r"pub const HUB_CONTROLLER: &\[Permission\] = &\[(.*?)\n\];", text, re.S).group(1)
entry = re.compile(
    r'p\(\s*(\w+),\s*"([^"]*)",\s*"([^"]*)",\s*&\[([^\]]*)\],\s*(CRD_NAMES|&\[([^\]]*)\])', re.S)
n = 0
for m in entry.finditer(table):
    scope, group, resource, verbs, names, name_list = m.groups()
    name = first_crd if names == "CRD_NAMES" else (re.findall(r'"([^"]+)"', name_list or "") or ["-"])[0]
    res, _, sub = resource.partition("/")
    for verb in re.findall(r'"([^"]+)"', verbs):
        print(scope, verb, group or "core", res, sub or "-", name)
        n += 1
if n == 0:
    sys.exit("no permissions found in src/permissions.rs")
