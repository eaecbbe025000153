//! Counts read from a check's output, for the tools whose output agentd recognises.
//!
//! Test runners (cargo test, cargo nextest, pytest, unittest, jest, vitest, go test) give
//! `total`, `passed`, `failed` and `skipped`; linters (clippy and rustc diagnostics, eslint,
//! ruff) give `warnings` and `errors`. A tool is recognised by its own summary lines, not by the
//! command (`npm run test` may run jest or vitest). Output a parser does not recognise gives no
//! counts: never invented zeros.

use std::sync::LazyLock;

use agentd_core::check::CheckKind;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// What was counted, and by which parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Counts {
    /// A test run.
    Tests {
        /// The tool recognised.
        tool: Tool,
        /// Tests seen: `passed + failed + skipped`.
        total: u64,
        /// Tests that passed.
        passed: u64,
        /// Tests that failed (errors and timeouts included).
        failed: u64,
        /// Tests skipped or ignored.
        skipped: u64,
    },
    /// A lint or build run.
    Diagnostics {
        /// The tool recognised.
        tool: Tool,
        /// Warnings reported.
        warnings: u64,
        /// Errors reported.
        errors: u64,
    },
}

/// The tools whose output is recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tool {
    /// `cargo test` (libtest).
    CargoTest,
    /// `cargo nextest run`.
    Nextest,
    /// pytest.
    Pytest,
    /// Python's `unittest`.
    Unittest,
    /// Jest.
    Jest,
    /// Vitest.
    Vitest,
    /// `go test -v`.
    GoTest,
    /// `cargo clippy`.
    Clippy,
    /// rustc diagnostics of `cargo build` or `cargo check`.
    Rustc,
    /// ESLint (the default `stylish` format).
    Eslint,
    /// `ruff check`.
    Ruff,
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this file, checked by the unit tests below.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("a valid pattern")
}

static ANSI: LazyLock<Regex> = LazyLock::new(|| re(r"\x1b\[[0-9;?]*[A-Za-z]"));

/// The counts of `output` (stdout and stderr, interleaved) of a `kind` check whose process
/// exited with `exit_code` (`None` when it did not exit by itself).
#[must_use]
pub fn parse(kind: CheckKind, output: &str, exit_code: Option<i32>) -> Option<Counts> {
    let text = ANSI.replace_all(output, "");
    match kind {
        CheckKind::Test => nextest(&text)
            .or_else(|| cargo_test(&text))
            .or_else(|| pytest(&text))
            .or_else(|| unittest(&text))
            .or_else(|| vitest(&text))
            .or_else(|| jest(&text))
            .or_else(|| go_test(&text)),
        CheckKind::Lint => ruff(&text)
            .or_else(|| eslint(&text, exit_code))
            .or_else(|| rust_diagnostics(&text, Tool::Clippy)),
        CheckKind::Build => rust_diagnostics(&text, Tool::Rustc),
    }
}

fn tests(tool: Tool, passed: u64, failed: u64, skipped: u64) -> Counts {
    Counts::Tests { tool, total: passed + failed + skipped, passed, failed, skipped }
}

fn number(text: &str) -> u64 {
    text.parse().unwrap_or(0)
}

/// libtest prints one `test result:` line per test binary (doc-tests included); they add up.
fn cargo_test(text: &str) -> Option<Counts> {
    static LINE: LazyLock<Regex> = LazyLock::new(|| {
        re(r"(?m)^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored; (\d+) measured")
    });
    let mut seen = false;
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for c in LINE.captures_iter(text) {
        seen = true;
        passed += number(&c[1]) + number(&c[4]);
        failed += number(&c[2]);
        skipped += number(&c[3]);
    }
    seen.then(|| tests(Tool::CargoTest, passed, failed, skipped))
}

/// `Summary [   0.123s] 5 tests run: 4 passed, 1 failed, 2 skipped`: the last summary wins.
fn nextest(text: &str) -> Option<Counts> {
    static LINE: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?m)^\s*Summary \[[^\]]*\]\s+\d+ tests? run: (.*)$"));
    let parts = LINE.captures_iter(text).last()?.get(1)?.as_str().to_owned();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (n, what) in tallies(&parts) {
        match what.as_str() {
            "passed" => passed += n,
            "failed" | "timed out" | "exec failed" => failed += n,
            "skipped" => skipped += n,
            _ => {}
        }
    }
    Some(tests(Tool::Nextest, passed, failed, skipped))
}

