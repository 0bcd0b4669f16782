#!/usr/bin/env python3
"""The house's structure check, from the source alone (no compiler).

Fails when a file under a crate's `src/` reaches 600 lines, when the
modules of a crate import each other in a circle, or when code outside a
crate's `sys/` reaches into one of `sys/`'s modules (`crate::sys::linux::...`,
`sys::pty::X`) instead of through `sys/mod.rs`'s one entry (`crate::sys::X`,
or a namespace declared inline in `sys/mod.rs`).

An edge A -> B means: the file A names an item defined in the file B, by a
`use` (at the file's top level, outside `#[cfg(test)]` modules) or by a path
written in the code (`crate::x::y`, `super::y`, or through a module imported
by `use`). Re-exports are followed to the file that defines the item, so a
`mod.rs` that only declares and re-exports its children is not an edge, and a
child that names its parent's re-export depends on the defining sibling.

    python3 .ci/layers.py            # check; print circles and long files
    python3 .ci/layers.py --edges    # also print every edge with its names
    python3 .ci/layers.py --allow .ci/layers-allowed.txt
                                     # known debts: edges left out of the
                                     # circle search, files allowed to be long

An allowance file has one debt a line, `#` comments: `CRATE: A -> B` (an
edge between two files under src/) or `CRATE: src/FILE` (a long file).
The check fails on any circle or long file not allowed there, and names the
allowances that are no longer needed, so the list only shrinks.
"""

import os
import re
import sys
from collections import defaultdict

LIMIT = 600
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates")

ITEM = re.compile(
    r"^(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:const\s+)?(?:unsafe\s+)?"
    r"(?:extern\s+\"C\"\s+)?"
    r"(fn|struct|enum|trait|type|const|static|union)\s+(\w+)"
)
MACRO = re.compile(r"^macro_rules!\s*(\w+)")
MOD_DECL = re.compile(r"^(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;")
MOD_INLINE = re.compile(r"^(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*\{")
USE = re.compile(r"^(?:pub(?:\([^)]*\))?\s+)?use\s+")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = []
    for line in text.split("\n"):
        # Drop `//` comments, not `//` inside a string (rare: good enough).
        i = line.find("//")
        if i >= 0 and line[:i].count('"') % 2 == 0:
            line = line[:i]
        out.append(line)
    return out


def strip_strings(line):
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', line)


def parse_use_tree(text):
    """`a::{b, c::{d as e}, f::*}` -> [(['a','b'], 'b'), (['a','c','d'], 'e'), (['a','f','*'], '*')]"""
    text = re.sub(r"\s+", "", text)
    out = []

    def walk(prefix, s):
        # split at top-level commas
        depth, start, parts = 0, 0, []
        for i, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:i])
                start = i + 1
        parts.append(s[start:])
        for part in parts:
            if not part:
                continue
            if "{" in part:
                head, _, rest = part.partition("{")
                head = [p for p in head.split("::") if p]
                walk(prefix + head, rest[: rest.rfind("}")])
                continue
            segs = [p for p in part.split("::") if p]
            out.append((prefix + segs, None))

    walk([], text)
    return out


def parse_use(stmt):
    """A `use` statement (without `use` and `;`) -> [(path, name)]."""
    # Keep the `as` boundaries before whitespace is removed.
    stmt = re.sub(r"\s+as\s+", " AS ", stmt)
    stmt = stmt.replace(" AS ", "@AS@")
    res = []
    for path, _ in parse_use_tree(stmt):
        alias = None
        if path and "@AS@" in path[-1]:
            last, alias = path[-1].split("@AS@")
            path = path[:-1] + [last]
        if path and path[-1] == "self":
            path = path[:-1]
        name = alias or (path[-1] if path else None)
        res.append((path, name))
    return res


class Module:
    def __init__(self, path, file):
        self.path = path  # tuple of names
        self.file = file
        self.children = {}  # name -> tuple path
        self.items = set()
        self.uses = {}  # name -> path (absolute tuple or relative list with marker)
        self.globs = []
        self.reexports = set()  # names of `pub use` items (pass-through)
        self.body = []  # (lineno, text) of code outside test modules
        self.lines = 0


