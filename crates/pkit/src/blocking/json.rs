//! The `json` feature's verbs, blocking.

use std::fmt;

use serde::de::DeserializeOwned;

use super::{block_on, block_on_made, enter, enter_for_drop, Verbs};
use crate::error::Result;

impl Verbs<'_> {
    /// [`Command::output_json`](crate::Command::output_json), blocking
    /// (cargo feature `json`).
    ///
    /// ```
    /// let v: Vec<u32> = pkit::Command::new("echo").arg("[1, 2]").blocking().output_json()?;
    /// assert_eq!(v, [1, 2]);
    /// # Ok::<(), pkit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`Command::output_json`](crate::Command::output_json).
    #[track_caller]
    pub fn output_json<T: DeserializeOwned>(self) -> Result<T> {
        block_on("output_json", self.cmd.output_json())
    }

    /// [`Command::json_lines`](crate::Command::json_lines), blocking: the
    /// values as an [`Iterator`] (cargo feature `json`).
    ///
    /// ```
    /// let ns: Vec<u32> = pkit::Command::new("printf")
    ///     .arg("1\n2\n")
    ///     .blocking()
    ///     .json_lines::<u32>()?
    ///     .collect::<pkit::Result<_>>()?;
    /// assert_eq!(ns, [1, 2]);
    /// # Ok::<(), pkit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`Command::json_lines`](crate::Command::json_lines).
    #[track_caller]
    pub fn json_lines<T: DeserializeOwned>(self) -> Result<JsonLines<T>> {
        let inner = enter("json_lines", || self.cmd.json_lines())??;
        Ok(JsonLines { inner: Some(inner) })
    }
}

/// [`crate::JsonLines`] as an [`Iterator`]: each `next` blocks until a
/// value (or an error) comes; `None` once the run is over. Dropping it ends
/// the run.
#[must_use = "a JsonLines does nothing unless read, and dropping it ends the run"]
pub struct JsonLines<T> {
    inner: Option<crate::JsonLines<T>>,
}

impl<T> JsonLines<T> {
    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.inner.as_ref().expect("present until drop").pid()
    }
}

impl<T: DeserializeOwned> Iterator for JsonLines<T> {
    type Item = Result<T>;

    #[track_caller]
    fn next(&mut self) -> Option<Result<T>> {
        let inner = self.inner.as_mut()?;
        block_on_made("JsonLines::next", inner.next())
    }
}

impl<T> Drop for JsonLines<T> {
    fn drop(&mut self) {
        enter_for_drop(self.inner.take());
    }
}

impl<T> fmt::Debug for JsonLines<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::JsonLines")
            .finish_non_exhaustive()
    }
}