/// `N word` items of a comma-separated summary, ignoring parenthesised remarks such as
/// `(1 leaky)`.
fn tallies(summary: &str) -> Vec<(u64, String)> {
    static ITEM: LazyLock<Regex> = LazyLock::new(|| re(r"^(\d+) ([a-z][a-z ]*?)\s*(\(.*\))?$"));
    summary
        .split([',', '|'])
        .filter_map(|part| {
            let c = ITEM.captures(part.trim())?;
            Some((number(&c[1]), c[2].to_owned()))
        })
        .collect()
}

/// The final line: `==== 2 failed, 5 passed, 1 skipped in 0.12s ====` (or without the rules
/// under `-q`).
fn pytest(text: &str) -> Option<Counts> {
    static LINE: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"(?m)^=*\s*((?:\d+ (?:passed|failed|skipped|errors?|xfailed|xpassed|warnings?|deselected|rerun)(?:, )?)+) in [\d.]+s",
        )
    });
    let summary = LINE.captures_iter(text).last()?.get(1)?.as_str().to_owned();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (n, what) in tallies(&summary) {
        match what.as_str() {
            "passed" | "xpassed" => passed += n,
            "failed" | "error" | "errors" => failed += n,
            "skipped" | "xfailed" => skipped += n,
            _ => {}
        }
    }
    Some(tests(Tool::Pytest, passed, failed, skipped))
}

/// `Ran 3 tests in 0.001s` then `OK`, `OK (skipped=1)` or `FAILED (failures=1, errors=1)`.
fn unittest(text: &str) -> Option<Counts> {
    static RAN: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^Ran (\d+) tests? in [\d.]+s$"));
    static END: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^(OK|FAILED)(?: \(([^)]*)\))?\s*$"));
    static ITEM: LazyLock<Regex> = LazyLock::new(|| re(r"([a-z ]+)=(\d+)"));
    let ran = RAN.captures_iter(text).last()?;
    let total = number(&ran[1]);
    let after = &text[ran.get(0)?.end()..];
    let end = END.captures(after)?;
    let (mut failed, mut skipped) = (0, 0);
    if let Some(details) = end.get(2) {
        for c in ITEM.captures_iter(details.as_str()) {
            match c[1].trim() {
                "failures" | "errors" | "unexpected successes" => failed += number(&c[2]),
                "skipped" | "expected failures" => skipped += number(&c[2]),
                _ => {}
            }
        }
    }
    let passed = total.saturating_sub(failed + skipped);
    Some(tests(Tool::Unittest, passed, failed, skipped))
}

/// `Tests:       1 failed, 1 skipped, 3 passed, 5 total`.
fn jest(text: &str) -> Option<Counts> {
    static LINE: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^Tests:\s+(.*\d+ total)\s*$"));
    let summary = LINE.captures_iter(text).last()?.get(1)?.as_str().to_owned();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (n, what) in tallies(&summary) {
        match what.as_str() {
            "passed" => passed += n,
            "failed" => failed += n,
            "skipped" | "todo" => skipped += n,
            _ => {}
        }
    }
    Some(tests(Tool::Jest, passed, failed, skipped))
}

/// `      Tests  1 failed | 5 passed | 1 skipped (7)`.
fn vitest(text: &str) -> Option<Counts> {
    static LINE: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?m)^\s*Tests\s+(\d+ [a-z]+(?: \| \d+ [a-z]+)*) \(\d+\)\s*$"));
    let summary = LINE.captures_iter(text).last()?.get(1)?.as_str().to_owned();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (n, what) in tallies(&summary) {
        match what.as_str() {
            "passed" => passed += n,
            "failed" => failed += n,
            "skipped" | "todo" => skipped += n,
            _ => {}
        }
    }
    Some(tests(Tool::Vitest, passed, failed, skipped))
}

/// `go test -v`: one `--- PASS|FAIL|SKIP: Name (0.00s)` line per test and subtest. Without
/// `-v` passing tests are not listed, so nothing is counted unless `=== RUN` lines show that
/// the output is verbose.
fn go_test(text: &str) -> Option<Counts> {
    static RESULT: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?m)^\s*--- (PASS|FAIL|SKIP): \S+ \([\d.]+s\)"));
    static RUN: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^=== RUN\s+\S+"));
    if !RUN.is_match(text) {
        return None;
    }
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for c in RESULT.captures_iter(text) {
        match &c[1] {
            "PASS" => passed += 1,
            "FAIL" => failed += 1,
            _ => skipped += 1,
        }
    }
    Some(tests(Tool::GoTest, passed, failed, skipped))
}

