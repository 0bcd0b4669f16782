//! `-E K=V`, parsed without quoting the argument when it is refused: its
//! value may be a secret (`-E "$NAME=$TOKEN"` with `NAME` unset is
//! `=<token>`), and a refusal is printed to stderr, often a CI log.

use std::ffi::{OsStr, OsString};

/// The value parser of `-E`: [`key_value`], refused by name alone.
#[derive(Clone, Copy, Debug)]
pub struct EnvParser;

impl clap::builder::TypedValueParser for EnvParser {
    type Value = (OsString, OsString);

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Self::Value, clap::Error> {
        key_value(value).ok_or_else(|| {
            let arg = arg.map_or_else(|| "--env <K=V>".to_string(), ToString::to_string);
            let why = format!(
                "invalid value for '{arg}': expected K=V, K not empty \
                 (the value is not shown: it may be a secret)\n"
            );
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, why).with_cmd(cmd)
        })
    }
}

/// `K=V`, split at the first `=`. On Unix the name and the value are any
/// bytes (an environment is bytes there); elsewhere they must be text.
fn key_value(arg: &OsStr) -> Option<(OsString, OsString)> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let mut name = arg.to_os_string().into_vec();
        let at = name.iter().position(|&b| b == b'=').filter(|&i| i > 0);
        at.map(|i| {
            let value = name.split_off(i + 1);
            name.truncate(i);
            (OsString::from_vec(name), OsString::from_vec(value))
        })
    }
    #[cfg(not(unix))]
    arg.to_str()
        .and_then(|text| text.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.into(), v.into()))
}