def load_crate(src):
    modules = {}

    def load(path, file):
        with open(file, encoding="utf-8") as f:
            raw = f.read()
        base = os.path.dirname(file)
        stem = os.path.splitext(os.path.basename(file))[0]
        child_dir = base if stem in ("mod", "lib", "main") else os.path.join(base, stem)
        parse(path, file, strip_comments(raw), child_dir)

    def parse(path, file, lines, child_dir):
        m = Module(path, file)
        modules[path] = m
        i, n = 0, len(lines)
        pending_test = False
        while i < n:
            line = lines[i]
            s = strip_strings(line)
            stripped = s.strip()
            if stripped.startswith("#[cfg(test)]") or stripped.startswith("#[cfg(all(test"):
                pending_test = True
                i += 1
                continue
            if s.startswith(" ") or s.startswith("\t") or not stripped:
                if stripped:
                    m.body.append((i + 1, s))
                i += 1
                continue
            md = MOD_DECL.match(s)
            mi = MOD_INLINE.match(s)
            if md:
                name = md.group(1)
                if not pending_test:
                    for cand in (os.path.join(child_dir, name + ".rs"),
                                 os.path.join(child_dir, name, "mod.rs")):
                        if os.path.exists(cand):
                            m.children[name] = path + (name,)
                            load(path + (name,), cand)
                            break
                pending_test = False
                i += 1
                continue
            if mi:
                # An inline module: parsed as a module of its own in the same
                # file (its body dedented); test modules are skipped.
                depth = s.count("{") - s.count("}")
                i += 1
                inner = []
                while i < n and depth > 0:
                    t = strip_strings(lines[i])
                    depth += t.count("{") - t.count("}")
                    if depth > 0:
                        inner.append(lines[i][4:] if lines[i].startswith("    ") else lines[i])
                    i += 1
                if not pending_test:
                    name = mi.group(1)
                    m.children[name] = path + (name,)
                    parse(path + (name,), file, inner, os.path.join(child_dir, name))
                pending_test = False
                continue
            if pending_test and not stripped.startswith("#"):
                # A test-only item at the top level: skip it.
                depth = s.count("{") - s.count("}")
                i += 1
                while i < n and (depth > 0 or (depth == 0 and not s.rstrip().endswith((";", "}")))):
                    t = strip_strings(lines[i])
                    depth += t.count("{") - t.count("}")
                    s = t
                    i += 1
                    if depth == 0:
                        break
                pending_test = False
                continue
            if USE.match(s):
                public = s.startswith("pub")
                stmt = s
                while not stmt.rstrip().endswith(";") and i + 1 < n:
                    i += 1
                    stmt += " " + strip_strings(lines[i])
                body = USE.sub("", stmt.strip(), count=1).rstrip().rstrip(";")
                for upath, name in parse_use(body):
                    if not upath:
                        continue
                    if upath[-1] == "*":
                        m.globs.append(upath[:-1])
                    else:
                        m.uses[name] = upath
                        if public:
                            m.reexports.add(name)
                i += 1
                continue
            it = ITEM.match(s) or MACRO.match(s)
            if it:
                m.items.add(it.group(it.lastindex))
            if not stripped.startswith("#"):
                m.body.append((i + 1, s))
            i += 1
        return m

    for root in ("lib.rs", "main.rs"):
        f = os.path.join(src, root)
        if os.path.exists(f):
            load((), f)
            break
    return modules


def absolute(mod, upath):
    """The absolute start of a path written in module `mod`, or None (extern)."""
    head, rest = upath[0], list(upath[1:])
    if head == "crate":
        return (), rest
    if head == "self":
        return mod.path, rest
    if head == "super":
        p = mod.path[:-1]
        while rest and rest[0] == "super":
            p = p[:-1]
            rest = rest[1:]
        return p, rest
    return None


