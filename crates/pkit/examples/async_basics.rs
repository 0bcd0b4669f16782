//! The async API on a Tokio runtime. Run it with
//! `cargo run -p pkit --example async_basics`.

use std::time::Duration;

use pkit::{Command, Group};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), pkit::Error> {
    // Capture, require success, trimmed of the line ending only.
    let hello = Command::new("echo").arg("hello").run().await?;
    println!("run: {hello}");

    // A non-zero exit is data for output().
    let out = Command::new("sh")
        .args(["-c", "echo out; exit 3"])
        .output()
        .await?;
    println!("output: {} -> {:?}", out.outcome(), out.stdout_str());

    // Codes that count as success.
    let count = Command::new("grep")
        .args(["-c", "x"])
        .stdin_str("a\nb\n")
        .ok_codes([0, 1])
        .run()
        .await?;
    println!("grep -c: {count}");

    // A group of live processes that die together.
    let group = Group::new()?;
    let mut server = group.start(
        &Command::new("sh")
            .args(["-c", "echo starting; sleep 0.1; echo ready; sleep 60"])
            .stream_lines(),
    )?;
    let line = server
        .wait_for_line(|l| l.text == "ready", Duration::from_secs(10))
        .await?;
    println!("server said: {}", line.text);
    let worker = group.start(&Command::new("sh").args(["-c", "sleep 0.2; exit 5"]))?;
    let mut procs = vec![worker];
    let (i, out) = pkit::wait_any(&mut procs).await?;
    println!("first to finish: #{i}, {}", out?.outcome());

    // SIGTERM, a grace, SIGKILL: the server and all it spawned.
    let report = group.shutdown(Duration::from_secs(2)).await?;
    println!("shutdown: {report:?}");
    Ok(())
}
