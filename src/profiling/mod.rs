//! Profiles as data: what the profile probe produces and every output (folded, flame graph SVG,
//! pprof, upstream's flamedata, Pyroscope) consumes. A library: no actors, no BPF.

pub mod bus;
pub mod flamedata;
pub mod flamegraph;
pub mod folded;
pub mod format;
pub mod model;
pub mod pprof;
pub mod proto;
pub mod pyroscope;
pub mod recent;
pub mod summary;
#[cfg(test)]
mod tests;

pub use bus::ProfileBus;
pub use format::{encode, EncodeError, OutputFormat};
pub use model::{Frame, Profile, ProfileKind, SampleLabels, StackSample};