class Resolver:
    def __init__(self, modules):
        self.modules = modules

    def start(self, mod, upath):
        a = absolute(mod, upath)
        if a is not None:
            return a
        head = upath[0]
        if head in mod.children:
            return mod.children[head], list(upath[1:])
        if head in mod.uses:
            return "use", (mod, head, list(upath[1:]))
        return None

    def resolve(self, mod, upath, seen=None):
        """-> ('item', file) | ('module', path) | None"""
        seen = seen or set()
        key = (mod.path, tuple(upath))
        if key in seen:
            return None
        seen.add(key)
        st = self.start(mod, upath)
        if st is None:
            return None
        if st[0] == "use":
            m, head, rest = st[1]
            r = self.resolve(m, m.uses[head], seen)
            if r is None:
                return None
            if r[0] == "item":
                return r
            return self.walk(r[1], rest, seen)
        return self.walk(st[0], st[1], seen)

    def walk(self, path, rest, seen):
        cur = path
        for idx, seg in enumerate(rest):
            m = self.modules.get(cur)
            if m is None:
                return None
            if seg in m.children:
                cur = m.children[seg]
                continue
            if seg in m.items:
                return ("item", m.file)
            if seg in m.uses:
                r = self.resolve(m, m.uses[seg], seen)
                if r is None:
                    return None
                if r[0] == "item":
                    return r
                cur = r[1]
                continue
            for g in m.globs:
                r = self.resolve(m, g + [seg], seen)
                if r is not None:
                    if r[0] == "item":
                        return r
                    cur = r[1]
                    break
            else:
                # Unknown (an enum variant, a method, a derive...): the module
                # that was reached is what is depended on.
                return ("item", m.file)
        return ("module", cur)


PATH_IN_CODE = re.compile(r"(?<![\w:])((?:crate|super|self|\w+)(?:::\w+)+)")


def edges_of(modules):
    r = Resolver(modules)
    edges = defaultdict(lambda: defaultdict(set))  # file -> file -> names

    def add(mod, upath, label):
        res = r.resolve(mod, upath)
        if res is None:
            return
        if res[0] == "item":
            target = res[1]
        else:
            return  # naming a module alone is not a dependency
        if target != mod.file:
            edges[mod.file][target].add(label)

    for mod in modules.values():
        words = set()
        for _, text in mod.body:
            words.update(re.findall(r"\b[A-Za-z_]\w*\b", text))
        for name, upath in mod.uses.items():
            if name in mod.reexports and name not in words:
                continue  # a pass-through re-export, not used here
            res = r.resolve(mod, upath)
            if res and res[0] == "item" and res[1] != mod.file:
                edges[mod.file][res[1]].add("::".join(upath))
        for g in mod.globs:
            for w in sorted(words):
                res = r.resolve(mod, g + [w])
                if res and res[0] == "item" and res[1] != mod.file:
                    st = r.start(mod, g + [w])
                    target = modules.get(st[0]) if st and st[0] != "use" else None
                    # Only names the glob's module really has (not fallbacks).
                    if target and (w in target.items or w in target.uses or w in target.children):
                        edges[mod.file][res[1]].add("::".join(g + [w]))
        for _, text in mod.body:
            for mt in PATH_IN_CODE.finditer(text):
                segs = mt.group(1).split("::")
                if segs[0] in ("std", "core", "alloc", "libc", "rustix", "tokio"):
                    continue
                # Try the longest prefix that resolves to an item.
                add(mod, segs, mt.group(1))
    return edges


