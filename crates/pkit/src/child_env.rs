//! The environment a command's child starts with: this process's (unless
//! cleared, or narrowed by `inherit_env`) with the command's changes
//! ([`Spec::env`]) applied, one inherited variable at a time, then the new
//! ones. On Unix a start builds the child's block straight from the
//! inherited variables (`sys::derived_env`), with no string per variable
//! (issue 20); [`Spec::effective_env`] makes the same list as strings.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::ops::Bound;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::spec::Spec;
use crate::sys;

/// What becomes of an inherited variable.
enum Inherited<'s> {
    /// Passed on as it is.
    Kept,
    /// Left out: removed, or not among `inherit_env`'s names.
    Left,
    /// Passed on under its inherited name with this value.
    Set(&'s OsStr),
}

/// A change of `Spec::env`: the name as set, and the value (`None`:
/// removed).
type Change<'s> = (&'s OsString, &'s Option<OsString>);

/// A command's changes, applied to the variables its child would inherit
/// one at a time ([`inherited`](Self::inherited)), then the variables set
/// that met none of them ([`added`](Self::added)).
struct Merge<'s> {
    env: &'s BTreeMap<OsString, Option<OsString>>,
    /// `inherit_env`'s names as compared (on Windows without regard to
    /// case: see `sys::env_name_key`).
    only: Option<HashSet<Cow<'s, OsStr>>>,
    /// On Windows: the changes by name as compared.
    folded: Option<HashMap<Cow<'s, OsStr>, Change<'s>>>,
    /// The changes that met an inherited variable (so are not added), by
    /// their place in `env`: the first 128 as bits, no allocation.
    met: u128,
    /// Those further on (a command that changes more than 128 variables).
    met_further: Vec<bool>,
}

impl<'s> Merge<'s> {
    fn new(spec: &'s Spec) -> Merge<'s> {
        let env = &spec.env;
        Merge {
            env,
            only: spec
                .spawn
                .inherit_only()
                .map(|names| names.iter().map(|n| sys::env_name_key(n)).collect()),
            folded: cfg!(windows).then(|| {
                env.iter()
                    .map(|(k, v)| (sys::env_name_key(k), (k, v)))
                    .collect()
            }),
            met: 0,
            met_further: Vec::new(),
        }
    }

    /// What the child gets of the inherited variable `name`.
    fn inherited(&mut self, name: &OsStr) -> Inherited<'s> {
        if let Some(names) = &self.only {
            if !names.contains(&*sys::env_name_key(name)) {
                return Inherited::Left;
            }
        }
        let change = match &self.folded {
            Some(map) => map.get(&*sys::env_name_key(name)).copied(),
            None => self.env.get_key_value(name),
        };
        let Some((key, change)) = change else {
            return Inherited::Kept;
        };
        // Its place in `env` (a change met is rare: this walk is short).
        let at = self
            .env
            .range::<OsStr, _>((Bound::Unbounded, Bound::Excluded(key.as_os_str())))
            .count();
        if at < 128 {
            self.met |= 1 << at;
        } else {
            self.met_further.resize(self.env.len(), false);
            self.met_further[at] = true;
        }
        match change {
            Some(value) => Inherited::Set(value),
            None => Inherited::Left,
        }
    }

    /// The variables set that met no inherited variable, by name.
    fn added(&self) -> impl Iterator<Item = (&'s OsStr, &'s OsStr)> + '_ {
        let met = |at: usize| match at {
            0..128 => self.met & (1 << at) != 0,
            _ => self.met_further.get(at).copied().unwrap_or(false),
        };
        self.env
            .iter()
            .enumerate()
            .filter(move |&(at, _)| !met(at))
            .filter_map(|(_, (k, v))| Some((k.as_os_str(), v.as_deref()?)))
    }
}

impl Spec {
    /// Whether the child gets this process's environment unchanged: no
    /// variable set or removed, not cleared, no `inherit_env` filter.
    fn env_unchanged(&self) -> bool {
        self.env.is_empty() && !self.env_clear && self.spawn.inherit_only().is_none()
    }

    /// The environment the child starts with, or `None` when it is this
    /// process's unchanged (see `sys::inherited_env`). Otherwise this
    /// process's (unless cleared), in its order, with this command's
    /// changes applied — a changed variable keeps its place, new ones
    /// follow (by name).
    ///
    /// Linear in the number of variables (one map lookup per inherited
    /// variable), so thousands of them cost what std's spawn costs.
    pub(crate) fn effective_env(&self) -> Option<Vec<(OsString, OsString)>> {
        if self.env_unchanged() {
            return None;
        }
        let mut merge = Merge::new(self);
        let mut vars = Vec::with_capacity(self.env.len() + 64);
        if !self.env_clear {
            for (k, v) in std::env::vars_os() {
                match merge.inherited(&k) {
                    Inherited::Kept => vars.push((k, v)),
                    Inherited::Left => {}
                    Inherited::Set(new) => vars.push((k, new.to_os_string())),
                }
            }
        }
        vars.extend(
            merge
                .added()
                .map(|(k, v)| (k.to_os_string(), v.to_os_string())),
        );
        Some(vars)
    }

