//! The `RTM_GETQDISC` dump on the wire: the request, and the framing of the reply's netlink
//! messages up to `NLMSG_DONE` ([`DumpParser`]).

use std::io;

use super::message::{align4, parse_qdisc, u16_at, u32_at, Qdisc, TCMSG_LEN};

/// `struct nlmsghdr`: len u32, type u16, flags u16, seq u32, pid u32.
const NLMSG_HDRLEN: usize = 16;

const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const RTM_NEWQDISC: u16 = 36;
const RTM_GETQDISC: u16 = 38;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 0x10;

/// The decoded reply of one dump.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dump {
    pub qdiscs: Vec<Qdisc>,
    /// Messages that were framed correctly but could not be decoded (`message <n>: <reason>`);
    /// the other messages are kept.
    pub skipped: Vec<String>,
}

/// Decodes the datagrams of a dump reply in order ([`DumpParser::feed`]) until `NLMSG_DONE`.
#[derive(Debug)]
pub struct DumpParser {
    seq: u32,
    done: bool,
    interrupted: bool,
    messages: usize,
    dump: Dump,
}

impl DumpParser {
    /// A parser for the reply to the request with sequence number `seq`.
    pub fn new(seq: u32) -> Self {
        Self {
            seq,
            done: false,
            interrupted: false,
            messages: 0,
            dump: Dump::default(),
        }
    }

    /// Decodes one received datagram; true once `NLMSG_DONE` was seen. Broken framing, a kernel
    /// error, a foreign sequence number or an unexpected message type fail the whole dump; a
    /// qdisc message whose content cannot be decoded is skipped and noted in [`Dump::skipped`].
    pub fn feed(&mut self, mut buf: &[u8]) -> Result<bool, String> {
        while !buf.is_empty() {
            if self.done {
                return Err(format!("{} bytes after NLMSG_DONE", buf.len()));
            }
            let (Some(len), Some(kind), Some(flags), Some(seq)) = (
                u32_at(buf, 0),
                u16_at(buf, 4),
                u16_at(buf, 6),
                u32_at(buf, 8),
            ) else {
                return Err(format!(
                    "truncated netlink header ({} bytes left)",
                    buf.len()
                ));
            };
            let len = len as usize;
            if len < NLMSG_HDRLEN || len > buf.len() {
                return Err(format!(
                    "netlink message length {len} out of bounds ({} bytes left)",
                    buf.len()
                ));
            }
            if seq != self.seq {
                return Err(format!(
                    "netlink message with sequence number {seq}, want {}",
                    self.seq
                ));
            }
            self.messages += 1;
            self.interrupted |= flags & NLM_F_DUMP_INTR != 0;
            let payload = &buf[NLMSG_HDRLEN..len];
            match kind {
                RTM_NEWQDISC => match parse_qdisc(payload) {
                    Ok(qdisc) => self.dump.qdiscs.push(qdisc),
                    Err(reason) => self
                        .dump
                        .skipped
                        .push(format!("message {}: {reason}", self.messages)),
                },
                NLMSG_DONE => {
                    // With NLM_F_MULTI the kernel puts the dump's error code here.
                    if let Some(code) = u32_at(payload, 0).map(|c| c as i32) {
                        if code < 0 {
                            return Err(format!(
                                "dump failed: {}",
                                io::Error::from_raw_os_error(-code)
                            ));
                        }
                    }
                    self.done = true;
                }
                NLMSG_ERROR => match u32_at(payload, 0).map(|c| c as i32) {
                    Some(0) => {} // an acknowledgement
                    Some(code) => {
                        return Err(format!(
                            "kernel error: {}",
                            io::Error::from_raw_os_error(code.saturating_neg())
                        ))
                    }
                    None => return Err("truncated NLMSG_ERROR".to_string()),
                },
                NLMSG_NOOP => {}
                NLMSG_OVERRUN => return Err("NLMSG_OVERRUN: data lost".to_string()),
                other => return Err(format!("unexpected netlink message type {other}")),
            }
            buf = &buf[align4(len).min(buf.len())..];
        }
        Ok(self.done)
    }

    /// The kernel flagged the dump inconsistent (`NLM_F_DUMP_INTR`): the tables changed while
    /// it was being dumped.
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// The decoded dump; an error unless `NLMSG_DONE` was seen.
    pub fn finish(self) -> Result<Dump, String> {
        if !self.done {
            return Err(format!(
                "reply ended after {} messages without NLMSG_DONE",
                self.messages
            ));
        }
        Ok(self.dump)
    }
}

/// The `RTM_GETQDISC` dump request with sequence number `seq`.
pub fn dump_request(seq: u32) -> Vec<u8> {
    let len = (NLMSG_HDRLEN + TCMSG_LEN) as u32;
    let mut req = Vec::with_capacity(NLMSG_HDRLEN + TCMSG_LEN);
    req.extend_from_slice(&len.to_ne_bytes());
    req.extend_from_slice(&RTM_GETQDISC.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&seq.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    req.extend_from_slice(&[0u8; TCMSG_LEN]); // AF_UNSPEC, every device
    req
}
