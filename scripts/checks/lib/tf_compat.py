#!/usr/bin/env python3
"""Helpers of scripts/checks/terraform-validate.sh (standard library only).

  tf_compat.py strip SRC DST LIST     copy the Terraform tree SRC to DST without exactly the
                                      blocks/attributes LIST names, AWS provider constraints set to
                                      the mirror's version; fails if a listed entry occurs nowhere
  tf_compat.py schema LIST MIRROR     every listed entry: absent from the mirror provider's schema
                                      (`terraform providers schema -json` file MIRROR), present in
                                      the 6.x extract LIST names (where it says it is checkable)
  tf_compat.py diagnostics FILE...    `terraform validate -json` outputs: fail on any diagnostic
"""
import json
import re
import shutil
import sys
from pathlib import Path

HEADER = re.compile(r'^\s*([A-Za-z_][\w-]*)((?:\s+"[^"]*")*)\s*\{\s*$')
AWS_CONSTRAINT = re.compile(r'(aws\s*=\s*\{[^}]*?version\s*=\s*)"[^"]*"')


def scan_braces(line, state):
    """Structural braces of one line, outside strings, comments and heredocs.

    state carries across lines: {'heredoc': marker or None, 'comment': bool}.
    Returns the list of '{' / '}' in order."""
    out = []
    if state["heredoc"]:
        if line.strip() == state["heredoc"]:
            state["heredoc"] = None
        return out
    i, n = 0, len(line)
    in_str = False
    interp = 0  # depth of ${ } inside a string
    while i < n:
        c = line[i]
        if state["comment"]:
            if line.startswith("*/", i):
                state["comment"] = False
                i += 2
                continue
            i += 1
            continue
        if in_str and interp == 0:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_str = False
            elif line.startswith("${", i) or line.startswith("%{", i):
                interp = 1
                i += 2
                continue
            i += 1
            continue
        if in_str and interp > 0:
            if c == "{":
                interp += 1
            elif c == "}":
                interp -= 1
            i += 1
            continue
        if c == '"':
            in_str = True
        elif c == "#" or line.startswith("//", i):
            break
        elif line.startswith("/*", i):
            state["comment"] = True
            i += 2
            continue
        elif line.startswith("<<", i):
            m = re.match(r"<<-?([A-Za-z_]\w*)", line[i:])
            if m:
                state["heredoc"] = m.group(1)
                break
        elif c in "{}":
            out.append(c)
        i += 1
    return out


def strip_file(text, wanted):
    """Remove the blocks whose path (resource type, block names) is in wanted.

    wanted: {(resource_type, "a.b.c"), ...}. Returns (new_text, set of hits)."""
    lines = text.split("\n")
    state = {"heredoc": None, "comment": False}
    stack = []  # entries: ("block", name, labels, line) | ("expr",)
    remove = []  # (start, end) line ranges
    hits = set()
    removing_from = None  # stack depth at which a removed block started

    def path_of(entries):
        if not entries or entries[0][0] != "block" or entries[0][1] != "resource" or not entries[0][2]:
            return None, None
        rtype = entries[0][2][0]
        names = []
        for e in entries[1:]:
            if e[0] != "block":
                return None, None
            if e[1] == "content" and names and names[-1].startswith("dynamic:"):
                names[-1] = names[-1][len("dynamic:"):]
                continue
            if e[1] == "dynamic" and e[2]:
                names.append("dynamic:" + e[2][0])
                continue
            names.append(e[1])
        return rtype, ".".join(n[len("dynamic:"):] if n.startswith("dynamic:") else n for n in names)

    for ln, line in enumerate(lines):
        at_line_start = not state["heredoc"] and not state["comment"]
        braces = scan_braces(line, state)
        header = HEADER.match(line) if at_line_start else None
        for k, b in enumerate(braces):
            if b == "{":
                if header and k == 0 and len(braces) == 1:
                    labels = re.findall(r'"([^"]*)"', header.group(2))
                    stack.append(("block", header.group(1), labels, ln))
                    rtype, path = path_of(stack)
                    if removing_from is None and rtype and (rtype, path) in wanted:
                        removing_from = len(stack)
                        hits.add((rtype, path))
                    elif removing_from is not None and rtype and (rtype, path) in wanted:
                        hits.add((rtype, path))
                else:
                    stack.append(("expr",))
            else:
                if not stack:
                    raise SystemExit(f"unbalanced '}}' at line {ln + 1}")
                top = stack.pop()
                if removing_from is not None and len(stack) + 1 == removing_from:
                    remove.append((top[3], ln))
                    removing_from = None
        # single-line attributes inside a block
        if not braces and stack and stack[-1][0] == "block":
            m = re.match(r"^\s*([A-Za-z_][\w-]*)\s*=", line)
            if m:
                rtype, path = path_of(stack)
                if rtype:
                    full = (path + "." if path else "") + m.group(1)
                    if (rtype, full) in wanted:
                        hits.add((rtype, full))
                        if removing_from is None:
                            remove.append((ln, ln))
    if stack:
        raise SystemExit("unbalanced '{' at end of file")
    drop = set()
    for a, b in remove:
        drop.update(range(a, b + 1))
    return "\n".join(l for i, l in enumerate(lines) if i not in drop), hits


