//! One profile window: symbolised stacks, each with how often it was seen and how much time it
//! stands for, and whose they were (process, container).

use serde::{Deserialize, Serialize};

/// What a profile measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileKind {
    /// On-CPU: perf_event cpu-clock samples; a sample's value is one sampling period.
    Cpu,
    /// Off-CPU: time blocked between switch-out and the next switch-in, at the switch-out stack.
    #[serde(rename = "offcpu")]
    OffCpu,
}

impl ProfileKind {
    /// The name used in URLs, file names and pprof sample types (`cpu`, `offcpu`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileKind::Cpu => "cpu",
            ProfileKind::OffCpu => "offcpu",
        }
    }
}

/// One symbolised frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Frame {
    /// Function name, demangled; `[unknown]` when the address resolved to nothing.
    pub function: String,
    /// The binary or shared object the address is in (path as the process sees it), or
    /// `[kernel]` / the kernel module name for kernel frames; `None` when not even that is known.
    pub module: Option<String>,
    /// A kernel frame (shown with a `_[k]` suffix in folded output, as perf does).
    pub kernel: bool,
    /// The instruction address sampled (user: virtual address in the process).
    pub address: u64,
}

/// Whose stack it was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SampleLabels {
    pub pid: u32,
    pub comm: String,
    /// Container id (as `/containers/json` names it) when the task was in a known container.
    pub container_id: Option<String>,
    pub container_name: Option<String>,
    pub pod: Option<String>,
}

/// One distinct stack of one task, aggregated over the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackSample {
    /// Leaf first (the sampled instruction), root last: kernel frames, then user frames.
    pub frames: Vec<Frame>,
    pub labels: SampleLabels,
    /// Samples (on-CPU) or blocking episodes (off-CPU) with this stack.
    pub count: u64,
    /// Time this stack stands for: count × period (on-CPU) or the summed blocked time (off-CPU).
    pub value_ns: u64,
}

/// A profile window of the host, a container or a process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub kind: ProfileKind,
    /// Window start, Unix time in nanoseconds.
    pub start_unix_ns: u64,
    pub duration_ns: u64,
    /// Sampling frequency (on-CPU); 0 for off-CPU.
    pub frequency_hz: u32,
    /// The node's hostname.
    pub host: String,
    pub samples: Vec<StackSample>,
}

impl Profile {
    /// Nanoseconds one on-CPU sample stands for (1e9 / frequency); 0 for off-CPU.
    pub fn period_ns(&self) -> u64 {
        match (self.kind, self.frequency_hz) {
            (ProfileKind::Cpu, hz) if hz > 0 => 1_000_000_000 / u64::from(hz),
            _ => 0,
        }
    }

    /// Total time the profile stands for (sum of every sample's value).
    pub fn total_ns(&self) -> u64 {
        self.samples.iter().map(|s| s.value_ns).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_follows_the_frequency_and_off_cpu_has_none() {
        let mut p = Profile {
            kind: ProfileKind::Cpu,
            start_unix_ns: 0,
            duration_ns: 1_000_000_000,
            frequency_hz: 99,
            host: "h".into(),
            samples: Vec::new(),
        };
        assert_eq!(p.period_ns(), 10_101_010);
        p.kind = ProfileKind::OffCpu;
        assert_eq!(p.period_ns(), 0);
        assert_eq!(ProfileKind::OffCpu.as_str(), "offcpu");
    }
}
