//! The kernel side's records, laid out as iotracing.bpf.c declares them (`repr(C)`, read from
//! its maps as plain bytes).

pub use crate::probes::common::event_ring::c_string;

/// `struct file_key` of iotracing.bpf.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub tgid: u32,
    /// Kernel dev_t: major << 20 | minor.
    pub dev: u32,
    pub ino: u64,
}

impl FileKey {
    pub fn major(&self) -> u32 {
        self.dev >> 20
    }
    pub fn minor(&self) -> u32 {
        self.dev & 0xfffff
    }
}

/// `struct file_stats` of iotracing.bpf.c.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FileCounters {
    pub fs_read_bytes: u64,
    pub fs_write_bytes: u64,
    pub disk_read_bytes: u64,
    pub disk_write_bytes: u64,
    pub q2c_sum_ns: u64,
    pub q2c_max_ns: u64,
    pub d2c_sum_ns: u64,
    pub d2c_max_ns: u64,
    pub requests: u64,
    pub cgroup_id: u64,
    pub is_direct: u32,
    pub pad: u32,
    pub comm: [u8; 16],
    pub name: [u8; 64],
}

const STACK_DEPTH: usize = 32;

/// `struct blocked` of iotracing.bpf.c: a task asleep in io_schedule now.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockedRecord {
    pub since_ns: u64,
    pub cpu: u32,
    pub stack_bytes: u32,
    pub stack: [u64; STACK_DEPTH],
}

/// `struct stall` of iotracing.bpf.c: a thread's longest io_schedule sleep of the window.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StallRecord {
    pub latency_ns: u64,
    pub count: u64,
    pub cgroup_id: u64,
    pub tgid: u32,
    pub cpu: u32,
    pub stack_bytes: u32,
    pub pad: u32,
    pub comm: [u8; 16],
    pub stack: [u64; STACK_DEPTH],
}

// SAFETY: plain `repr(C)` integers and byte arrays, any bit pattern is valid.
unsafe impl aya::Pod for FileKey {}
unsafe impl aya::Pod for FileCounters {}
unsafe impl aya::Pod for BlockedRecord {}
unsafe impl aya::Pod for StallRecord {}

/// The frames `bpf_get_stack` wrote (`stack_bytes` of them, as bytes).
pub fn frames(stack: &[u64], stack_bytes: u32) -> &[u64] {
    let n = (stack_bytes as usize / 8).min(stack.len());
    &stack[..n]
}
