//! A program whose name is not valid UTF-8: it runs, and the report keeps
//! both a readable `program` and its exact bytes (`program_base64`).

#![cfg(unix)]

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use common::*;

/// Standard base64 decoding (RFC 4648, padded), for the test's check.
fn unbase64(text: &str) -> Vec<u8> {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        let mut have = 0;
        for &c in chunk {
            n <<= 6;
            if c != b'=' {
                n |= ABC.iter().position(|&a| a == c).expect("a base64 letter") as u32;
                have += 1;
            }
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..have]);
    }
    out
}

#[test]
fn a_non_utf8_program_name_is_kept_exactly_in_the_report() {
    let dir = temp_path("name");
    std::fs::create_dir(&dir).unwrap();
    let mut name = dir.as_os_str().as_bytes().to_vec();
    name.extend_from_slice(b"/prog-\xff\xfe-ok");
    let path = OsStr::from_bytes(&name);
    std::fs::write(path, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut missing = dir.as_os_str().as_bytes().to_vec();
    missing.extend_from_slice(b"/missing-\xe9");
    for m in mechanisms() {
        let out = pkit()
            .args(["run", "--json", "--mechanism", m, "--"])
            .arg(path)
            .output()
            .unwrap();
        let r = report(&out);
        assert_eq!(out.status.code(), Some(0), "{m}: {r}");
        assert_eq!(out.stdout, b"ran\n", "{m}");
        assert_eq!(r["program"], path.to_string_lossy().as_ref(), "{m}: {r}");
        assert!(
            r["program"].as_str().unwrap().contains('\u{fffd}'),
            "{m}: {r}"
        );
        let bytes = unbase64(r["program_base64"].as_str().expect("bytes given"));
        assert_eq!(bytes, name, "{m}: {r}");

        // Not found: the error's report names it the same way.
        let out = pkit()
            .args(["run", "--json", "--mechanism", m, "--"])
            .arg(OsStr::from_bytes(&missing))
            .output()
            .unwrap();
        let r = report(&out);
        assert_eq!(out.status.code(), Some(127), "{m}: {r}");
        let bytes = unbase64(r["program_base64"].as_str().expect("bytes given"));
        assert_eq!(bytes, missing, "{m}: {r}");

        // A UTF-8 name has no bytes beside it.
        let r = report(&run(&["run", "--json", "--mechanism", m, "--", "true"]));
        assert_eq!(r["program"], "true", "{m}: {r}");
        assert!(r["program_base64"].is_null(), "{m}: {r}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
