"""Audit the installed dependencies for known vulnerabilities (pip-audit), and say plainly what was checked.

The project has no lock file: the resolved set is what `make install-dev` installed in the virtualenv,
and that is what is audited (the project itself, installed editable, is skipped).

pip-audit asks a vulnerability service (PyPI's JSON API, or OSV with SLEEPTRACK_AUDIT_SERVICE=osv). On a
machine whose package index is a mirror without that API, or with no network, every dependency comes
back "could not be audited": this script then prints that NOTHING was audited and exits 0, unless
SLEEPTRACK_AUDIT_STRICT=1 (then 2). Known vulnerabilities always fail (exit 1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    service = os.environ.get("SLEEPTRACK_AUDIT_SERVICE", "pypi")
    strict = os.environ.get("SLEEPTRACK_AUDIT_STRICT", "") == "1"
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        cmd = [sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "--skip-editable",
               "--vulnerability-service", service, "--format", "json", "--output", str(report)]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except subprocess.TimeoutExpired:
            print(f"pip-audit: the {service} vulnerability service did not answer in 10 minutes: NOT audited")
            return 2 if strict else 0
        if not report.exists():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"pip-audit could not run against {service} ({last}): NOT audited")
            return 2 if strict else 0
        data = json.loads(report.read_text())
    deps = data.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    audited = [d for d in deps if not d.get("skip_reason")]
    vulnerable = [d for d in audited if d.get("vulns")]
    for d in vulnerable:
        for v in d["vulns"]:
            fixes = ", ".join(v.get("fix_versions", [])) or "no fix yet"
            print(f"VULNERABLE {d['name']} {d['version']}: {v['id']} (fixed in {fixes})")
    print(
        f"pip-audit ({service}): {len(deps)} dependencies, {len(audited)} audited, {len(skipped)} could not be "
        f"audited, {len(vulnerable)} with known vulnerabilities"
    )
    if vulnerable:
        return 1
    if deps and not audited:
        print(f"the {service} vulnerability service is not reachable from this machine: NOTHING was audited")
        return 2 if strict else 0
    if skipped:
        print("not audited: " + ", ".join(f"{d['name']}" for d in skipped[:20]) + (" …" if len(skipped) > 20 else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
