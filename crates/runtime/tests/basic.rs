//! Running containers end to end with the built-in runtime. Needs root.

mod common;

use common::*;

#[test]
fn echo_hello_via_attach() {
    if !require_root("echo_hello_via_attach") {
        return;
    }
    let fx = Fixture::new();
    let spec = fx.spec(&["echo", "hello"]);
    let (out, err, exit) = run(&spec);
    assert_eq!(out, "hello\n", "stderr: {err}");
    assert_eq!(exit.code, 0);
    assert!(!exit.oom_killed);
    assert!(exit.started_at.is_some());
    assert_eq!(
        log_lines(&spec),
        vec![("stdout".to_string(), "hello\n".to_string())]
    );
    fx.assert_clean(&spec);
}
