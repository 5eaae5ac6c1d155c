//! Issue 13 §3 "the planner is exactly as strict as the API server": the corpus in tests/fixtures/admission holds
//! objects the hub accepts or rejects (each file's first line says which, and the field a rejection names). Here
//! `marshal plan` must agree with every expectation; `e2e/tests/50-plan-admission.sh` applies the same files to a
//! real hub with `kubectl apply --dry-run=server` (strict field validation, the CRDs, the admission policy) and
//! asserts that it agrees with them too, object by object.

use std::path::{Path, PathBuf};

use marshal::plan::input;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admission")
}

/// The SecurityPolicies in force on the hub while the corpus is applied.
fn policies() -> Vec<PathBuf> {
    vec![
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/baltic/00-security-policy.yaml"),
        corpus().join("policies/rules.yaml"),
    ]
}

/// `accept`, or `reject:<field>`.
fn expectation(path: &Path) -> (bool, Option<String>) {
    let text = std::fs::read_to_string(path).expect("read");
    let first = text.lines().next().unwrap_or_default();
    let want = first.strip_prefix("# expect: ").unwrap_or_else(|| panic!("{}: no `# expect:` line", path.display()));
    match want.trim() {
        "accept" => (true, None),
        w => (false, Some(w.strip_prefix("reject:").unwrap_or_else(|| panic!("{}: {w}", path.display())).to_string())),
    }
}

#[test]
fn the_planner_accepts_and_rejects_what_the_hub_does() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "the corpus covers every rule ({} files)", files.len());
    let mut problems = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    for f in &files {
        let (accept, field) = expectation(f);
        let mut paths = policies();
        paths.push(f.clone());
        match (input::read(&paths), accept) {
            (Ok(_), true) => accepted += 1,
            (Err(e), false) => {
                rejected += 1;
                let field = field.unwrap_or_default();
                let msg = e.to_string();
                if !msg.contains(&field) || !msg.contains(f.file_name().and_then(|n| n.to_str()).unwrap_or_default()) {
                    problems.push(format!("{}: rejected, but the message does not name {field}: {msg}", f.display()));
                }
            }
            (Ok(_), false) => problems.push(format!("{}: accepted, the hub rejects it ({field:?})", f.display())),
            (Err(e), true) => problems.push(format!("{}: rejected, the hub accepts it: {e}", f.display())),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(accepted >= 8 && rejected >= 20, "{accepted} accepted, {rejected} rejected");
}
