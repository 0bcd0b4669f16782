//! The blocking API from a plain `fn main`: no runtime, no `.await`, no
//! tokio in sight. Run it with `cargo run -p pkit --example blocking`.

use std::time::Duration;

use pkit::Command;

fn main() -> Result<(), pkit::Error> {
    // Capture: the answer, trimmed of its line ending only.
    let kernel = Command::new("uname").arg("-s").blocking().run()?;
    println!("kernel: {kernel}");

    // A number, parsed.
    let n: u32 = Command::new("sh")
        .args(["-c", "echo 6 7 | wc -w"])
        .blocking()
        .parse()?;
    println!("words: {n}");

    // A failure keeps what the program said.
    let err = Command::new("sh")
        .args(["-c", "echo 'fatal: no such thing' >&2; exit 2"])
        .blocking()
        .run()
        .expect_err("it fails");
    println!("error: {err}");

    // A timeout takes the whole tree down, grandchildren included.
    let out = Command::new("sh")
        .args(["-c", "sleep 60 & sleep 60"])
        .timeout(Duration::from_millis(200))
        .blocking()
        .output()?;
    println!("timed out: {}", out.timed_out());

    // A live process, its lines as an iterator; dropping the handle of a
    // one-off start ends its tree.
    let mut counter = Command::new("sh")
        .args(["-c", "for i in 1 2 3; do echo tick $i; sleep 0.1; done"])
        .stream_lines()
        .blocking()
        .start()?;
    for line in counter.lines() {
        println!("live: {}", line.text);
    }
    println!("exit: {}", counter.wait()?.outcome());

    // The first matching line, and the rest of the run ended.
    let ready = Command::new("sh")
        .args(["-c", "echo booting; echo ready on 8080; sleep 60"])
        .blocking()
        .first_line(|l| l.starts_with("ready"))?;
    println!("first line: {ready:?}");

    // Several at once, results in order.
    let results = pkit::blocking::output_all(
        (1..=3).map(|i| Command::new("echo").arg(format!("job {i}"))),
        2,
    );
    for r in results {
        print!("batch: {}", r?.stdout_str());
    }
    Ok(())
}
