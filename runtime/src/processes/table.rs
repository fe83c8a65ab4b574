//! The master's side of the resource table: who uses which object, and
//! deleting the objects nobody uses any more. The client side (what
//! processes call) is [`resources`](super::resources).

use std::collections::{BTreeMap, BTreeSet};

use super::control::WireInherit;
use super::resources::{ResourceId, ResourceInfo, ResourceKind};
use crate::os::sem;
use crate::segment;

struct Entry {
    info: ResourceInfo,
    users: BTreeSet<u64>,
}

/// The master's table.
#[derive(Default)]
pub(crate) struct Table {
    next: u64,
    entries: BTreeMap<u64, Entry>,
}

impl Table {
    pub(crate) fn manage(&mut self, kind: ResourceKind, name: String, user: u64) -> ResourceInfo {
        self.next += 1;
        let info = ResourceInfo {
            id: ResourceId(self.next),
            kind,
            name,
        };
        self.entries.insert(
            self.next,
            Entry {
                info: info.clone(),
                users: BTreeSet::from([user]),
            },
        );
        info
    }

    pub(crate) fn lookup(&mut self, id: u64, user: u64) -> Option<ResourceInfo> {
        let e = self.entries.get_mut(&id)?;
        e.users.insert(user);
        Some(e.info.clone())
    }

    /// Removes `user` from the users; deletes the object when none is
    /// left. `false` when there is no such resource.
    pub(crate) fn release(&mut self, id: u64, user: u64) -> bool {
        let Some(e) = self.entries.get_mut(&id) else {
            return false;
        };
        e.users.remove(&user);
        if e.users.is_empty() {
            if let Some(e) = self.entries.remove(&id) {
                destroy(&e.info);
            }
        }
        true
    }

    pub(crate) fn release_all(&mut self, user: u64) {
        let ids: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| e.users.contains(&user))
            .map(|(&i, _)| i)
            .collect();
        for id in ids {
            self.release(id, user);
        }
    }

    pub(crate) fn inherit(&mut self, from: u64, to: u64, which: &WireInherit) {
        for (id, e) in self.entries.iter_mut() {
            let yes = match which {
                WireInherit::All => e.users.contains(&from),
                WireInherit::Nothing => false,
                WireInherit::Only(ids) => ids.contains(id),
            };
            if yes {
                e.users.insert(to);
            }
        }
    }

    pub(crate) fn delete_all(&mut self) {
        for (_, e) in std::mem::take(&mut self.entries) {
            destroy(&e.info);
        }
    }
}

fn destroy(info: &ResourceInfo) {
    match info.kind {
        ResourceKind::Pool | ResourceKind::ShmBlock | ResourceKind::Camlbox => {
            let _ = segment::shm_unlink(&info.name);
        }
        ResourceKind::TempFile => {
            let _ = std::fs::remove_file(&info.name);
        }
        ResourceKind::Semaphore => {
            let _ = sem::unlink(&info.name);
        }
        ResourceKind::ForkPoint | ResourceKind::JoinPoint => {}
    }
}
