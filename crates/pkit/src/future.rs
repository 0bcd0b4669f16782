//! [`BoxFuture`]: the boxed future of pkit's traits ([`Runner`](crate::Runner)
//! and the private group handle of a started process). A leaf: it names
//! nothing else of pkit, so any layer may use it.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future, as returned by [`Runner::output`](crate::Runner::output).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
