mod common;
use common::*;

#[test]
fn odd_sizes_blocking() {
    for choice in mechanisms() {
        for n in [
            1usize,
            4095,
            4097,
            65535,
            65537,
            1 << 20 | 7,
            3 * (1 << 20) + 1,
        ] {
            let input: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            // child writes big stdout before reading stdin; and big stderr
            let script = "head -c 200003 /dev/zero; head -c 150001 /dev/zero >&2; cat";
            for blocking in [true, false] {
                let cmd = sh(choice, script).stdin_bytes(input.clone());
                let out = if blocking {
                    cmd.blocking().output()
                } else {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap()
                        .block_on(cmd.output())
                };
                let out = out.unwrap_or_else(|e| panic!("{choice} {n} {blocking}: {e}"));
                assert_eq!(out.stdout().len(), 200003 + n, "{choice} {n} {blocking}");
                assert_eq!(
                    &out.stdout()[200003..],
                    &input[..],
                    "{choice} {n} {blocking}"
                );
                assert_eq!(out.stderr().len(), 150001, "{choice} {n} {blocking}");
            }
            // child reads only part then exits
            for blocking in [true, false] {
                let cmd = sh(choice, "head -c 10 >/dev/null; echo done").stdin_bytes(input.clone());
                let out = if blocking {
                    cmd.blocking().output()
                } else {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap()
                        .block_on(cmd.output())
                };
                let out = out.unwrap_or_else(|e| panic!("partial {choice} {n} {blocking}: {e}"));
                assert_eq!(out.stdout_str(), "done\n", "{choice} {n} {blocking}");
                assert!(
                    out.success(),
                    "{choice} {n} {blocking}: {:?}",
                    out.outcome()
                );
            }
        }
    }
}
