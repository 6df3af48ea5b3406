#!/usr/bin/env python3
"""Runs the README's shell snippets, as written, against a real node, and checks what they print.

Each fenced block the README wants checked is preceded by an HTML comment (invisible on the
rendered page):

    <!-- check: run -->                 run the block in the shared shell, must exit 0
    <!-- check: background NAME -->     start the block in the background, output kept as NAME
    <!-- check: expect NAME TEXT -->    (after a block) wait until NAME's output contains TEXT
    <!-- check: skip REASON -->         not run here (say why)

Every ```sh block needs one of run/background/skip, so a new snippet cannot go unchecked by
accident. The blocks run in one bash process, in order, so what one exports the next sees.
Nothing in a snippet is changed.

Usage: doc_snippets.py README.md WORKDIR   (prints the generated script's output; exit 0 = pass)
       doc_snippets.py --lint FILE...        (every ```sh block has a directive; runs nothing)
"""
import re
import shlex
import subprocess
import sys

FENCE = re.compile(r"^```(\w*)\s*$")
CHECK = re.compile(r"^<!-- check: (\w+)(?: (.*?))? -->\s*$")


def blocks(lines):
    """Yields (directives before the block, language, code, directives after, line number)."""
    pending, i = [], 0
    result = []
    while i < len(lines):
        m = CHECK.match(lines[i])
        if m:
            if result and result[-1]["after_open"]:
                result[-1]["after"].append((m.group(1), m.group(2) or ""))
            else:
                pending.append((m.group(1), m.group(2) or ""))
            i += 1
            continue
        m = FENCE.match(lines[i])
        if m:
            start, language, code = i + 1, m.group(1), []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                code.append(lines[i])
                i += 1
            result.append({"before": pending, "lang": language, "code": "\n".join(code) + "\n",
                           "after": [], "after_open": True, "line": start})
            pending = []
            i += 1
            continue
        if lines[i].strip() and result:
            result[-1]["after_open"] = False
        i += 1
    return result


def script(found):
    out = ["set -euo pipefail", "export PYTHONUNBUFFERED=1", "snippet_wait() {  # NAME TEXT: bounded wait for TEXT in NAME's output",
           '  for _ in $(seq 1 300); do grep -qF -- "$2" "bg-$1.out" 2>/dev/null && return 0; sleep 0.1; done',
           '  echo "CHECK FAILED: \'$2\' never appeared in the output of snippet $1:"; cat "bg-$1.out"; exit 1', "}"]
    missing = []
    for block in found:
        if block["lang"] != "sh":
            continue
        kinds = [kind for kind, _ in block["before"]]
        if not any(k in ("run", "background", "skip") for k in kinds):
            missing.append(block["line"])
            continue
        code = block["code"]
        for kind, argument in block["before"]:
            if kind == "run":
                out.append(f'echo "== snippet at README line {block["line"]}"')
                out.append(code)
            elif kind == "background":
                name = argument.split()[0]
                out.append(f'echo "== snippet at README line {block["line"]} (background: {name})"')
                out.append(f"( set +e\n{code}) > bg-{name}.out 2>&1 &")
                out.append(f"BACKGROUND+=($!)")
        for kind, argument in block["after"]:
            if kind == "expect":
                name, text = argument.split(" ", 1)
                out.append(f"snippet_wait {shlex.quote(name)} {shlex.quote(text)}")
                out.append("echo " + shlex.quote(f"   {name} printed {text}"))
    if missing:
        sys.exit(f"the sh blocks at lines {missing} have no <!-- check: ... --> directive")
    return "\n".join(["BACKGROUND=()", "trap 'kill ${BACKGROUND[@]} 2>/dev/null || true' EXIT"] + out) + "\n"


def main():
    if sys.argv[1] == "--lint":
        for path in sys.argv[2:]:
            with open(path) as handle:
                try:
                    script(blocks(handle.read().splitlines()))
                except SystemExit as problem:
                    sys.exit(f"{path}: {problem}")
        return
    readme, workdir = sys.argv[1], sys.argv[2]
    with open(readme) as handle:
        text = script(blocks(handle.read().splitlines()))
    with open(f"{workdir}/snippets.sh", "w") as handle:
        handle.write(text)
    sys.exit(subprocess.call(["bash", f"{workdir}/snippets.sh"], cwd=workdir))


if __name__ == "__main__":
    main()
