#!/usr/bin/env python3
"""Fails when a comment or a document names a file that is not in the repository.

Usage: scripts/check-paths.py [--list]   (exit 0 clean, 1 problems found, 2 usage)

Three checks, each reported as `FILE:LINE: ...`, and the script exits 1 on any:
- paths: every file or folder a comment or document names exists in the
  repository (below);
- links: every relative Markdown link resolves, including its `#anchor`
  (GitHub's heading ids), and no document or comment points outside the
  repository (a `../` path that leaves it, or the workplace the project was
  built in, `/work/...`);
- results: every file under `results/` names the commit it describes (a
  hexadecimal id, 7 to 40 digits, of a commit in the history of HEAD, so
  not one a rebase left behind).

What it reads (every file git knows, tracked or new and not ignored):
- Markdown (`*.md`): the whole text, and the targets of relative links
  `[text](target)`;
- Rust (`*.rs`): comments only (`//`, `//!`, `///` and trailing `// ...`);
- scripts and config (`*.py`, `*.sh`, `*.toml`, `*.cfg`, `*.conf`, `.ci/*`):
  comment lines (`# ...`) and Python docstrings.

What counts as a reference: a token that looks like a path to a file with a
known extension (`engine/src/server.rs`, `results/engine-io.md`, `DESIGN.md`)
or to a folder of the repository (`engine/src/uring/`), and every relative
Markdown link target. URLs, absolute paths (`/proc/...`), build outputs
(`target/...`) and patterns (`*.rs`, `<name>.md`) are not references.

How a reference resolves: against the file's own folder, the root of its crate
(the nearest folder with a `Cargo.toml`, so `tests/faults.rs` in
`engine/src` means `engine/tests/faults.rs`) and the repository root; a bare
file name resolves when any file of the repository has that name, and is
checked only for the kinds of file this repository writes (`.rs`, `.md`,
`.py`, `.sh`, `.toml`): other bare names are output files in examples
(`run.hlog`) or other projects' sources (uSockets' `loop.c`). A Markdown link resolves against the file's own folder only, as a
browser would. A reference that resolves nowhere, or outside the
repository, is reported as `FILE:LINE: NAME`, and the script exits 1.

To extend it (more file types, stricter rules), add to `SOURCES` or to
`references()`; `ALLOWED` lists the few references that are known and
tolerated, each with its reason and owner, and `RESULTS_ALLOWED` the results
files whose commit is known to be outside the history. Remove an entry once
its file is fixed. `scripts/test-all.sh` runs this check first, and its own tests
(`scripts/test_check_paths.py`) before it.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))

EXTENSIONS = ('rs', 'md', 'py', 'sh', 'toml', 'c', 'h', 'html', 'json', 'csv', 'cfg', 'conf',
              'svg', 'txt', 'yml', 'yaml', 'hlog', 'lock')
TOP_DIRS = ('engine', 'loadgen', 'bench', 'tuning', 'results', 'docs', 'scripts', 'deploy', '.ci')

# Results files that name only a commit outside this branch's history (made
# on a branch later rebased), each with its owner, who re-runs or corrects it.
RESULTS_ALLOWED: dict[str, str] = {}

# (file, reference) -> why it is tolerated. Each entry names its owner; the
# owner removes it when the file changes.
ALLOWED = {
    # history.md keeps the tree of an engine that is gone, verbatim.
    ('results/history.md', 'buf_ring.rs'): 'first-hour (issue 20): a verbatim historical tree',
    ('results/history.md', 'reactor.rs'): 'first-hour (issue 20): a verbatim historical tree',
    ('results/history.md', 'stream.rs'): 'first-hour (issue 20): a verbatim historical tree',
}

FILE_TOKEN = re.compile(
    r'(?<![\w/.@~$-])'                      # not inside a longer word or path
    r'((?:\.\.?/)*(?:[\w.-]+/)*[\w-]+(?:\.[\w-]+)*\.(?:' + '|'.join(EXTENSIONS) + r'))'
    r'(?![\w/-])')
DIR_TOKEN = re.compile(
    r'(?<![\w/.@~$-])((?:' + '|'.join(re.escape(d) for d in TOP_DIRS) + r')/(?:[\w.-]+/)*)'
    r'(?![\w*<{-])')
MD_LINK = re.compile(r'\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
# The workplace the project was built in, which a user's clone does not have.
WORKPLACE = re.compile(r'(?<![\w.])(?:/work/[\w./-]*[\w/]|(?:\.\./)+shared/(?:[\w./-]*[\w/])?)')
URL = re.compile(r'\b[a-z][a-z0-9+.-]*://\S+')


def read_text(path):
    with open(os.path.join(ROOT, path), encoding='utf-8') as f:
        return f.read()


def tracked_files():
    out = subprocess.run(
        ['git', 'ls-files', '--cached', '--others', '--exclude-standard', '-z'],
        cwd=ROOT, check=True, capture_output=True).stdout.decode()
    return sorted({p for p in out.split('\0') if p and os.path.exists(os.path.join(ROOT, p))})


def rust_comments(text):
    """(line number, comment text) for every comment in Rust source."""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        if stripped.startswith('//'):
            yield number, stripped[2:]
            continue
        # A trailing comment: `//` outside a string literal (a quote count
        # is enough for this code base's one-line strings).
        for match in re.finditer(r'//', line):
            before = line[:match.start()]
            if before.count('"') % 2 == 0 and not before.endswith(':'):
                yield number, line[match.end():]
                break


def hash_comments(text, python):
    """(line number, text) of `#` comments, and of docstrings in Python."""
    in_doc = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if python:
            if in_doc:
                yield number, line
                if in_doc in line:
                    in_doc = None
                continue
            for quote in ('"""', "'''"):
                if stripped.startswith(quote) or re.match(r'^\w*\s*=\s*' + quote, stripped):
                    rest = stripped.split(quote, 1)[1]
                    yield number, rest
                    if quote not in rest:
                        in_doc = quote
                    break
            else:
                if stripped.startswith('#'):
                    yield number, stripped[1:]
            continue
        if stripped.startswith('#'):
            yield number, stripped[1:]


