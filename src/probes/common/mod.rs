//! Helpers shared by the procfs/cgroupfs collectors, one job per file: reading a source file with
//! errors that name the probe and the path ([`file`]), `<key> <value>` files ([`keyed_file`]),
//! include/exclude name lists from config ([`name_filter`]), logging a skipped source once while
//! its problem lasts ([`warn_once`]), the network namespaces the net probes read ([`netns`]) and
//! the BPF ring buffer the event probes drain ([`event_ring`]), kernel addresses resolved
//! from kallsyms for their stacks ([`ksyms`]) and the doubling backoff of event documents
//! ([`backoff`]), classic tracepoint records decoded with their tracefs format
//! ([`tracepoint_format`]), the rtnetlink link socket and messages ([`rtnetlink`]), and the
//! capture step of the AutoTracing flame-graph triggers ([`autocapture`]).

pub mod autocapture;
pub mod backoff;
pub mod event_ring;
pub mod file;
pub mod keyed_file;
pub mod ksyms;
pub mod name_filter;
pub mod netns;
pub mod rtnetlink;
pub mod tcp_names;
pub mod tracepoint_format;
pub mod warn_once;
pub mod watched_cgroups;
