#!/usr/bin/env python3
"""Rules of .github/workflows that a release on a real account depends on (docs/aws.md):

- in every job that gets `id-token: write`, every action is pinned to a full commit SHA;
- every aws-actions/configure-aws-credentials step asks for credentials that last the whole job
  (role-duration-seconds, default 3600, >= timeout-minutes * 60) and no longer than the roles
  allow (7200);
- every job that releases to or applies an environment is in the concurrency group
  `deploy-<environment>`, without cancel-in-progress;
- no job reads the API token from a GitHub secret or the state bucket from one repository-wide
  variable (one copy of the token; each environment's own bucket).
"""
import glob
import re
import sys

import yaml

SHA = re.compile(r"^[^@]+@[0-9a-f]{40}$")
problems = []
for path in sorted(glob.glob(".github/workflows/*.yml")):
    text = open(path).read()
    for banned in ("secrets.PLATFORM_API_TOKEN", "vars.TF_STATE_BUCKET"):
        if banned in text:
            problems.append(f"{path}: uses {banned}")
    doc = yaml.safe_load(text)
    for jid, job in (doc.get("jobs") or {}).items():
        perms = job.get("permissions") or {}
        steps = job.get("steps") or []
        timeout = int(job.get("timeout-minutes", 360))
        if isinstance(perms, dict) and perms.get("id-token") == "write":
            for s in steps:
                u = s.get("uses")
                if u and not u.startswith("./") and not SHA.match(u):
                    problems.append(f"{path} job {jid}: {u} is not pinned to a commit SHA (the job gets id-token: write)")
        for s in steps:
            if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials@"):
                d = int((s.get("with") or {}).get("role-duration-seconds", 3600))
                if d < timeout * 60:
                    problems.append(f"{path} job {jid}: credentials last {d} s, the job may run {timeout * 60} s (set role-duration-seconds)")
                if d > 7200:
                    problems.append(f"{path} job {jid}: role-duration-seconds {d} exceeds the roles' 7200 s")
        env = job.get("environment")
        env_name = env.get("name") if isinstance(env, dict) else env
        runs = " ".join(str(s.get("run", "")) for s in steps)
        deploys = "deployer release" in runs or "deployer rollback" in runs or "terraform apply" in runs
        if env_name and deploys:
            want = "deploy-" + str(env_name).removesuffix("-infrastructure")
            conc = job.get("concurrency") or {}
            group = conc.get("group") if isinstance(conc, dict) else conc
            if group != want or (isinstance(conc, dict) and conc.get("cancel-in-progress")):
                problems.append(f"{path} job {jid}: concurrency group is {group!r}, must be {want!r} without cancel-in-progress")
for p in problems:
    print(p, file=sys.stderr)
sys.exit(1 if problems else 0)