def texts(path, text):
    """The (line, text) pieces of a file that may name files."""
    if path.endswith('.md'):
        return enumerate(text.splitlines(), 1)
    if path.endswith('.rs'):
        return rust_comments(text)
    if path.endswith('.py'):
        return hash_comments(text, python=True)
    if path.endswith(('.sh', '.toml', '.cfg', '.conf')) or path.startswith('.ci/'):
        return hash_comments(text, python=False)
    return []


BARE_CHECKED = ('.rs', '.md', '.py', '.sh', '.toml')

SOURCES = ('.md', '.rs', '.py', '.sh', '.toml', '.cfg', '.conf')


def references(path, line):
    """(kind, name) for each file or folder `line` names."""
    line = URL.sub(' ', line)
    found = []
    if path.endswith('.md'):
        for target in MD_LINK.findall(line):
            if target.startswith('#'):
                found.append(('anchor', target))
            elif target.split('#', 1)[0] and not target.startswith(('/', 'mailto:')):
                found.append(('link', target))
        line = MD_LINK.sub('] ', line)
    for match in WORKPLACE.finditer(line):
        found.append(('outside', match.group(0)))
    for match in FILE_TOKEN.finditer(line):
        found.append(('file', match.group(1)))
    for match in DIR_TOKEN.finditer(line):
        found.append(('dir', match.group(1)))
    return found


def crate_root(path):
    folder = os.path.dirname(path)
    while folder:
        if os.path.exists(os.path.join(ROOT, folder, 'Cargo.toml')):
            return folder
        folder = os.path.dirname(folder)
    return ''


def inside_repo(candidate):
    real = os.path.normpath(os.path.join(ROOT, candidate))
    return real == ROOT or real.startswith(ROOT + os.sep)


def resolves(path, kind, name, basenames):
    if kind == 'link':
        candidate = os.path.normpath(os.path.join(os.path.dirname(path), name.split('#', 1)[0]))
        return inside_repo(candidate) and os.path.exists(os.path.join(ROOT, candidate))
    if kind == 'file' and '/' not in name:
        # A bare name of a kind this repository writes (`server.rs`,
        # `DESIGN.md`) must be one of its files; other bare names are
        # output files in examples (`run.hlog`) or other projects' sources
        # (`loop.c`), which no rule here can tell apart.
        return not name.endswith(BARE_CHECKED) or name in basenames
    folders = [os.path.dirname(path), crate_root(path), '']
    for folder in folders:
        candidate = os.path.normpath(os.path.join(folder, name))
        if inside_repo(candidate) and os.path.exists(os.path.join(ROOT, candidate)):
            return True
    return False


def slug(heading):
    """GitHub's id for a Markdown heading: lowercase, punctuation dropped,
    spaces to dashes."""
    text = re.sub(r'`|\*|_(?=\w*_)|\[|\]\([^)]*\)', '', heading.strip().lower())
    return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


ANCHORS = {}


