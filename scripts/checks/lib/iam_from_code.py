#!/usr/bin/env python3
"""IAM from code: every AWS API operation the deployer's code calls must be allowed by the deploy
role's policy (as Terraform renders it), and everything the policy grants must be either called
or listed with its reason in terraform/modules/github_oidc/iam-beyond-sdk-calls.json.

  iam_from_code.py ROOT POLICY_JSON [--list] [--src=DIR]   (DIR instead of ROOT/deployer/src)

Operations are found, not listed by hand: the deployer's AWS SDK crates come from
deployer/Cargo.toml, their operations from the crates' own sources in cargo's registry
(`src/operation/<op>.rs`: `pub struct <Op>`, the IAM action; the signing name in `src/config.rs`:
the IAM service prefix), and the calls from every .rs file under deployer/src, recursively
(`.<op>(` on anything; test modules after `#[cfg(test)]` are not the deployer's own calls).
"""
import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path


SIGNING_TO_IAM = {"monitoring": "cloudwatch"}


def sdk_crates(root):
    toml = (root / "deployer/Cargo.toml").read_text()
    deps = section(toml, "dependencies")
    names = sorted(set(re.findall(r"^(aws-sdk-[a-z0-9]+)\s*[.=]", deps, re.M)))
    if not names:
        raise SystemExit("deployer/Cargo.toml names no aws-sdk-* dependency: nothing to check?")
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", "x86_64-unknown-linux-gnu"],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout
    pkgs = {}
    for p in json.loads(meta)["packages"]:
        if p["name"] in names and p["source"]:
            pkgs.setdefault(p["name"], []).append(Path(p["manifest_path"]).parent)
    missing = [n for n in names if n not in pkgs]
    if missing:
        raise SystemExit(f"cargo metadata does not resolve {missing}")
    out = {}
    for name in names:
        if len(pkgs[name]) != 1:
            raise SystemExit(f"{name}: {len(pkgs[name])} versions in Cargo.lock; expected one")
        src = pkgs[name][0] / "src"
        m = re.search(r'SigningName::from_static\("([^"]+)"\)', (src / "config.rs").read_text())
        if not m:
            raise SystemExit(f"{name}: no signing name in {src / 'config.rs'}")
        ops = {}
        for f in (src / "operation").glob("*.rs"):
            s = re.search(r"^pub struct (\w+);", f.read_text(), re.M)
            if s:
                ops[f.stem] = s.group(1)
        # A few services sign with a name that is not their IAM prefix.
        out[name] = (SIGNING_TO_IAM.get(m.group(1), m.group(1)), ops)
    return out


def section(toml, name):
    m = re.search(rf"^\[{re.escape(name)}\]\s*$(.*?)(?=^\[|\Z)", toml, re.M | re.S)
    return m.group(1) if m else ""


def calls(root, crates, src_dir):
    by_op = {}
    for crate, (_, ops) in crates.items():
        for op in ops:
            by_op.setdefault(op, []).append(crate)
    found = {}  # action -> [file:line]
    problems = []
    files = sorted(src_dir.rglob("*.rs"))
    if not files:
        raise SystemExit(f"no .rs file under {src_dir}")
    for f in files:
        text = f.read_text()
        cut = re.search(r"^\s*#\[cfg\(test\)\]\s*\n\s*(pub(\([^)]*\))?\s+)?mod\s", text, re.M)
        if cut:
            text = text[: cut.start()]
        for ln, line in enumerate(text.split("\n"), 1):
            code = re.sub(r"//.*$", "", line) if not re.search(r'"[^"]*//', line) else line
            # A client's operation method takes no argument (`client.describe_services()`);
            # builder setters that share a name (`.set_subnets(..)`) do.
            for m in re.finditer(r"\.\s*([a-z][a-z0-9_]*)\s*\(\s*\)", code):
                op = m.group(1)
                if op not in by_op:
                    continue
                owners = by_op[op]
                where = f"{f.relative_to(src_dir.parent)}:{ln}"
                if len(owners) > 1:
                    problems.append(f"{where}: .{op}( exists in {owners}: cannot tell which service (name the client's crate here)")
                    continue
                prefix, ops = crates[owners[0]]
                found.setdefault(f"{prefix}:{ops[op]}", []).append(where)
    return found, problems, len(files)


def policy_statements(policy):
    st = policy.get("Statement", [])
    return [st] if isinstance(st, dict) else st


def as_list(v):
    return v if isinstance(v, list) else [v]


def allowed(action, statements):
    allow = any(
        s.get("Effect") == "Allow" and any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in as_list(s.get("Action", [])))
        for s in statements
    )
    deny = any(
        s.get("Effect") == "Deny" and not s.get("Condition")
        and any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in as_list(s.get("Action", [])))
        for s in statements
    )
    return allow and not deny


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    root, policy_file = Path(args[0]).resolve(), Path(args[1])
    policy = json.loads(policy_file.read_text())
    beyond_file = root / "terraform/modules/github_oidc/iam-beyond-sdk-calls.json"
    doc = json.loads(beyond_file.read_text())
    beyond = {e["action"]: e["why"] for e in doc["actions"]}
    refused = {e["action"]: e["why"] for e in doc.get("called_but_not_granted", [])}
    crates = sdk_crates(root)
    src = next((Path(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--src=")), root / "deployer/src")
    found, problems, nfiles = calls(root, crates, src.resolve())
    statements = policy_statements(policy)

    if "--list" in sys.argv:
        for a in sorted(found):
            print(f"{a}\t{', '.join(found[a])}")
    for action in sorted(found):
        if action in refused:
            if allowed(action, statements):
                problems.append(f"{action} is granted, but {beyond_file.relative_to(root)} says it must not be: {refused[action]}")
            continue
        if not allowed(action, statements):
            problems.append(f"{action} is called ({', '.join(found[action])}) but the deploy role does not allow it")
    granted = sorted({a for s in statements if s.get("Effect") == "Allow" for a in as_list(s.get("Action", []))})
    for g in granted:
        if "*" in g:
            problems.append(f"the deploy role grants the wildcard {g}: list actions one by one")
            continue
        if g not in found and g not in beyond:
            problems.append(f"the deploy role grants {g}, which the deployer never calls and {beyond_file.relative_to(root)} does not explain")
    for r in sorted(refused):
        if r not in found:
            problems.append(f"{r} is listed as called_but_not_granted but the code does not call it: remove the entry")
    for b in sorted(beyond):
        if b in found:
            problems.append(f"{b} is listed in {beyond_file.relative_to(root)} but the code calls it: remove the entry")
        elif b not in granted:
            problems.append(f"{b} is listed in {beyond_file.relative_to(root)} but not granted: remove the entry")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        sys.exit(1)
    sdk = ", ".join(f"{c} ({len(o)} operations)" for c, (_, o) in crates.items())
    print(f"iam: {len(found)} operations called from {nfiles} files under deployer/src [{sdk}], "
          f"{len(found) - len(refused)} allowed; "
          f"{len(granted)} actions granted = {len(found) - len(refused)} called + {len(beyond)} beyond SDK calls (each with its reason); "
          f"{len(refused)} called but refused on purpose: {', '.join(sorted(refused))}")


if __name__ == "__main__":
    main()
