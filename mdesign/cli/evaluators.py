"""``mdesign evaluators``: the registered property evaluators with their parameters."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluators",
        help="list the registered property evaluators, their parameters and units",
        description=(
            "The property evaluators `mdesign evaluate --evaluator NAME` accepts: the built-ins "
            "and those installed through the entry-point group mdesign.evaluators. Any "
            "module:function path is accepted as well. Parameters are given as "
            "--param KEY=VALUE (lists comma-separated)."
        ),
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mdesign.evaluators import list_evaluators

    infos = list_evaluators()
    if args.json:
        out = [
            {
                "name": e.name,
                "summary": e.summary,
                "source": e.source,
                "parameters": [
                    {
                        "name": p.name,
                        "type": p.type_name,
                        "default": list(p.default) if isinstance(p.default, tuple) else p.default,
                        "unit": p.unit,
                        "required": p.required,
                        "description": p.description,
                    }
                    for p in e.parameters.values()
                ],
            }
            for e in infos
        ]
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    lines = []
    for e in infos:
        lines.append(f"{e.name}  ({e.source})")
        if e.summary:
            lines.append(f"    {e.summary}")
        for p in e.parameters.values():
            if p.required:
                default = "required"
            elif isinstance(p.default, tuple):
                default = ",".join(str(v) for v in p.default)
            else:
                default = str(p.default)
            unit = f" [{p.unit}]" if p.unit else ""
            lines.append(f"    {p.name}={default}{unit}  ({p.type_name})  {p.description}")
        lines.append("")
    print("\n".join(lines).rstrip())
    return 0
