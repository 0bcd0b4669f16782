//! `CliClient`: defaults reach the real process (arguments, replaced and
//! appended environment, directory, timeout), and a wrapper over it is
//! testable through a hand-written runner that records what it was asked.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use pkit::{BoxFuture, CliClient, Command, Output, Runner, SystemRunner};

#[tokio::test]
async fn defaults_reach_the_process() {
    let suite = begin("defaults_reach_the_process").await;
    for choice in mechanisms() {
        let dir = TempPath::new("client-cwd");
        std::fs::create_dir(dir.path()).unwrap();
        let base = CliClient::new("sh")
            .args([
                "-c",
                r#"echo "$1|${A-unset}|${B-unset}|${HOME-unset}|$(pwd)""#,
                "sh",
            ])
            .current_dir(dir.path())
            .with_runner(Arc::new(SystemRunner::with_mechanism(choice)));
        let want_dir = std::fs::canonicalize(dir.path()).unwrap();
        let want_dir = want_dir.to_str().unwrap();

        // Inherited environment plus an appended variable.
        let got = base.clone().append_env("B", "b").run(["x"]).await.unwrap();
        let home = std::env::var("HOME").unwrap_or_else(|_| "unset".into());
        assert_eq!(got, format!("x|unset|b|{home}|{want_dir}"), "{choice}");

        // A replaced environment: HOME is gone; appended variables still apply.
        let got = base
            .clone()
            .env([("A", "a")])
            .append_env("B", "b")
            .run(["y"])
            .await
            .unwrap();
        assert_eq!(got, format!("y|a|b|unset|{want_dir}"), "{choice}");

        // The timeout applies to every call.
        let err = CliClient::new("sleep")
            .timeout(Duration::from_millis(100))
            .with_runner(Arc::new(SystemRunner::with_mechanism(choice)))
            .run(["300"])
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{choice}: {err:?}");

        // The other verbs, and a command to adjust.
        let sh = CliClient::new("sh").with_runner(Arc::new(SystemRunner::with_mechanism(choice)));
        assert_eq!(sh.exit_code(["-c", "exit 4"]).await.unwrap(), 4);
        assert!(!sh.probe(["-c", "exit 1"]).await.unwrap());
        assert_eq!(
            sh.output(["-c", "echo o"]).await.unwrap().stdout_str(),
            "o\n"
        );
        let got = sh
            .command(["-c", "cat"])
            .stdin_str("in")
            .run()
            .await
            .unwrap();
        assert_eq!(got, "in");
    }
    suite.end().await;
}

/// A hand-written double: records each command it is given and answers by
/// printing a canned reply (through a real `printf`).
struct Recording {
    reply: &'static str,
    calls: Mutex<Vec<(String, Vec<String>)>>,
}

impl Runner for Recording {
    fn output<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, pkit::Result<Output>> {
        let args = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        self.calls
            .lock()
            .unwrap()
            .push((cmd.get_program().to_string_lossy().into_owned(), args));
        Box::pin(async move {
            let answer = Command::new("printf").arg(self.reply);
            SystemRunner::default().output(&answer).await
        })
    }
}

/// The wrapper from `CliClient`'s documentation.
struct Git {
    client: CliClient,
}

impl Git {
    fn with_runner(runner: Arc<dyn Runner>) -> Git {
        Git {
            client: CliClient::new("git")
                .append_env("GIT_TERMINAL_PROMPT", "0")
                .with_runner(runner),
        }
    }

    async fn current_branch(&self) -> pkit::Result<String> {
        self.client.run(["rev-parse", "--abbrev-ref", "HEAD"]).await
    }
}

#[tokio::test]
async fn a_wrapper_is_mockable_through_its_runner() {
    let suite = begin("a_wrapper_is_mockable_through_its_runner").await;
    let double = Arc::new(Recording {
        reply: "main\n",
        calls: Mutex::new(Vec::new()),
    });
    let git = Git::with_runner(double.clone());
    assert_eq!(git.current_branch().await.unwrap(), "main");
    let calls = double.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        [(
            "git".to_string(),
            vec!["rev-parse".into(), "--abbrev-ref".into(), "HEAD".into()]
        )]
    );
    suite.end().await;
}
