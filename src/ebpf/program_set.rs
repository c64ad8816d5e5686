//! A loaded object with its attached programs: attaching, watching the links, and reading each
//! program's cost. Sampling and map access are `impl` blocks in the modules below.

mod maps;
mod sampling;

use aya::programs::links::FdLink;
use aya::Ebpf;

use super::attach::{attach_one, link_id};
use super::load::kernel_btf;
use super::{Attachment, BpfError, ProgramCost};

use sampling::Sampling;
pub use sampling::{duty_slot, MAX_EVENT_DIVISOR, SAMPLING_MAP};

struct AttachedProgram {
    attachment: Attachment,
    link: Option<FdLink>,
    /// Kernel id of the link, to tell our link from whatever later reuses its fd number.
    link_id: u32,
}

/// A loaded BPF object with its attached programs. Dropping it detaches everything.
pub struct BpfProgramSet {
    probe: &'static str,
    bpf: Ebpf,
    attached: Vec<AttachedProgram>,
    /// Adaptive sampling in force; `None` when the object declares no knob.
    sampling: Option<Sampling>,
}

impl BpfProgramSet {
    /// Loads and attaches every program in `attachments`. A hook the kernel lacks yields
    /// `BpfError::Unsupported`, any other failure `BpfError::Attach`.
    pub fn attach(
        probe: &'static str,
        mut bpf: Ebpf,
        attachments: &[Attachment],
    ) -> Result<Self, BpfError> {
        let btf = kernel_btf(probe)?;
        let mut attached = Vec::with_capacity(attachments.len());
        for attachment in attachments {
            let link = attach_one(probe, &mut bpf, btf, attachment, true)?;
            let link_id = link_id(probe, attachment, &link)?;
            attached.push(AttachedProgram {
                attachment: *attachment,
                link: Some(link),
                link_id,
            });
        }
        let sampling = bpf.map(SAMPLING_MAP).map(|_| Sampling {
            divisor: 1,
            duty: 1,
            ticks: 0,
            paused: false,
        });
        Ok(Self {
            probe,
            bpf,
            attached,
            sampling,
        })
    }

    pub fn ebpf(&self) -> &Ebpf {
        &self.bpf
    }

    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.bpf
    }

    /// Kernel link ids, in attachment order (for tests and `ctl status`).
    pub fn link_ids(&self) -> Vec<u32> {
        self.attached.iter().map(|a| a.link_id).collect()
    }

    /// Re-attaches every program whose link is gone. Tracepoint links cannot be detached with
    /// `BPF_LINK_DETACH` (EOPNOTSUPP), so "gone" means the link fd was closed from outside (the
    /// kernel then releases the link) or no longer names our link. One syscall per link.
    /// Returns the programs that were re-attached.
    pub fn reattach_lost_links(&mut self) -> Result<Vec<&'static str>, BpfError> {
        // Detached on purpose by the duty cycle.
        if self.paused() {
            return Ok(Vec::new());
        }
        let health: Vec<LinkHealth> = self.attached.iter().map(link_health).collect();
        if health.iter().all(|h| *h == LinkHealth::Live) {
            return Ok(Vec::new());
        }
        let btf = kernel_btf(self.probe)?;
        let mut reattached = Vec::new();
        for (attached, health) in self.attached.iter_mut().zip(health) {
            match health {
                LinkHealth::Live => continue,
                // Our fd, but the link lost its program (detach-capable link types): close it.
                LinkHealth::Detached => drop(attached.link.take()),
                // The fd number no longer names our link (closed, maybe reused by another
                // file): closing it could close someone else's file, so forget it instead.
                LinkHealth::FdLost => std::mem::forget(attached.link.take()),
            }
            let link = attach_one(self.probe, &mut self.bpf, btf, &attached.attachment, false)?;
            attached.link_id = link_id(self.probe, &attached.attachment, &link)?;
            attached.link = Some(link);
            reattached.push(attached.attachment.program);
        }
        Ok(reattached)
    }

    /// Run count and run time of each attached program (zero unless bpf_stats is enabled); a
    /// program attached several times (one perf event per CPU) is counted once.
    pub fn costs(&self) -> Vec<ProgramCost> {
        let mut seen = std::collections::HashSet::new();
        self.attached
            .iter()
            .filter(|a| seen.insert(a.attachment.program))
            .filter_map(|a| {
                let program = self.bpf.program(a.attachment.program)?;
                let info = program.info().ok()?;
                Some(ProgramCost {
                    program: a.attachment.program.to_string(),
                    run_count: info.run_count(),
                    run_time: info.run_time(),
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkHealth {
    Live,
    Detached,
    FdLost,
}

/// One `BPF_OBJ_GET_INFO_BY_FD` on our link fd.
fn link_health(attached: &AttachedProgram) -> LinkHealth {
    let Some(link) = &attached.link else {
        return LinkHealth::FdLost;
    };
    match link.info() {
        Ok(info) if info.id() != attached.link_id => LinkHealth::FdLost,
        Ok(info) if info.program_id() == 0 => LinkHealth::Detached,
        Ok(_) => LinkHealth::Live,
        Err(_) => LinkHealth::FdLost,
    }
}
