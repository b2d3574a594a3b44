#!/usr/bin/env python3
"""House rules a reviewer would otherwise check by hand (issue 17), run by deploy/test.sh.

1. No import circle between the source files of a crate. The graph is at file level: an edge
   for every `use crate::...` and every inline `crate::...` path, to the file that defines the
   module the path names (the longest prefix of the path that is a module file). `super::`
   paths count too, resolved from the module they are written in (an inline `mod tests`
   included), so a circle cannot hide behind a relative path.
2. No Rust file over 400 lines (sources, tests, examples, benches), except generated or
   vendored ones listed in ALLOWED_LONG.
3. No `json!` in api/src/routes: answers are typed (and so in the OpenAPI document).

Exit status 1 with one line per finding; 0 and a summary otherwise.
Usage: tools/structure.py [repo root]   (default: the parent of this file's folder)
"""

import re
import sys
from pathlib import Path

CRATES = ["api", "worker", "shared", "testkit"]
MAX_LINES = 400
ALLOWED_LONG: set[str] = set()

COMMENT_LINE = re.compile(r"//.*")
COMMENT_BLOCK = re.compile(r"/\*.*?\*/", re.S)
STRING = re.compile(r'r#*"(?:.|\n)*?"#*|"(?:\\.|[^"\\])*"')
USE_ROOT = re.compile(r"\buse\s+((?:crate|super)(?:\s*::\s*super)*)\s*::\s*", re.S)
INLINE_ROOT = re.compile(
    r"(?<![:\w])((?:crate|super)(?:\s*::\s*super)*)\s*::\s*"
    r"((?:[A-Za-z_][A-Za-z0-9_]*\s*::\s*)*[A-Za-z_][A-Za-z0-9_]*)"
)
INLINE_MOD = re.compile(r"\bmod\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{")


def strip(src: str) -> str:
    """Source without comments and string contents, so neither can add an edge."""
    src = COMMENT_BLOCK.sub(" ", src)
    src = STRING.sub('""', src)
    return COMMENT_LINE.sub("", src)


def use_tree_paths(text: str, i: int, prefix: list[str]) -> tuple[list[list[str]], int]:
    """Parse a use tree at text[i:], returning every full path it names and where it ends."""
    paths: list[list[str]] = []
    path = list(prefix)
    while i < len(text):
        m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*|\*|\{)", text[i:])
        if not m:
            break
        tok = m.group(1)
        i += m.end()
        if tok == "{":
            while True:
                sub, i = use_tree_paths(text, i, path)
                paths.extend(sub)
                m = re.match(r"\s*([,}])", text[i:])
                if not m:
                    return paths, i
                i += m.end()
                if m.group(1) == "}":
                    return paths, i
                if re.match(r"\s*}", text[i:]):
                    i += re.match(r"\s*}", text[i:]).end()
                    return paths, i
        if tok == "*":
            paths.append(path)
            return paths, i
        if tok in ("self",):
            paths.append(path)
        else:
            path = path + [tok]
        m = re.match(r"\s*::\s*", text[i:])
        if m:
            i += m.end()
            continue
        m = re.match(r"\s+as\s+[A-Za-z_][A-Za-z0-9_]*", text[i:])
        if m:
            i += m.end()
        paths.append(path)
        return paths, i
    paths.append(path)
    return paths, i


def inline_mods(text: str) -> list[tuple[str, int, int]]:
    """Every inline `mod name { .. }` with the span of its braces."""
    out = []
    for m in INLINE_MOD.finditer(text):
        depth, i = 0, m.end() - 1
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        out.append((m.group(1), m.end() - 1, i))
    return out


class Crate:
    def __init__(self, root: Path):
        self.src = root / "src"
        self.files = sorted(self.src.rglob("*.rs"))

    def module_of(self, f: Path) -> list[str]:
        rel = f.relative_to(self.src).with_suffix("")
        parts = list(rel.parts)
        if parts in (["lib"], ["main"]):
            return []
        if parts[-1] == "mod":
            parts = parts[:-1]
        return parts

    def file_for(self, path: list[str]) -> Path | None:
        """The file that defines the longest module prefix of `path`."""
        for n in range(len(path), 0, -1):
            base = self.src.joinpath(*path[:n])
            for cand in (base.with_suffix(".rs"), base / "mod.rs"):
                if cand in self.file_set:
                    return cand
        return self.src / "lib.rs" if (self.src / "lib.rs").exists() else self.src / "main.rs"

    def edges(self) -> dict[Path, set[Path]]:
        self.file_set = set(self.files)
        graph: dict[Path, set[Path]] = {f: set() for f in self.files}
        for f in self.files:
            text = strip(f.read_text())
            here = self.module_of(f)
            mods = inline_mods(text)
            targets: list[list[str]] = []

            def base(root: str, pos: int) -> list[str] | None:
                hops = root.replace(" ", "").split("::")
                if hops[0] == "crate":
                    return []
                # Inside `mod tests { .. }`, `super` is the file's own module.
                scope = here + [name for (name, a, b) in mods if a < pos < b]
                if len(hops) > len(scope):
                    return None
                return scope[: len(scope) - len(hops)]

            for m in USE_ROOT.finditer(text):
                start = base(m.group(1), m.start())
                if start is not None:
                    paths, _ = use_tree_paths(text, m.end(), start)
                    targets.extend(paths)
            for m in INLINE_ROOT.finditer(text):
                start = base(m.group(1), m.start())
                if start is not None:
                    targets.append(start + re.split(r"\s*::\s*", m.group(2)))
            for t in targets:
                dest = self.file_for(t)
                if dest is not None and dest != f:
                    graph[f].add(dest)
        return graph


def cycles(graph: dict[Path, set[Path]]) -> list[list[Path]]:
    """Strongly connected components with more than one file (Tarjan)."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    on: set[Path] = set()
    out: list[list[Path]] = []
    counter = [0]

    sys.setrecursionlimit(10000)

    def visit(v: Path) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
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
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def main() -> int:
    repo = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    problems: list[str] = []
    files_checked = 0
    edges = 0
    for name in CRATES:
        root = repo / name
        if not (root / "src").is_dir():
            continue
        crate = Crate(root)
        graph = crate.edges()
        edges += sum(len(v) for v in graph.values())
        for comp in cycles(graph):
            members = set(comp)
            detail = "; ".join(
                f"{a.relative_to(repo)} -> "
                + ", ".join(str(b.relative_to(repo)) for b in sorted(graph[a] & members))
                for a in comp
            )
            problems.append(f"import circle in {name}: {detail}")
        for f in root.rglob("*.rs"):
            if "target" in f.parts:
                continue
            files_checked += 1
            rel = str(f.relative_to(repo))
            lines = f.read_text().count("\n")
            if lines > MAX_LINES and rel not in ALLOWED_LONG:
                problems.append(f"{rel}: {lines} lines (limit {MAX_LINES})")
    for f in (repo / "api/src/routes").rglob("*.rs"):
        if re.search(r"\bjson!", strip(f.read_text())):
            problems.append(f"{f.relative_to(repo)}: json! in a route (answer with a typed struct)")
    for p in problems:
        print(p)
    if problems:
        print(f"structure: {len(problems)} finding(s)", file=sys.stderr)
        return 1
    print(f"structure: {files_checked} Rust files, {edges} crate:: edges, no circles, none over {MAX_LINES} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
