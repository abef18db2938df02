//! CI must run the PostgreSQL tests: building this crate without its
//! `postgres` feature would compile them out, which CI must not accept silently.

#[cfg(not(feature = "postgres"))]
#[test]
fn postgres_tests_are_compiled_in_ci() {
    assert!(
        std::env::var_os("CI").is_none(),
        "the `postgres` feature is off, so the PostgreSQL tests are not compiled; CI must run them"
    );
}