    /// [`effective_env`](Self::effective_env) as the child's block, built
    /// straight from the inherited variables as a start reads them
    /// (`sys::derived_env`: under std's lock, or once the program opted
    /// in straight from `environ`, with no string per variable), or `None`
    /// when the environment is unchanged. A set value with a NUL byte is
    /// refused (`check_passable` refuses it first).
    #[cfg(unix)]
    fn changed_env(&self) -> Option<Result<sys::ChildEnv>> {
        use std::os::unix::ffi::OsStrExt;
        if self.env_unchanged() {
            return None;
        }
        let mut merge = Merge::new(self);
        let mut refused = false;
        let mut block = sys::derived_env(self.env_clear, |name, value, block| {
            match merge.inherited(OsStr::from_bytes(name)) {
                Inherited::Kept => block.push_unchecked(name, value),
                Inherited::Left => {}
                Inherited::Set(new) => refused |= !block.push(name, new.as_bytes()),
            }
        });
        for (k, v) in merge.added() {
            refused |= !block.push(k.as_bytes(), v.as_bytes());
        }
        Some(match refused {
            true => Err(nul_in_env()),
            false => Ok(sys::ChildEnv::Exactly(block.finish())),
        })
    }

    /// The program a start executes, resolved on the `PATH` its child
    /// gets (see `SpawnOptions::resolve_to_start`), and the child's
    /// environment, read once: this process's copy, or this command's
    /// changes applied to it. `program` names it in errors.
    pub(crate) fn resolve_with_env(&self, program: &str) -> Result<(PathBuf, sys::ChildEnv)> {
        #[cfg(unix)]
        if let Some(env) = self.changed_env() {
            let env = env?;
            let resolved = self
                .spawn
                .resolve_to_start_in(&self.program, program, &env)?;
            return Ok((resolved, env));
        }
        #[cfg(not(unix))]
        if let Some(env) = self.effective_env() {
            let resolved = (self.spawn).resolve(&self.program, program, Some(&env[..]), true)?;
            return Ok((resolved, sys::exact_env(&env[..]).ok_or_else(nul_in_env)?));
        }
        // Unchanged: this process's copy (`sys::inherited_env`), made
        // with the search.
        self.spawn.resolve_to_start(&self.program, program)
    }
}

fn nul_in_env() -> Error {
    Error::InvalidInput("an environment variable contains a NUL byte".into())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use crate::Command;

    /// `effective_env`'s list and the block a start builds (`changed_env`)
    /// as `NAME=value` entries: the same, whatever the changes.
    fn both(c: &Command) -> Vec<Vec<u8>> {
        let list: Vec<Vec<u8>> = c
            .spec
            .effective_env()
            .expect("changed")
            .iter()
            .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
            .collect();
        let block = c.spec.changed_env().expect("changed").expect("no NUL");
        let entries: Vec<Vec<u8>> = block.block().entries().map(<[u8]>::to_vec).collect();
        assert_eq!(list, entries);
        list
    }

    fn ours() -> Vec<Vec<u8>> {
        std::env::vars_os()
            .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
            .collect()
    }

    #[test]
    fn more_than_128_changes_meet_inherited_variables_in_place() {
        // 200 new variables sort before `PATH`, whose override is the
        // 201st change: it is met in place, not added again.
        let mut c = Command::new("x").env("PATH", "/over");
        for i in 0..200 {
            c = c.env(format!("A{i:03}"), i.to_string());
        }
        let got = both(&c);
        let mut want: Vec<Vec<u8>> = ours()
            .into_iter()
            .map(|e| match e.starts_with(b"PATH=") {
                true => b"PATH=/over".to_vec(),
                false => e,
            })
            .collect();
        want.extend((0..200).map(|i| format!("A{i:03}={i}").into_bytes()));
        assert_eq!(got, want);
    }

    #[test]
    fn removals_an_allow_list_and_a_clear_apply_alike() {
        let got = both(
            &Command::new("x")
                .env_remove("PATH")
                .env_remove("PKIT_ABSENT"),
        );
        let want: Vec<Vec<u8>> = ours()
            .into_iter()
            .filter(|e| !e.starts_with(b"PATH="))
            .collect();
        assert_eq!(got, want);

        let got = both(&Command::new("x").inherit_env(["PATH"]).env("N", "1"));
        let want: Vec<Vec<u8>> = ours()
            .into_iter()
            .filter(|e| e.starts_with(b"PATH="))
            .chain([b"N=1".to_vec()])
            .collect();
        assert_eq!(got, want);

        let got = both(&Command::new("x").env_clear().env("B", "").env("A", "1"));
        assert_eq!(got, [b"A=1".to_vec(), b"B=".to_vec()]);
    }

    #[test]
    fn a_nul_byte_in_a_value_set_is_refused() {
        let c = Command::new("x").env("A", "1\0 1");
        assert!(c.spec.changed_env().expect("changed").is_err());
        assert!(Command::new("x").spec.changed_env().is_none());
    }
}
