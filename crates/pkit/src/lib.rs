//! pkit: kernel-backed, no-orphan child-process management.
#![allow(dead_code)]
mod sys;
pub use sys::{host_containment, HostContainment, Mechanism, MechanismChoice, Placement};
