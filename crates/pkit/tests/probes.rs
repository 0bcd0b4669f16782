//! Readiness probes: a line, a port, a custom check — each ready, past its
//! deadline, and with the process exiting first. In both mechanisms.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use pkit::{Command, Group, MechanismChoice, NotReadyReason, Outcome, StreamKind};

const PATIENCE: Duration = Duration::from_secs(20);

fn group(m: MechanismChoice) -> Group {
    Group::builder().mechanism(m).build().expect("group")
}

fn sh(script: &str) -> Command {
    Command::new("sh").args(["-c", script])
}

fn reason(err: pkit::Error) -> NotReadyReason {
    assert!(err.is_not_ready(), "{err}");
    match err {
        pkit::Error::NotReady { reason, .. } => reason,
        other => panic!("{other}"),
    }
}

/// A port nobody listens on right now.
fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A port nobody listens on, and the socket that keeps it so until the
/// probe has answered: bound, never listening (connections are refused),
/// without SO_REUSEADDR, so no port-0 bind elsewhere (another test
/// binary's listener) and no connection's source port can be it. A port
/// let go at once ([`free_port`], for a server to bind) is any socket's to
/// take meanwhile: a probe of it then connects (attack_dec09b's CI
/// failure, the same pattern).
fn unlistened_port() -> (tokio::net::TcpSocket, SocketAddr) {
    let holder = tokio::net::TcpSocket::new_v4().unwrap();
    holder.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = holder.local_addr().unwrap();
    (holder, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_line() {
    let suite = common::begin("wait_for_line").await;
    for m in common::mechanisms() {
        let g = group(m);
        let mut p = g
            .start(
                &sh("echo starting; sleep 0.2; echo 'listening on 8080' >&2; sleep 300")
                    .stream_lines(),
            )
            .unwrap();
        let line = p
            .wait_for_line(|l| l.text.contains("listening"), PATIENCE)
            .await
            .unwrap();
        assert_eq!(line.stream, StreamKind::Stderr);
        assert!(!p.has_exited(), "a probe never kills the process");

        let err = p
            .wait_for_line(|l| l.text == "never", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(
            reason(err),
            NotReadyReason::Deadline(Duration::from_millis(300))
        );
        assert!(!p.has_exited());

        let mut q = g.start(&sh("echo nope; exit 3").stream_lines()).unwrap();
        let err = q
            .wait_for_line(|l| l.text == "ready", PATIENCE)
            .await
            .unwrap_err();
        assert_eq!(reason(err), NotReadyReason::Exited(Outcome::Exited(3)));

        // A line written just before exiting still counts.
        let mut r = g.start(&sh("echo ready; exit 0").stream_lines()).unwrap();
        assert_eq!(
            r.wait_for_line(|l| l.text == "ready", PATIENCE)
                .await
                .unwrap()
                .text,
            "ready"
        );

        let mut s = g.start(&sh("echo x")).unwrap();
        let err = s.wait_for_line(|_| true, PATIENCE).await.unwrap_err();
        assert_eq!(
            err.kind(),
            pkit::ErrorKind::InvalidInput,
            "needs stream_lines"
        );
        g.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_port() {
    let suite = common::begin("wait_for_port").await;
    for m in common::mechanisms() {
        let g = group(m);
        let addr = free_port();
        let server = format!(
            "import socket, time\ntime.sleep(0.3)\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', {}))\ns.listen()\ntime.sleep(300)\n",
            addr.port()
        );
        let p = g
            .start(&Command::new("python3").args(["-c", &server]))
            .unwrap();
        p.wait_for_port(addr, PATIENCE).await.unwrap();
        assert!(!p.has_exited());

        let idle = g.start(&Command::new("sleep").arg("300")).unwrap();
        let (_held, nobody) = unlistened_port();
        let err = idle
            .wait_for_port(nobody, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(reason(err), NotReadyReason::Deadline(_)));

        let dies = g.start(&sh("exit 4")).unwrap();
        let err = dies.wait_for_port(nobody, PATIENCE).await.unwrap_err();
        assert_eq!(reason(err), NotReadyReason::Exited(Outcome::Exited(4)));
        g.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_custom_check() {
    let suite = common::begin("wait_for_custom_check").await;
    for m in common::mechanisms() {
        let g = group(m);
        let flag = common::temp_path(&format!("probe-{m}"));
        let _ = std::fs::remove_file(&flag);
        let script = format!("sleep 0.2; touch {}; sleep 300", flag.display());
        let p = g.start(&sh(&script)).unwrap();
        let f = flag.clone();
        p.wait_for(
            || {
                let f = f.clone();
                async move { f.exists() }
            },
            PATIENCE,
        )
        .await
        .unwrap();
        std::fs::remove_file(&flag).unwrap();

        let err = p
            .wait_for(|| async { false }, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(reason(err), NotReadyReason::Deadline(_)));

        let dies = g.start(&sh("kill -TERM $$")).unwrap();
        let err = dies
            .wait_for(|| async { false }, PATIENCE)
            .await
            .unwrap_err();
        assert_eq!(reason(err), NotReadyReason::Exited(Outcome::Signalled(15)));
        g.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    suite.end().await;
}
