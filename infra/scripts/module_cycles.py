#!/usr/bin/env python3
"""Fails if the modules of one crate import each other in a cycle.

For every crate of the workspace, each file is a module; a `crate::a::b`, `super::x` or
`self::x` path inside it is an edge to the deepest module file it names. A module naming its
own descendants is not an edge (a parent declares and re-exports its children), and the
crate root (lib.rs, main.rs) only declares modules. Test modules (`#[cfg(test)]` to the end
of the file) are ignored: a test may look anywhere.

Usage: infra/scripts/module_cycles.py [crate_src_dir ...]
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def top_module(src: pathlib.Path, file: pathlib.Path) -> str:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts[0] if parts else ""


def module_of(file: pathlib.Path, src: pathlib.Path):
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def absolute(path_parts, module_path, is_dir_module):
    """The path from the crate root that `crate::…`/`super::…`/`self::…` names."""
    if path_parts[0] == "crate":
        return list(path_parts[1:])
    # `self` in a file module is the module itself; `super` its parent.
    cur = list(module_path)
    i = 0
    while i < len(path_parts) and path_parts[i] in ("super", "self"):
        if path_parts[i] == "super":
            cur = cur[:-1]
        i += 1
    return cur + list(path_parts[i:])


def expand_use(tree: str):
    """`super::{a, b::{c, d}}` -> [["super", "a"], ["super", "b", "c"], ["super", "b", "d"]]."""
    if "{" not in tree:
        return [[p for p in tree.split("::") if p and p != "*"]]
    i = tree.index("{")
    prefix = [p for p in tree[:i].split("::") if p]
    inner = tree[i + 1 : tree.rindex("}")]
    items, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    items.append(cur)
    out = []
    for item in items:
        item = item.split(" as ")[0]
        if not item or item == "self":
            out.append(prefix)
            continue
        for sub in expand_use(item):
            out.append(prefix + sub)
    return out


def crate_edges(src: pathlib.Path):
    modules = {module_of(f, src) for f in src.rglob("*.rs")}
    edges = {}
    for file in sorted(src.rglob("*.rs")):
        me = module_of(file, src)
        if me in (("lib",), ("main",)):
            continue
        text = file.read_text()
        cut = text.find("#[cfg(test)]")
        if cut >= 0:
            text = text[:cut]
        text = re.sub(r"//[^\n]*", "", text)
        paths = [m.group(1).split("::") for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text)]
        for m in re.finditer(r"\buse\s+((?:crate|super|self)[^;]*);", text):
            paths.extend(expand_use(re.sub(r"\s*([{},]|::)\s*", r"\1", re.sub(r"\s+", " ", m.group(1)))))
        for parts in paths:
            path = absolute(parts, me, file.name == "mod.rs")
            # The deepest module file the path names.
            target = None
            for n in range(len(path), 0, -1):
                if tuple(path[:n]) in modules:
                    target = tuple(path[:n])
                    break
            if target is None or target == me or target[: len(me)] == me:
                continue
            edges.setdefault(me, set()).add(target)
    return edges


def find_cycle(edges):
    state = {}
    stack = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for t in sorted(edges.get(n, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if state.get(t) is None:
                c = visit(t)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if state.get(n) is None:
            c = visit(n)
            if c:
                return c
    return None


def main():
    dirs = [pathlib.Path(a) for a in sys.argv[1:]] or sorted(
        p.parent for p in ROOT.glob("*/**/Cargo.toml") if (p.parent / "src").is_dir() and "target" not in p.parts
    )
    failed = False
    for d in dirs:
        src = d / "src" if (d / "src").is_dir() else d
        cycle = find_cycle(crate_edges(src))
        if cycle:
            failed = True
            names = ["::".join(m) for m in cycle]
            print(f"{src.relative_to(ROOT)}: import cycle {' -> '.join(names)}")
    if failed:
        sys.exit(1)
    print(f"no import cycle between the modules of {len(dirs)} crates")


if __name__ == "__main__":
    main()
