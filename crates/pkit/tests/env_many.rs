//! Thousands of environment variables reach the child, every one of them,
//! in both mechanisms (building the environment is linear: it used to be
//! quadratic in the number of variables a command sets).

mod common;

use common::*;

async fn count_in_child(choice: pkit::MechanismChoice, n: usize) {
    let vars = (0..n).map(|i| (format!("PKIT_MANY_{i}"), format!("value-{i}")));
    let out = cmd(choice, "env")
        .envs(vars)
        // One inherited variable changed in place, one removed.
        .env("PATH", "/usr/bin:/bin")
        .env_remove("HOME")
        .output()
        .await
        .expect("env");
    assert!(out.success(), "{choice}: {out:?}");
    let text = out.stdout_str();
    let mut seen = vec![false; n];
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("PKIT_MANY_") {
            let (i, v) = rest.split_once('=').expect("name=value");
            let i: usize = i.parse().expect("index");
            assert_eq!(v, format!("value-{i}"), "{choice}");
            assert!(!seen[i], "{choice}: PKIT_MANY_{i} twice");
            seen[i] = true;
        }
    }
    let missing = seen.iter().filter(|s| !**s).count();
    assert_eq!(missing, 0, "{choice}: {missing} of {n} variables missing");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("PATH=")).count(),
        1,
        "{choice}"
    );
    assert!(text.contains("\nPATH=/usr/bin:/bin\n") || text.starts_with("PATH=/usr/bin:/bin\n"));
    assert!(!text.lines().any(|l| l.starts_with("HOME=")), "{choice}");
}

#[tokio::test]
async fn ten_and_twenty_thousand_variables_reach_the_child() {
    let suite = begin("ten_and_twenty_thousand_variables_reach_the_child").await;
    for choice in mechanisms() {
        for n in [10_000, 20_000] {
            count_in_child(choice, n).await;
        }
    }
    suite.end().await;
}
