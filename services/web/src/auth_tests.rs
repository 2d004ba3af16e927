//! Tests of tokens and scopes.

use super::*;

fn tokens() -> Tokens {
    Tokens::new(vec![
        Token::new("ops", Scope::Admin, "admin-0123456789abcdef").unwrap(),
        Token::new("old-ops", Scope::Admin, "admin-old-0123456789").unwrap(),
        Token::new("grafana", Scope::Read, "read-0123456789abcdef").unwrap(),
    ])
    .unwrap()
}

#[test]
fn scopes_are_ordered_admin_over_read() {
    assert!(Scope::Admin.grants(Scope::Read));
    assert!(Scope::Admin.grants(Scope::Admin));
    assert!(Scope::Read.grants(Scope::Read));
    assert!(!Scope::Read.grants(Scope::Admin));
}

#[test]
fn each_token_is_judged_by_its_scope() {
    let t = tokens();
    let admin = Scope::Admin;
    assert_eq!(
        t.judge(Some(b"Bearer admin-0123456789abcdef"), admin),
        Verdict::Allowed("ops".into())
    );
    // both admin tokens are valid during a rotation
    assert_eq!(
        t.judge(Some(b"bearer  admin-old-0123456789 "), admin),
        Verdict::Allowed("old-ops".into())
    );
    assert_eq!(
        t.judge(Some(b"Bearer read-0123456789abcdef"), admin),
        Verdict::Insufficient("grafana".into())
    );
    assert_eq!(
        t.judge(Some(b"Bearer read-0123456789abcdef"), Scope::Read),
        Verdict::Allowed("grafana".into())
    );
    assert_eq!(
        t.judge(Some(b"Bearer admin-0123456789abcdeF"), admin),
        Verdict::Unknown
    );
    assert_eq!(t.judge(Some(b"Bearer x"), admin), Verdict::Unknown);
    assert_eq!(t.judge(None, admin), Verdict::Missing);
    assert_eq!(
        t.judge(Some(b"Basic dXNlcjpwYXNz"), admin),
        Verdict::Missing
    );
    assert_eq!(t.judge(Some(b"Bearer "), admin), Verdict::Missing);
    assert_eq!(
        t.judge(Some(b"admin-0123456789abcdef"), admin),
        Verdict::Missing
    );
    assert_eq!(t.judge(Some(&[0xff, 0xfe]), admin), Verdict::Missing);
    assert_eq!(
        Tokens::default().judge(Some(b"Bearer anything-at-all-x"), Scope::Read),
        Verdict::Unknown
    );
}

#[test]
fn secrets_never_show_and_bad_sets_are_refused() {
    let t = Token::new("ops", Scope::Admin, "admin-0123456789abcdef").unwrap();
    let shown = format!("{t:?} {:?}", tokens());
    assert!(!shown.contains("0123456789"), "{shown}");
    assert!(shown.contains("ops"), "{shown}");
    assert!(Token::new("short", Scope::Read, "0123456789").is_err());
    let twice = |a: &str, b: &str, sa: &str, sb: &str| {
        Tokens::new(vec![
            Token::new(a, Scope::Admin, sa).unwrap(),
            Token::new(b, Scope::Read, sb).unwrap(),
        ])
    };
    assert!(twice("a", "a", "0123456789abcdef-1", "0123456789abcdef-2").is_err());
    let same = twice("a", "b", "0123456789abcdef-1", "0123456789abcdef-1").unwrap_err();
    assert!(!same.to_string().contains("0123456789"), "{same}");
    assert!(tokens().has(Scope::Admin));
    assert!(!Tokens::default().has(Scope::Read));
}

#[test]
fn sources_are_files_or_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "  file-token-0123456789\nignored\n").unwrap();
    let from_file = TokenSource {
        name: "f".into(),
        scope: Scope::Read,
        file: Some(file.clone()),
        env: None,
    };
    let t = from_file.load().unwrap();
    let set = Tokens::new(vec![t]).unwrap();
    assert_eq!(
        set.judge(Some(b"Bearer file-token-0123456789"), Scope::Read),
        Verdict::Allowed("f".into())
    );
    // a variable name nobody sets: the error names the variable, not a secret
    let missing = TokenSource {
        name: "e".into(),
        scope: Scope::Admin,
        file: None,
        env: Some("IMGCRAWL_TEST_TOKEN_THAT_IS_NEVER_SET".into()),
    };
    let e = missing.load().unwrap_err().to_string();
    assert!(e.contains("IMGCRAWL_TEST_TOKEN_THAT_IS_NEVER_SET"), "{e}");
    let both = TokenSource {
        env: Some("X".into()),
        ..from_file
    };
    assert!(both.load().is_err());
    let parsed: TokenSource =
        serde_json::from_str(r#"{"name":"n","scope":"admin","env":"V"}"#).unwrap();
    assert_eq!(parsed.scope, Scope::Admin);
    assert!(
        serde_json::from_str::<TokenSource>(r#"{"name":"n","scope":"root","env":"V"}"#).is_err()
    );
}
