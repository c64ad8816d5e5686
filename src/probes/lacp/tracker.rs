//! The 802.3ad state of bond slaves, from rtnetlink link messages: a slave whose actor port
//! stops collecting or distributing is one LACP event, what upstream's kprobe on the bonding
//! driver's `ad_disable_collecting_distributing` counts.

use std::collections::HashMap;

use crate::probes::common::rtnetlink::message::{parse_datagram, LinkMessage, Message};

/// `IFLA_BOND_MODE` of 802.3ad (dynamic link aggregation).
pub const BOND_MODE_8023AD: u8 = 4;
/// LACP_STATE_COLLECTING | LACP_STATE_DISTRIBUTING of the actor port state.
pub const COLLECTING_DISTRIBUTING: u8 = 0x10 | 0x20;

/// A slave's port that stopped collecting/distributing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LacpChange {
    pub bond: String,
    pub slave: String,
    pub actor_before: u8,
    pub actor_now: u8,
    pub partner_now: Option<u16>,
}

#[derive(Debug, Clone)]
struct Slave {
    master: Option<u32>,
    actor: u8,
}

/// What the link messages said so far.
#[derive(Debug, Default)]
pub struct LacpTracker {
    /// ifindex → (name, mode) of every bond.
    bonds: HashMap<i32, (String, Option<u8>)>,
    /// ifindex → the last 802.3ad state of a bond slave.
    slaves: HashMap<i32, Slave>,
    pub malformed_total: u64,
}

impl LacpTracker {
    /// 802.3ad bonds known now.
    pub fn lacp_bonds(&self) -> usize {
        self.bonds
            .values()
            .filter(|(_, mode)| *mode == Some(BOND_MODE_8023AD))
            .count()
    }

    /// Feeds one datagram; returns the ports that stopped collecting/distributing.
    pub fn feed(&mut self, datagram: &[u8]) -> Vec<LacpChange> {
        let mut changes = Vec::new();
        for message in parse_datagram(datagram) {
            match message {
                Ok(Message::Link(link)) => changes.extend(self.link(&link)),
                Ok(_) => {}
                Err(reason) => {
                    self.malformed_total += 1;
                    tracing::warn!(probe = "lacp", %reason, "rtnetlink message skipped");
                }
            }
        }
        changes
    }

    /// One link message. A slave seen for the first time is only remembered (the state at
    /// start or at enslaving is no event).
    pub fn link(&mut self, link: &LinkMessage) -> Option<LacpChange> {
        if link.deleted {
            self.bonds.remove(&link.index);
            self.slaves.remove(&link.index);
            return None;
        }
        if link.info.kind == "bond" {
            self.bonds
                .insert(link.index, (link.ifname.clone(), link.info.bond_mode));
        }
        // The bonding driver sends the actor state only for slaves of 802.3ad bonds.
        let Some(actor) = link
            .info
            .bond_slave
            .as_ref()
            .and_then(|s| s.actor_oper_port_state)
        else {
            self.slaves.remove(&link.index);
            return None;
        };
        let before = self.slaves.insert(
            link.index,
            Slave {
                master: link.master,
                actor,
            },
        )?;
        let was_up = before.actor & COLLECTING_DISTRIBUTING == COLLECTING_DISTRIBUTING;
        let is_up = actor & COLLECTING_DISTRIBUTING == COLLECTING_DISTRIBUTING;
        if !was_up || is_up || before.master != link.master {
            return None;
        }
        let bond = link
            .master
            .and_then(|m| self.bonds.get(&(m as i32)))
            .map(|(name, _)| name.clone())
            .unwrap_or_default();
        Some(LacpChange {
            bond,
            slave: link.ifname.clone(),
            actor_before: before.actor,
            actor_now: actor,
            partner_now: link
                .info
                .bond_slave
                .as_ref()
                .and_then(|s| s.partner_oper_port_state),
        })
    }
}