/// `Found 3 errors.` or `All checks passed!` (ruff reports every violation as an error).
fn ruff(text: &str) -> Option<Counts> {
    static FOUND: LazyLock<Regex> = LazyLock::new(|| {
        re(r"(?m)^Found (\d+) errors?\.?(?: \(\d+ fixed, \d+ remaining\)\.)?\s*$")
    });
    static CLEAN: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^All checks passed!\s*$"));
    if let Some(c) = FOUND.captures_iter(text).last() {
        return Some(Counts::Diagnostics { tool: Tool::Ruff, warnings: 0, errors: number(&c[1]) });
    }
    CLEAN.is_match(text).then_some(Counts::Diagnostics { tool: Tool::Ruff, warnings: 0, errors: 0 })
}

/// `✖ 3 problems (1 error, 2 warnings)`. A clean run prints nothing at all, so zero counts
/// are given only when the output shows eslint ran (npm's `> eslint .` banner) and it exited 0.
fn eslint(text: &str, exit_code: Option<i32>) -> Option<Counts> {
    static LINE: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?m)^\s*✖ \d+ problems? \((\d+) errors?, (\d+) warnings?\)"));
    static BANNER: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^> (?:npx )?eslint\b"));
    if let Some(c) = LINE.captures_iter(text).last() {
        return Some(Counts::Diagnostics {
            tool: Tool::Eslint,
            warnings: number(&c[2]),
            errors: number(&c[1]),
        });
    }
    (exit_code == Some(0) && BANNER.is_match(text)).then_some(Counts::Diagnostics {
        tool: Tool::Eslint,
        warnings: 0,
        errors: 0,
    })
}