def sys_entry_breaches(modules):
    """Paths written outside `sys/` that reach a module below `sys`.

    `sys/mod.rs` is the one entry: the rest of the crate names `crate::sys::X`
    (an item, or an alias `sys/mod.rs` itself declares), never a module of
    `sys/` (`crate::sys::linux::...`). The crate root may re-export one.
    -> [(file, line, path)]"""
    top = modules.get(("sys",))
    if top is None:
        return []
    r = Resolver(modules)
    out = []

    def breach(mod, upath):
        st = r.start(mod, upath)
        if st is None:
            return False
        if st[0] == "use":
            m, head, rest = st[1]
            res = r.resolve(m, m.uses[head])
            if res is None or res[0] != "module":
                return False
            cur = res[1]
        else:
            cur, rest = st
        if cur[:1] == ("sys",) and len(cur) > 1:
            return modules[cur].file != top.file
        for i, seg in enumerate(rest):
            if cur == ("sys",):
                child = modules.get(top.children.get(seg))
                # A module of its own file (an inline one in `sys/mod.rs`,
                # a namespace of constants, is part of the entry); as a
                # path's last name, a function of the same name may be meant.
                return (child is not None and child.file != top.file
                        and (i + 1 < len(rest) or seg not in top.uses))
            m = modules.get(cur)
            if m is None or seg not in m.children:
                return False
            cur = m.children[seg]
        return False

    for mod in modules.values():
        if mod.path[:1] == ("sys",) or mod.path == ():
            continue
        for name, upath in mod.uses.items():
            if breach(mod, upath):
                out.append((mod.file, 0, "use " + "::".join(upath)))
        for g in mod.globs:
            if breach(mod, g + ["_"]):
                out.append((mod.file, 0, "use " + "::".join(g) + "::*"))
        for lineno, text in mod.body:
            for mt in PATH_IN_CODE.finditer(text):
                segs = mt.group(1).split("::")
                if segs[0] in ("std", "core", "alloc", "libc", "rustix", "tokio"):
                    continue
                if breach(mod, segs):
                    out.append((mod.file, lineno, mt.group(1)))
    return out


def sccs(nodes, adj):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in adj.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    for v in nodes:
        if v not in index:
            strong(v)
    return out


def load_allowed(path):
    edges, files = set(), set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            crate, _, rest = line.partition(":")
            rest = rest.strip()
            if "->" in rest:
                a, _, b = rest.partition("->")
                edges.add((crate.strip(), a.strip(), b.strip()))
            else:
                files.add((crate.strip(), rest))
    return edges, files


def main():
    show_edges = "--edges" in sys.argv
    allowed_edges, allowed_files = set(), set()
    if "--allow" in sys.argv:
        allowed_edges, allowed_files = load_allowed(sys.argv[sys.argv.index("--allow") + 1])
    used = set()
    failed = False
    for crate in sorted(os.listdir(ROOT)):
        src = os.path.join(ROOT, crate, "src")
        if not os.path.isdir(src):
            continue
        modules = load_crate(src)
        rel = lambda f: os.path.relpath(f, src)
        for dirpath, _, files in os.walk(src):
            for f in files:
                if f.endswith(".rs"):
                    p = os.path.join(dirpath, f)
                    with open(p, encoding="utf-8") as fh:
                        count = sum(1 for _ in fh)
                    if count >= LIMIT:
                        if (crate, f"src/{rel(p)}") in allowed_files:
                            used.add((crate, f"src/{rel(p)}"))
                            continue
                        print(f"{crate}: src/{rel(p)} has {count} lines (limit {LIMIT - 1})")
                        failed = True
        for f, line, path in sys_entry_breaches(modules):
            where = f"src/{rel(f)}" + (f":{line}" if line else "")
            print(f"{crate}: {where} reaches into sys/ past its entry: {path}")
            failed = True
        edges = edges_of(modules)
        files = sorted({m.file for m in modules.values()})
        adj = {}
        for a, bs in edges.items():
            adj[a] = set()
            for b in bs:
                if (crate, rel(a), rel(b)) in allowed_edges:
                    used.add((crate, rel(a), rel(b)))
                else:
                    adj[a].add(b)
        if show_edges:
            for a in sorted(edges):
                for b in sorted(edges[a]):
                    print(f"{crate}: {rel(a)} -> {rel(b)}: {', '.join(sorted(edges[a][b]))}")
        for comp in sccs(files, adj):
            if len(comp) < 2:
                continue
            failed = True
            comp_set = set(comp)
            print(f"{crate}: import circle among {', '.join(sorted(rel(f) for f in comp))}")
            for a in sorted(comp):
                for b in sorted(adj.get(a, ())):
                    if b in comp_set:
                        names = ", ".join(sorted(edges[a][b]))
                        print(f"    {rel(a)} -> {rel(b)}: {names}")
    for debt in sorted((allowed_edges | allowed_files) - used):
        print(f"note: no longer needed in the allowance file: {debt[0]}: {' -> '.join(debt[1:])}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
