"""Reporters: text (rich table), JSON, SARIF 2.1.0 (code scanning) and JUnit XML (any CI)."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from harness import __version__
from harness.gate.api import Report
from harness.gate.model import Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "note"}


def _summary(report: Report) -> str:
    return (
        f"{report.errors} error(s), {report.warnings} warning(s), {len(report.suppressed)} suppressed; "
        f"{len(report.rules)} rules over {report.files} files"
    )


def text(report: Report, width: int | None = None) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or 160, highlight=False, soft_wrap=False, force_terminal=False)
    if report.findings:
        table = Table(show_lines=False, header_style="bold")
        table.add_column("severity")
        table.add_column("rule")
        table.add_column("where", overflow="fold")
        table.add_column("problem", overflow="fold", ratio=3)
        table.add_column("fix", overflow="fold", ratio=2)
        styles = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.NOTE: "cyan"}
        for f in report.findings:
            table.add_row(
                f"[{styles[f.severity]}]{f.severity.value}[/]", f.rule_id, f"{f.file}:{f.line}", f.message, f.fix
            )
        console.print(table)
    console.print(("FAILED: " if report.errors else "passed: ") + _summary(report), markup=False)
    return buffer.getvalue()


def as_json(report: Report) -> str:
    data = {
        "errors": report.errors,
        "warnings": report.warnings,
        "findings": [_finding(f) for f in report.findings],
        "suppressed": [{**_finding(f), "reason": s.reason} for f, s in report.suppressed],
        "rules": [r.id for r in report.rules],
        "files": report.files,
        "notes": report.notes,
    }
    return json.dumps(data, indent=2) + "\n"


def _finding(f: Any) -> dict[str, Any]:
    return {
        "rule": f.rule_id,
        "severity": f.severity.value,
        "message": f.message,
        "file": f.file,
        "line": f.line,
        "fix": f.fix,
    }


def sarif(report: Report) -> str:
    rules = report.rules
    index = {r.id: i for i, r in enumerate(rules)}
    data = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "harness-check",
                        "version": __version__,
                        "rules": [
                            {
                                "id": r.id,
                                "name": r.title,
                                "shortDescription": {"text": r.title},
                                "fullDescription": {"text": r.doc},
                                "help": {"text": r.doc},
                                "defaultConfiguration": {"level": _SARIF_LEVEL[r.severity]},
                            }
                            for r in rules
                        ],
                    }
                },
                "results": [
                    {
                        "ruleId": f.rule_id,
                        **({"ruleIndex": index[f.rule_id]} if f.rule_id in index else {}),
                        "level": _SARIF_LEVEL[f.severity],
                        "message": {"text": f"{f.message}. Fix: {f.fix}"},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": f.file, "uriBaseId": "%SRCROOT%"},
                                    "region": {"startLine": f.line},
                                }
                            }
                        ],
                    }
                    for f in report.findings
                ],
                # What the gate could not check travels with the results, so a green scan is not misread.
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "toolExecutionNotifications": [
                            {"level": "note", "message": {"text": note}} for note in report.notes
                        ],
                    }
                ],
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
    return json.dumps(data, indent=2) + "\n"


# Characters XML 1.0 cannot carry (control characters from a manifest would make the file unreadable).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group(0)):02x}", value)


def junit(report: Report) -> str:
    """One test case per rule: failed when the rule found errors (warnings go to system-out)."""
    suite = ET.Element("testsuite", name="harness check", tests=str(len(report.rules)), errors="0", skipped="0")
    failures = 0
    for r in report.rules:
        case = ET.SubElement(suite, "testcase", classname="harness.check", name=f"{r.id} {r.title}")
        mine = [f for f in report.findings if f.rule_id == r.id]
        errors = [f for f in mine if f.severity is Severity.ERROR]
        if errors:
            failures += 1
            failure = ET.SubElement(case, "failure", message=f"{len(errors)} finding(s)", type=r.id)
            failure.text = _xml_text("\n".join(f"{f.file}:{f.line}: {f.message} (fix: {f.fix})" for f in errors))
        others = [f for f in mine if f.severity is not Severity.ERROR]
        if others:
            out = ET.SubElement(case, "system-out")
            out.text = _xml_text("\n".join(f"{f.severity.value}: {f.file}:{f.line}: {f.message}" for f in others))
    if report.notes:
        ET.SubElement(suite, "system-out").text = _xml_text("\n".join(f"note: {note}" for note in report.notes))
    suite.set("failures", str(failures))
    root = ET.Element("testsuites", name="harness check", tests=str(len(report.rules)), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


FORMATS: dict[str, Callable[[Report], str]] = {"text": text, "json": as_json, "sarif": sarif, "junit": junit}
