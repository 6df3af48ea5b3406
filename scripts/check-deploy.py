#!/usr/bin/env python3
"""Checks the deployment files that CI cannot run (no Docker engine):

1. deploy/Dockerfile copies the folder of every target Package.swift declares: SwiftPM loads
   every target, even for `--product chorus`, and a missing folder stops the image's build.
2. deploy/nginx.conf passes `nginx -t`, with what only the image's nginx has (`server ...
   resolve`, Docker's DNS) taken out, and its log and pid file in a temporary folder.

Run from the repository's root: python3 scripts/check-deploy.py
"""
import json
import os
import re
import subprocess
import sys
import tempfile


def dockerfile_copies(path="deploy/Dockerfile"):
    """The build-context folders the Dockerfile's build stage copies."""
    copied = []
    for line in open(path):
        match = re.match(r"\s*COPY\s+(?!--from)(.+)\s+\S+\s*$", line)
        if match:
            copied += [source.rstrip("/") for source in match.group(1).split()]
    return copied


def target_folders():
    manifest = json.loads(subprocess.run(["swift", "package", "dump-package"], check=True, capture_output=True, text=True).stdout)
    for target in manifest["targets"]:
        default = "Tests" if target["type"] == "test" else "Sources"
        yield target["name"], target.get("path") or f"{default}/{target['name']}"


def main():
    failures = []
    copied = dockerfile_copies()
    for name, folder in target_folders():
        if not any(folder == source or folder.startswith(source + "/") for source in copied):
            failures.append(f"deploy/Dockerfile does not copy {folder} (target {name}): the image's swift build fails")
    with tempfile.TemporaryDirectory() as prefix:
        os.makedirs(os.path.join(prefix, "logs"))
        config = open("deploy/nginx.conf").read()
        config = re.sub(r"server node:3000 resolve", "server 127.0.0.1:3000", config)
        config = re.sub(r"(?m)^\s*resolver(_timeout)? .*$", "", config)
        # Its log and pid file under the temporary prefix: the check needs no root.
        config = re.sub(r"(?m)^(error_log|pid) .*$", "", config)
        checked = os.path.join(prefix, "nginx.conf")
        open(checked, "w").write(config)
        result = subprocess.run(["nginx", "-t", "-c", checked, "-p", prefix], capture_output=True, text=True)
        if result.returncode != 0:
            failures.append("deploy/nginx.conf: " + result.stderr.strip())
    for failure in failures:
        print(failure, file=sys.stderr)
    if failures:
        sys.exit(1)
    print(f"check-deploy: the Dockerfile copies every target's folder ({', '.join(copied)}); nginx.conf passes nginx -t")


if __name__ == "__main__":
    main()
