"""The deployer's module graph from its source, and the layering rules of docs/architecture.md.

Reads deployer/src (non-test code, comments dropped) for `crate::a::b` and `super::…` paths,
prints each module's imports (`--print`), and fails when a rule is broken:
  - no import cycle between modules;
  - a command never imports another command;
  - engine/ never imports commands/; aws/, state/, image/, taskdef/ and config/ import neither;
  - config/ and taskdef/ do not import exit (exit converts their errors, not the reverse).
"""
import collections
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "deployer/src"
mods = {}
for dirpath, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".rs"):
            continue
        rel = os.path.relpath(os.path.join(dirpath, f), root)[:-3].split("/")
        if rel[-1] == "mod":
            rel = rel[:-1]
        name = "::".join(rel)
        src = open(os.path.join(dirpath, f)).read()
        src = re.sub(r"#\[cfg\(test\)\][\s\S]*", "", src)
        src = re.sub(r"//[^\n]*", "", src)
        mods[name] = src

ENGINE_CONTEXT_ITEMS = {"Ctx", "Stats", "cancel_on_signals"}
graph = collections.defaultdict(set)
for name, src in mods.items():
    for m in re.finditer(r"crate::([a-z_]+)(?:::([a-z_]+))?", src):
        sub = f"{m.group(1)}::{m.group(2)}" if m.group(2) else None
        graph[name].add(sub if sub in mods else m.group(1))
    parent = name.rsplit("::", 1)[0] if "::" in name else ""
    for m in re.finditer(r"\bsuper::\{([^}]*)\}|\bsuper::([A-Za-z_]+)", src):
        for item in (m.group(1) or m.group(2)).split(","):
            item = item.strip().split("::")[0]
            if not item:
                continue
            target = f"{parent}::{item}" if parent else item
            if target in mods:
                graph[name].add(target)
            elif parent == "engine" and item in ENGINE_CONTEXT_ITEMS:
                graph[name].add("engine::context")
            elif parent:
                graph[name].add(parent)
    if name == "main":
        for m in re.finditer(r"deployer::([a-z_]+)", src):
            graph[name].add(m.group(1))
    graph[name].discard(name)

if "--print" in sys.argv:
    for name in sorted(mods):
        print(f"{name:22} -> {', '.join(sorted(graph[name])) or '-'}")

top = lambda n: n.split("::")[0]
problems = []
for a, targets in graph.items():
    for b in targets:
        if a.startswith("commands::") and b.startswith("commands::"):
            problems.append(f"command {a} imports command {b}")
        if top(a) in {"engine", "aws", "state", "image", "taskdef", "config"} and top(b) == "commands":
            problems.append(f"{a} imports {b} (only main and commands may)")
        if top(a) in {"aws", "state", "image", "taskdef", "config"} and top(b) == "engine":
            problems.append(f"{a} imports {b} (the engine is above it)")
        if top(a) in {"config", "taskdef"} and top(b) == "exit":
            problems.append(f"{a} imports {b} (exit converts config/taskdef errors)")

state = {}
def visit(u, path):
    state[u] = 1
    for v in sorted(graph.get(u, ())):
        if state.get(v) == 1:
            return path + [u, v]
        if not state.get(v):
            found = visit(v, path + [u])
            if found:
                return found
    state[u] = 2
    return None

for u in sorted(mods):
    if not state.get(u):
        cycle = visit(u, [])
        if cycle:
            problems.append("import cycle: " + " -> ".join(cycle[cycle.index(cycle[-1]):]))
            break

for p in problems:
    print(f"module-layers: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"module-layers: ok ({len(mods)} modules under {root}, no cycle, layers respected)")