/// rustc's diagnostics as cargo prints them: one `warning:` or `error:` line per diagnostic,
/// beside cargo's own summary lines, which are not counted. Recognised by cargo's `Checking`,
/// `Compiling` or `Finished` lines.
fn rust_diagnostics(text: &str, tool: Tool) -> Option<Counts> {
    static CARGO: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^\s*(Checking|Compiling|Finished) "));
    static DIAGNOSTIC: LazyLock<Regex> =
        LazyLock::new(|| re(r"(?m)^(warning|error)(?:\[[A-Za-z0-9_:]+\])?: (.*)$"));
    if !CARGO.is_match(text) {
        return None;
    }
    let (mut warnings, mut errors) = (0, 0);
    for c in DIAGNOSTIC.captures_iter(text) {
        let message = &c[2];
        let summary = message.starts_with("could not compile")
            || message.starts_with("aborting due to")
            || message.starts_with("build failed")
            || message.contains(" generated ")
            || message.starts_with('`')
            || message.starts_with("unused manifest key");
        if summary {
            continue;
        }
        if &c[1] == "warning" {
            warnings += 1;
        } else {
            errors += 1;
        }
    }
    Some(Counts::Diagnostics { tool, warnings, errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tool: Tool, total: u64, passed: u64, failed: u64, skipped: u64) -> Option<Counts> {
        Some(Counts::Tests { tool, total, passed, failed, skipped })
    }

    fn d(tool: Tool, warnings: u64, errors: u64) -> Option<Counts> {
        Some(Counts::Diagnostics { tool, warnings, errors })
    }

    const CARGO_TEST: &str = "\
   Compiling demo v0.1.0 (/home/dev/demo)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 0.61s
     Running unittests src/lib.rs (target/debug/deps/demo-3f1c2e9a8b7d6c5e)

running 4 tests
test tests::adds ... ok
test tests::parses_empty_input ... ignored
test tests::subtracts ... FAILED
test tests::multiplies ... ok

failures:

---- tests::subtracts stdout ----

thread 'tests::subtracts' panicked at src/lib.rs:23:9:
assertion `left == right` failed
  left: 1
 right: 2
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


failures:
    tests::subtracts

test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s

error: test failed, to rerun pass `--lib`
";

    const CARGO_TEST_SEVERAL_BINARIES: &str = "\
     Running unittests src/lib.rs (target/debug/deps/demo-3f1c2e9a8b7d6c5e)

running 2 tests
test a ... ok
test b ... ok

test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

     Running tests/api.rs (target/debug/deps/api-0a1b2c3d4e5f6a7b)

running 3 tests
test c ... ok
test d ... ok
test e ... ignored, needs a database

test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s

   Doc-tests demo

running 1 test
test src/lib.rs - add (line 3) ... ok

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.12s

";

    #[test]
    fn cargo_test_results_of_every_binary_add_up() {
        assert_eq!(parse(CheckKind::Test, CARGO_TEST, Some(101)), t(Tool::CargoTest, 4, 2, 1, 1));
        assert_eq!(
            parse(CheckKind::Test, CARGO_TEST_SEVERAL_BINARIES, Some(0)),
            t(Tool::CargoTest, 6, 5, 0, 1)
        );
    }

    #[test]
    fn a_cargo_test_that_does_not_compile_has_no_counts() {
        let output = "\
   Compiling demo v0.1.0 (/home/dev/demo)
error[E0425]: cannot find value `y` in this scope
 --> src/lib.rs:2:5
  |
2 |     y
  |     ^ not found in this scope

For more information about this error, try `rustc --explain E0425`.
error: could not compile `demo` (lib test) due to 1 previous error
";
        assert_eq!(parse(CheckKind::Test, output, Some(101)), None);
    }

    #[test]
    fn nextest_summaries_count_timeouts_as_failures() {
        let output = "\
    Starting 6 tests across 2 binaries (2 tests skipped)
        PASS [   0.004s] demo tests::adds
        PASS [   0.004s] demo tests::multiplies
        FAIL [   0.005s] demo tests::subtracts
     TIMEOUT [  60.002s] demo tests::waits
        PASS [   0.010s] demo::api lists
        PASS [   0.011s] demo::api creates
------------
     Summary [  60.013s] 6 tests run: 4 passed, 1 failed, 1 timed out, 2 skipped
        FAIL [   0.005s] demo tests::subtracts
     TIMEOUT [  60.002s] demo tests::waits
error: test run failed
";
        assert_eq!(parse(CheckKind::Test, output, Some(100)), t(Tool::Nextest, 8, 4, 2, 2));
        let clean = "     Summary [   0.020s] 1 test run: 1 passed (1 leaky), 0 skipped\n";
        assert_eq!(parse(CheckKind::Test, clean, Some(0)), t(Tool::Nextest, 1, 1, 0, 0));
    }

    #[test]
    fn pytest_final_lines_in_every_verbosity() {
        let output = "\
============================= test session starts ==============================
platform linux -- Python 3.11.2, pytest-8.3.3, pluggy-1.5.0
rootdir: /home/dev/demo
collected 9 items

tests/test_math.py ..F.s.x.E                                              [100%]

==================================== ERRORS ====================================
_______________________ ERROR at setup of test_database ________________________
E       fixture 'db' not found
=================================== FAILURES ===================================
_________________________________ test_divide __________________________________

    def test_divide():
>       assert divide(1, 0) == 0
E       ZeroDivisionError: division by zero

tests/test_math.py:14: ZeroDivisionError
=========================== short test summary info ============================
FAILED tests/test_math.py::test_divide - ZeroDivisionError: division by zero
ERROR tests/test_math.py::test_database
===== 1 failed, 5 passed, 1 skipped, 1 xfailed, 2 warnings, 1 error in 0.31s =====
";
        assert_eq!(parse(CheckKind::Test, output, Some(1)), t(Tool::Pytest, 9, 5, 2, 2));
        let quiet = "........                                                                 [100%]\n8 passed in 0.05s\n";
        assert_eq!(parse(CheckKind::Test, quiet, Some(0)), t(Tool::Pytest, 8, 8, 0, 0));
        let none =
            "============================ no tests ran in 0.01s =============================\n";
        assert_eq!(parse(CheckKind::Test, none, Some(5)), None);
    }

    #[test]
    fn unittest_totals_and_its_failure_line() {
        let output = "\
test_add (test_math.MathTest.test_add) ... ok
test_later (test_math.MathTest.test_later) ... skipped 'not yet'
test_sub (test_math.MathTest.test_sub) ... FAIL
test_zero (test_math.MathTest.test_zero) ... ERROR

======================================================================
ERROR: test_zero (test_math.MathTest.test_zero)
----------------------------------------------------------------------
Traceback (most recent call last):
  File \"/home/dev/demo/test_math.py\", line 15, in test_zero
    1 / 0
ZeroDivisionError: division by zero

======================================================================
FAIL: test_sub (test_math.MathTest.test_sub)
----------------------------------------------------------------------
Traceback (most recent call last):
  File \"/home/dev/demo/test_math.py\", line 9, in test_sub
    self.assertEqual(3 - 1, 1)
AssertionError: 2 != 1

----------------------------------------------------------------------
Ran 4 tests in 0.001s

FAILED (failures=1, errors=1, skipped=1)
";
        assert_eq!(parse(CheckKind::Test, output, Some(1)), t(Tool::Unittest, 4, 1, 2, 1));
        let ok = "..\n----------------------------------------------------------------------\nRan 2 tests in 0.000s\n\nOK\n";
        assert_eq!(parse(CheckKind::Test, ok, Some(0)), t(Tool::Unittest, 2, 2, 0, 0));
    }

    #[test]
    fn jest_summary_lines() {
        let output = "\
 PASS  src/sum.test.js
 FAIL  src/divide.test.js
  ● divide › refuses zero

    expect(received).toThrow()

    Received function did not throw

       8 |   test('refuses zero', () => {
    >  9 |     expect(() => divide(1, 0)).toThrow();
         |                                ^

Test Suites: 1 failed, 1 passed, 2 total
Tests:       1 failed, 1 skipped, 1 todo, 3 passed, 6 total
Snapshots:   0 total
Time:        0.812 s
Ran all test suites.
";
        assert_eq!(parse(CheckKind::Test, output, Some(1)), t(Tool::Jest, 6, 3, 1, 2));
    }

    #[test]
    fn vitest_summary_lines_with_colours() {
        let output = "\
\x1b[32m✓\x1b[39m src/sum.test.ts \x1b[2m(3 tests)\x1b[22m\x1b[2m 2ms\x1b[22m
\x1b[31m❯\x1b[39m src/divide.test.ts \x1b[2m(4 tests | \x1b[22m\x1b[31m1 failed\x1b[39m\x1b[2m)\x1b[22m

\x1b[2m Test Files \x1b[22m \x1b[1m\x1b[31m1 failed\x1b[39m\x1b[22m\x1b[2m | \x1b[22m\x1b[1m\x1b[32m1 passed\x1b[39m\x1b[22m\x1b[90m (2)\x1b[39m
\x1b[2m      Tests \x1b[22m \x1b[1m\x1b[31m1 failed\x1b[39m\x1b[22m\x1b[2m | \x1b[22m\x1b[1m\x1b[32m5 passed\x1b[39m\x1b[22m\x1b[2m | \x1b[22m\x1b[33m1 skipped\x1b[39m\x1b[90m (7)\x1b[39m
\x1b[2m   Start at \x1b[22m 10:42:01
\x1b[2m   Duration \x1b[22m 412ms
";
        assert_eq!(parse(CheckKind::Test, output, Some(1)), t(Tool::Vitest, 7, 5, 1, 1));
    }

    #[test]
    fn verbose_go_test_output_counts_tests_and_subtests() {
        let output = "\
=== RUN   TestAdd
--- PASS: TestAdd (0.00s)
=== RUN   TestSub
    math_test.go:14: Sub(3, 1) = 1, want 2
--- FAIL: TestSub (0.00s)
=== RUN   TestTable
=== RUN   TestTable/zero
=== RUN   TestTable/negative
    --- PASS: TestTable/zero (0.00s)
    --- PASS: TestTable/negative (0.00s)
--- PASS: TestTable (0.00s)
=== RUN   TestNetwork
    math_test.go:30: needs the network
--- SKIP: TestNetwork (0.00s)
FAIL
FAIL\texample.com/m\t0.003s
=== RUN   TestOther
--- PASS: TestOther (0.00s)
PASS
ok  \texample.com/m/other\t0.002s
FAIL
";
        assert_eq!(parse(CheckKind::Test, output, Some(1)), t(Tool::GoTest, 7, 5, 1, 1));
        // Without -v the passing tests are not listed: no counts rather than wrong ones.
        let terse = "--- FAIL: TestSub (0.00s)\n    math_test.go:14: no\nFAIL\nFAIL\texample.com/m\t0.003s\n";
        assert_eq!(parse(CheckKind::Test, terse, Some(1)), None);
    }

    #[test]
    fn clippy_counts_diagnostics_and_not_cargos_summaries() {
        let output = "\
    Checking demo v0.1.0 (/home/dev/demo)
warning: unused variable: `count`
 --> src/lib.rs:4:9
  |
4 |     let count = 3;
  |         ^^^^^ help: if this is intentional, prefix it with an underscore: `_count`
  |
  = note: `#[warn(unused_variables)]` on by default

warning: this `if` has identical blocks
  --> src/lib.rs:9:5
   |
   = help: for further information visit https://rust-lang.github.io/rust-clippy/master/index.html#if_same_then_else
   = note: `#[warn(clippy::if_same_then_else)]` on by default

error: this comparison involving the minimum or maximum element for this type contains a case that is always true or always false
  --> src/lib.rs:14:8
   |
14 |     if x >= u8::MAX {
   |        ^^^^^^^^^^^^
   |
   = help: for further information visit https://rust-lang.github.io/rust-clippy/master/index.html#absurd_extreme_comparisons
   = note: `#[deny(clippy::absurd_extreme_comparisons)]` on by default

warning: `demo` (lib) generated 2 warnings
error: could not compile `demo` (lib) due to 1 previous error; 2 warnings emitted
";
        assert_eq!(parse(CheckKind::Lint, output, Some(101)), d(Tool::Clippy, 2, 1));
        let clean = "    Checking demo v0.1.0 (/home/dev/demo)\n    Finished `dev` profile [unoptimized + debuginfo] target(s) in 0.42s\n";
        assert_eq!(parse(CheckKind::Lint, clean, Some(0)), d(Tool::Clippy, 0, 0));
    }

    #[test]
    fn a_failed_cargo_build_counts_rustc_errors() {
        let output = "\
   Compiling demo v0.1.0 (/home/dev/demo)
error[E0308]: mismatched types
 --> src/main.rs:2:18
  |
2 |     let x: u32 = \"three\";
  |            ---   ^^^^^^^ expected `u32`, found `&str`

For more information about this error, try `rustc --explain E0308`.
error: could not compile `demo` (bin \"demo\") due to 1 previous error
";
        assert_eq!(parse(CheckKind::Build, output, Some(101)), d(Tool::Rustc, 0, 1));
    }

    #[test]
    fn eslint_problem_lines_and_a_clean_run() {
        let output = "
> web@1.0.0 lint
> eslint .


/home/dev/web/src/index.js
   1:10  error    'format' is defined but never used  no-unused-vars
   7:3   warning  Unexpected console statement        no-console
  12:1   warning  Unexpected console statement        no-console

✖ 3 problems (1 error, 2 warnings)
  0 errors and 0 warnings potentially fixable with the `--fix` option.

";
        assert_eq!(parse(CheckKind::Lint, output, Some(1)), d(Tool::Eslint, 2, 1));
        let clean = "\n> web@1.0.0 lint\n> eslint .\n\n";
        assert_eq!(parse(CheckKind::Lint, clean, Some(0)), d(Tool::Eslint, 0, 0));
        // A crash is not a clean run.
        let crash = "\n> web@1.0.0 lint\n> eslint .\n\nOops! Something went wrong! :(\n";
        assert_eq!(parse(CheckKind::Lint, crash, Some(2)), None);
    }

    #[test]
    fn ruff_reports_every_violation_as_an_error() {
        let output = "\
app/main.py:1:8: F401 [*] `os` imported but unused
  |
1 | import os
  |        ^^ F401
  |
  = help: Remove unused import: `os`

app/main.py:9:5: E722 Do not use bare `except`
   |
 9 |     except:
   |     ^^^^^^ E722
   |

Found 2 errors.
[*] 1 fixable with the `--fix` option.
";
        assert_eq!(parse(CheckKind::Lint, output, Some(1)), d(Tool::Ruff, 0, 2));
        assert_eq!(parse(CheckKind::Lint, "All checks passed!\n", Some(0)), d(Tool::Ruff, 0, 0));
    }

    #[test]
    fn unrecognised_output_has_no_counts() {
        assert_eq!(parse(CheckKind::Test, "make: *** [test] Error 1\n", Some(2)), None);
        assert_eq!(parse(CheckKind::Lint, "", Some(0)), None);
        assert_eq!(parse(CheckKind::Build, "webpack compiled successfully\n", Some(0)), None);
    }

    #[test]
    fn counts_serialise_with_their_tool() {
        let json = serde_json::to_value(t(Tool::CargoTest, 3, 2, 1, 0)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"tool": "cargo_test", "total": 3, "passed": 2, "failed": 1, "skipped": 0})
        );
        let json = serde_json::to_value(d(Tool::Eslint, 1, 2)).unwrap();
        assert_eq!(json, serde_json::json!({"tool": "eslint", "warnings": 1, "errors": 2}));
    }
}
