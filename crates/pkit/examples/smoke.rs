use std::time::Duration;
#[tokio::main(flavor = "current_thread")]
async fn main() -> pkit::Result<()> {
    let h = pkit::host_containment();
    println!("{:?}", h);
    let out = pkit::Command::new("sh")
        .args(["-c", "echo hi; echo err >&2; exit 3"])
        .output()
        .await?;
    println!("{:?} {:?} {:?}", out, out.stdout_str(), out.stderr_str());
    let t = std::time::Instant::now();
    let out = pkit::Command::new("sh")
        .args(["-c", "sleep 300 & sleep 300 & echo started; wait"])
        .timeout(Duration::from_millis(500))
        .output()
        .await?;
    println!("{:?} {:?} {:?}", out, out.stdout_str(), t.elapsed());
    let g = pkit::Group::new()?;
    println!("{}", g.description());
    let mut p = g.start(&pkit::Command::new("cat").stdin_str("abc"))?;
    println!("{:?}", p.wait().await?.stdout_str());
    let _p2 = g.start(&pkit::Command::new("sh").args(["-c", "sleep 100 & sleep 100; wait"]))?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!("pids {:?}", g.pids()?);
    let r = g.shutdown(Duration::from_secs(2)).await?;
    println!("{:?}", r);
    let e = pkit::Command::new("nonexistent-xyz")
        .output()
        .await
        .unwrap_err();
    println!("{e}");
    let e = pkit::Command::new("true")
        .current_dir("/nope")
        .output()
        .await
        .unwrap_err();
    println!("{e}");
    Ok(())
}