def anchors(path, cache=ANCHORS):
    """The heading ids of a Markdown file (duplicates get -1, -2, ...)."""
    if path not in cache:
        ids, seen, fenced = set(), {}, False
        for line in read_text(path).splitlines(keepends=True):
            if line.startswith('```'):
                fenced = not fenced
            match = None if fenced else re.match(r'^#{1,6}\s+(.*?)\s*#*\s*$', line)
            if match:
                base = slug(match.group(1))
                n = seen.get(base, 0)
                seen[base] = n + 1
                ids.add(base if n == 0 else f'{base}-{n}')
        cache[path] = ids
    return cache[path]


def anchor_resolves(path, kind, name):
    """A `#anchor` link (in this file, or after a link to a Markdown file)
    names one of the target's headings."""
    if kind == 'anchor':
        target, anchor = path, name[1:]
    else:
        file_part, _, anchor = name.partition('#')
        target = os.path.normpath(os.path.join(os.path.dirname(path), file_part))
        if not anchor or not target.endswith('.md'):
            return True
    return not os.path.exists(os.path.join(ROOT, target)) or anchor in anchors(target)


def results_without_commit(files):
    """Files under results/ that name no commit of this repository."""
    known = {}

    def is_commit(token):
        if token not in known:
            # In this branch's history: a commit left behind by a rebase
            # still exists locally but not in a clone.
            known[token] = subprocess.run(
                ['git', 'merge-base', '--is-ancestor', token, 'HEAD'], cwd=ROOT,
                capture_output=True).returncode == 0
        return known[token]

    missing = []
    for path in files:
        if not path.startswith('results/') or path in RESULTS_ALLOWED:
            continue
        try:
            text = read_text(path)
        except UnicodeDecodeError:
            text = ''
        tokens = set(re.findall(r'(?<![0-9a-fA-F])[0-9a-f]{7,40}(?![0-9a-fA-F])', text))
        if not any(is_commit(t) for t in tokens if re.search(r'[a-f]', t)):
            missing.append(f'{path}:1: names no commit in the history of HEAD')
    return missing


def ignored(name):
    return (name.startswith(('/', '~', 'target/', '$', '-')) or any(c in name for c in '*<>{}%')
            or name.startswith('http'))


def find_problems(files, used_allowed=None):
    """Every problem in `files` (paths relative to ROOT), as `FILE:LINE: ...`;
    the ALLOWED entries that excused a problem are added to `used_allowed`."""
    basenames = {os.path.basename(p) for p in files}
    problems = []
    used_allowed = set() if used_allowed is None else used_allowed
    for path in files:
        if not path.endswith(SOURCES) and not path.startswith('.ci/'):
            continue
        if path in ('scripts/check-paths.py', 'scripts/test_check_paths.py'):
            continue  # they name the patterns it looks for, and its test's bad cases
        if '/corpus/' in path:
            continue
        try:
            text = read_text(path)
        except (UnicodeDecodeError, IsADirectoryError):
            continue
        for number, line in texts(path, text):
            outside = set()
            for kind, name in references(path, line):
                if name in outside:
                    continue
                found = []
                if kind == 'outside':
                    found.append(f'{path}:{number}: {name} (outside the repository)')
                    outside.add(name)
                else:
                    if kind == 'anchor' or (kind == 'link' and '#' in name):
                        if not anchor_resolves(path, kind, name):
                            found.append(f'{path}:{number}: {name} (no such heading)')
                    if kind != 'anchor' and not ignored(name) and not resolves(path, kind, name, basenames):
                        found.append(f'{path}:{number}: {name}')
                if found and (path, name) in ALLOWED:
                    used_allowed.add((path, name))  # still needed
                else:
                    problems += found
    return problems + results_without_commit(files)


def main():
    if any(arg not in ('--list',) for arg in sys.argv[1:]):
        print(f'usage: {sys.argv[0]} [--list]', file=sys.stderr)
        return 2
    files = tracked_files()
    used_allowed = set()
    problems = find_problems(files, used_allowed)
    # A warning, not a failure: the owner's fix landing must not turn main red.
    for path, name in sorted(set(ALLOWED) - used_allowed):
        print(f'warning: ALLOWED entry ({path}, {name}) is no longer needed: remove it', file=sys.stderr)
    if '--list' in sys.argv or problems:
        for problem in problems:
            print(problem)
    if problems:
        print(f'{len(problems)} problem(s): missing files, dead links or anchors, references outside '
              'the repository, results without a commit (scripts/check-paths.py explains the rules)',
              file=sys.stderr)
        return 1
    print(f'paths: every file, folder, link and anchor named in {len(files)} files exists, nothing '
          'points outside the repository, and every results file names its commit')
    return 0


if __name__ == '__main__':
    sys.exit(main())
