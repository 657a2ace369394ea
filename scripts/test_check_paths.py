#!/usr/bin/env python3
"""Tests of scripts/check-paths.py: a small repository with one case of
each problem the checker must report, and the look-alikes it must accept.

Usage: python3 scripts/test_check_paths.py   (scripts/test-all.sh runs it)
"""
import importlib.util
import os
import subprocess
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location('check_paths', os.path.join(HERE, 'check-paths.py'))
check_paths = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_paths)

FILES = {
    'Cargo.toml': '[workspace]\n',
    'engine/Cargo.toml': '[package]\n',
    'engine/src/lib.rs': textwrap.dedent('''\
        //! The parser lives in engine/src/lib.rs and its tests in tests/echo.rs.
        //! The limits come from DESIGN.md.
        // Measured with the floor in /work/shared/limit/echo.c.
        let url = "http://example.com/a.md"; // output goes to target/release/x.md
        '''),
    'engine/tests/echo.rs': '// Echo tests; see engine/src/lib.rs.\n',
    'docs/a.md': textwrap.dedent('''\
        # A guide

        ## The good heading

        [fine](../README.md), [fine too](#the-good-heading),
        [other file's heading](b.md#b-heading), [dead anchor](b.md#no-such-heading),
        [dead](missing.md), [leaves the repository](../../elsewhere.md),
        [own dead anchor](#nowhere). A web page: [x](https://example.com/c.md).
        '''),
    'docs/b.md': '# B heading\n',
    'README.md': 'See [docs](docs/a.md) and `engine/src/gone.rs`.\n',
    'scripts/run.py': '"""Writes results/old.md (the floor is ../shared/limit/echo.c)."""\n# and docs/a.md\n',
    'results/old.md': '# Old figures\n\n- commit: `deadbee`\n',
}


def git(root, *args):
    return subprocess.run(['git', *args], cwd=root, check=True, capture_output=True, text=True).stdout


class CheckPathsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        root = self.tmp.name
        for path, text in FILES.items():
            os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(root, path), 'w') as f:
                f.write(text)
        git(root, 'init', '-q')
        git(root, 'add', '-A')
        git(root, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', 'seed')
        self.commit = git(root, 'rev-parse', '--short', 'HEAD').strip()
        self.saved = (check_paths.ROOT, check_paths.ALLOWED, check_paths.RESULTS_ALLOWED)
        check_paths.ROOT, check_paths.ALLOWED, check_paths.RESULTS_ALLOWED = root, {}, {}
        check_paths.ANCHORS.clear()

    def tearDown(self):
        check_paths.ROOT, check_paths.ALLOWED, check_paths.RESULTS_ALLOWED = self.saved
        check_paths.ANCHORS.clear()
        self.tmp.cleanup()

    def problems(self):
        return check_paths.find_problems(check_paths.tracked_files())

    def test_reports_each_problem_once_and_nothing_else(self):
        self.assertEqual(sorted(self.problems()), sorted([
            'README.md:1: engine/src/gone.rs',
            'docs/a.md:6: b.md#no-such-heading (no such heading)',
            'docs/a.md:7: missing.md',
            'docs/a.md:7: ../../elsewhere.md',
            'docs/a.md:8: #nowhere (no such heading)',
            'engine/src/lib.rs:2: DESIGN.md',
            'engine/src/lib.rs:3: /work/shared/limit/echo.c (outside the repository)',
            'scripts/run.py:1: ../shared/limit/echo.c (outside the repository)',
            'results/old.md:1: names no commit in the history of HEAD',
        ]))

    def test_a_results_file_naming_a_real_commit_passes(self):
        with open(os.path.join(check_paths.ROOT, 'results', 'old.md'), 'w') as f:
            f.write(f'# Figures\n\n- commit: `{self.commit}`\n')
        self.assertNotIn('results/old.md:1: names no commit in the history of HEAD', self.problems())

    def test_a_commit_left_behind_by_a_rebase_does_not_count(self):
        root = check_paths.ROOT
        git(root, 'checkout', '-q', '-b', 'side')
        git(root, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '--allow-empty', '-m', 'gone')
        gone = git(root, 'rev-parse', '--short', 'HEAD').strip()
        git(root, 'checkout', '-q', '-')
        with open(os.path.join(root, 'results', 'old.md'), 'w') as f:
            f.write(f'# Figures\n\n- commit: `{gone}`\n')
        self.assertIn('results/old.md:1: names no commit in the history of HEAD', self.problems())

    def test_allowed_entries_are_skipped(self):
        check_paths.ALLOWED = {('engine/src/lib.rs', 'DESIGN.md'): 'test'}
        self.assertNotIn('engine/src/lib.rs:2: DESIGN.md', self.problems())

    def test_github_heading_ids(self):
        self.assertEqual(check_paths.slug('The 32-35 ms corrected p99 at 100 x 500 Hz'),
                         'the-32-35-ms-corrected-p99-at-100-x-500-hz')
        self.assertEqual(check_paths.slug('`tune`: safe by default, and --plan'),
                         'tune-safe-by-default-and---plan')


if __name__ == '__main__':
    unittest.main(verbosity=1)