def load_list(path):
    doc = json.loads(Path(path).read_text())
    return doc, {(a["resource"], a["path"]) for a in doc["attributes"]}


def cmd_strip(src, dst, listfile):
    doc, wanted = load_list(listfile)
    src, dst = Path(src), Path(dst)
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"))
    hits_all = set()
    for f in sorted(dst.rglob("*.tf")):
        text = f.read_text()
        new, hits = strip_file(text, wanted)
        new = AWS_CONSTRAINT.sub(lambda m: m.group(1) + '"' + doc["mirror_version"] + '"', new)
        if hits:
            print(f"  {f.relative_to(dst)}: removed {', '.join(sorted(p for _, p in hits))}")
        hits_all |= hits
        f.write_text(new)
    missing = wanted - hits_all
    if missing:
        print("listed in " + listfile + " but used nowhere (remove the stale entries):", file=sys.stderr)
        for r, p in sorted(missing):
            print(f"  {r}.{p}", file=sys.stderr)
        sys.exit(1)


def schema_has(block, path):
    parts = path.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if last and part in block.get("attributes", {}):
            return True
        bt = block.get("block_types", {}).get(part)
        if bt is None:
            return False
        block = bt["block"]
    return True


def cmd_schema(listfile, mirror_schema):
    doc, _ = load_list(listfile)
    root = Path(listfile).resolve().parents[2]
    extract = json.loads((root / doc["schema_extract"]).read_text())
    mirror = json.loads(Path(mirror_schema).read_text())
    mirror_rs = next(iter(mirror["provider_schemas"].values()))["resource_schemas"]
    bad, unverifiable = [], []
    for a in doc["attributes"]:
        r, p = a["resource"], a["path"]
        if r in mirror_rs and schema_has(mirror_rs[r]["block"], p):
            bad.append(f"{r}.{p}: the mirror's provider {doc['mirror_version']} has it: do not remove it")
        if a["schema_check"] == extract["provider_version"]:
            rs = extract["resource_schemas"].get(r)
            if rs is None or not schema_has(rs["block"], p):
                bad.append(f"{r}.{p}: not in the {extract['provider_version']} schema ({extract['source']})")
        elif a["schema_check"].startswith("none"):
            unverifiable.append(f"{r}.{p}")
        else:
            bad.append(f"{r}.{p}: schema_check must be {extract['provider_version']!r} or start with 'none: <why>'")
    for line in bad:
        print(line, file=sys.stderr)
    if bad:
        sys.exit(1)
    n = len(doc["attributes"])
    print(f"schema: {n} listed arguments absent from {doc['mirror_version']}; "
          f"{n - len(unverifiable)} present in {extract['provider_version']}; "
          f"{len(unverifiable)} not in any published dump yet (PR 48128): {', '.join(unverifiable)}")


def cmd_diagnostics(files):
    failed = False
    for f in files:
        doc = json.loads(Path(f).read_text())
        for d in doc.get("diagnostics", []):
            failed = True
            rng = d.get("range") or {}
            where = f"{rng.get('filename', '?')}:{(rng.get('start') or {}).get('line', '?')}"
            print(f"{f}: {d.get('severity')}: {d.get('summary')} ({where}): {d.get('detail', '')}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "strip" and len(sys.argv) == 5:
        cmd_strip(*sys.argv[2:])
    elif len(sys.argv) >= 2 and sys.argv[1] == "schema" and len(sys.argv) == 4:
        cmd_schema(*sys.argv[2:])
    elif len(sys.argv) >= 3 and sys.argv[1] == "diagnostics":
        cmd_diagnostics(sys.argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
