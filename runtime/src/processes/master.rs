//! The master's side: the poll loop over the control sockets and pidfds,
//! the fork of itself for every worker, stored results and reaping.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::control::{
    self, Command, JoinMode, Reply, Request, WireError, WireInherit, WireOutcome,
};
use super::run::{set_master_tag, FIRST};
use super::table::Table;
use super::{worker, DefinitionInfo, Signal, DEF_MAGIC};
use crate::os::proc::{self, Ended, Forked, RawPid};
use crate::os::socket;
use crate::segment;

/// The master's life: serve the run's requests until the first process
/// (`parent`, the caller of [`run`]) has finished or died, kill and reap
/// the workers left, delete the resources left, report, and exit. Never
/// returns, and never runs the destructors of what it copied from the
/// caller.
pub(super) fn master_main(
    control: OwnedFd,
    end: OwnedFd,
    parent: RawPid,
    image: Vec<(usize, usize, bool)>,
    keep: usize,
) -> ! {
    let (me, ppid) = (proc::getpid(), proc::getppid());
    if ppid != parent {
        // The caller died before the master started.
        proc::exit_now(1);
    }
    set_master_tag(
        me as u64,
        segment::process_start_time(me as u32).unwrap_or(0),
    );
    let mut master = Master {
        pid: me,
        parent,
        end: Some(end),
        finishing: false,
        scratch: Vec::with_capacity(64 * 1024),
        live: BTreeSet::new(),
        spare: None,
        want_spare: false,
        next_id: FIRST,
        procs: BTreeMap::new(),
        retired: BTreeMap::new(),
        keep,
        table: Table::default(),
        released_defs: HashSet::new(),
        image,
    };
    let pidfd = proc::pidfd_open(parent);
    let id = master.insert_proc(0, &WireInherit::Nothing, 0, (parent, control, pidfd));
    debug_assert_eq!(id, FIRST);
    if let Some(p) = master.procs.get_mut(&FIRST) {
        p.child = false;
    }
    master.serve();
    let (killed, unjoined, started) = master.finish();
    if let Some(end) = master.end.take() {
        let report = Reply::Report {
            killed,
            unjoined,
            started,
        };
        if let Ok(frame) = control::encode(&report) {
            let _ = control::send_all(&end, &frame);
        }
    }
    // Without the destructors and `atexit` handlers copied from the caller.
    proc::exit_now(0)
}

struct Proc {
    def_id: u64,
    os_pid: RawPid,
    /// Whether the master forked it (every process but the first, which is
    /// the master's parent and is never waited for).
    child: bool,
    conn: Option<OwnedFd>,
    rbuf: Vec<u8>,
    pidfd: Option<OwnedFd>,
    reaped: bool,
    outcome: Option<WireOutcome>,
    joined: bool,
    discard: bool,
    waiters: Vec<(u64, Option<Instant>)>,
}

/// What the master keeps of a process that ended and was joined.
struct Retired {
    def_id: u64,
    discard: bool,
    cause: WireOutcome,
}

/// A pre-forked worker waiting for its definition and argument.
struct Spare {
    os_pid: RawPid,
    conn: OwnedFd,
    pidfd: Option<OwnedFd>,
}

impl Spare {
    fn kill_and_reap(self) {
        // Our own unreaped child: its pid is still ours.
        let _ = proc::kill(self.os_pid, proc::SIGKILL);
        let _ = proc::wait(self.os_pid, true);
    }
}

struct Master {
    pid: RawPid,
    /// The first process: the caller of `run`, the master's parent.
    parent: RawPid,
    /// The first process's end-of-run channel: its `Done`, then the report.
    end: Option<OwnedFd>,
    /// Set once the first process has finished: no process starts any more
    /// (a start request still in a dying worker's socket is refused).
    finishing: bool,
    /// The buffer requests are read into.
    scratch: Vec<u8>,
    /// Processes not reaped yet (those the loop watches).
    live: BTreeSet<u64>,
    spare: Option<Spare>,
    /// Whether definitions were started (then a spare is kept ready).
    want_spare: bool,
    next_id: u64,
    procs: BTreeMap<u64, Proc>,
    /// Processes that ended and were joined (or whose results are not
    /// kept): what `status` and `join` still say of them. At most `keep`;
    /// the oldest beyond that are forgotten.
    retired: BTreeMap<u64, Retired>,
    keep: usize,
    table: Table,
    released_defs: HashSet<u64>,
    /// File-backed mappings of this program: (start, end, executable).
    image: Vec<(usize, usize, bool)>,
}

pub(super) fn image_ranges() -> io::Result<Vec<(usize, usize, bool)>> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut out = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let path = f.nth(3).unwrap_or("");
        if !path.starts_with('/') {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            continue;
        };
        out.push((a, b, perms.contains('x')));
    }
    Ok(out)
}

fn ended_outcome(ended: Ended) -> WireOutcome {
    match ended {
        Ended::Exited(code) => WireOutcome::Exited(code),
        Ended::Signaled(sig) if Signal(sig).is_crash() => WireOutcome::Aborted(sig),
        Ended::Signaled(sig) => WireOutcome::Killed(sig),
    }
}

/// The outcome without the returned bytes (kept after a join, for
/// `status`).
fn cause_of(o: &WireOutcome) -> WireOutcome {
    match o {
        WireOutcome::Returned(_) => WireOutcome::Returned(Vec::new()),
        other => other.clone(),
    }
}

impl Master {
    fn in_image(&self, addr: usize, len: usize, exec: bool) -> bool {
        self.image
            .iter()
            .any(|&(a, b, x)| addr >= a && addr.saturating_add(len) <= b && (x || !exec))
    }

    /// The definition a start request names, if `addr` is the address of a
    /// `DefinitionInfo` in this program's image with id `id`.
    fn definition(&self, addr: u64, id: u64) -> Option<&'static DefinitionInfo> {
        let addr = addr as usize;
        let size = std::mem::size_of::<DefinitionInfo>();
        if !addr.is_multiple_of(std::mem::align_of::<DefinitionInfo>())
            || !self.in_image(addr, size, false)
        {
            return None;
        }
        // SAFETY: every process of the run is a fork of this master, so the
        // program image is mapped at the same addresses everywhere, and the
        // address names `size` aligned, mapped bytes of that image; the
        // requester (our own worker code) sends the address of a `static
        // DefinitionInfo`. Magic and id are checked before anything else is
        // used.
        let info = unsafe { &*std::ptr::with_exposed_provenance::<DefinitionInfo>(addr) };
        if info.magic != DEF_MAGIC || info.id != id || !self.in_image(info.entry as usize, 1, true)
        {
            return None;
        }
        Some(info)
    }

    /// Forks a child of the master; the child closes the master's
    /// descriptors and runs `child` with its end of a new control socket.
    /// Returns the child's pid and the master's end.
    fn fork_child(
        &mut self,
        child: impl FnOnce(OwnedFd, RawPid),
    ) -> Result<(RawPid, OwnedFd, Option<OwnedFd>), WireError> {
        let (mine, theirs) = control::socketpair().map_err(|e| WireError::Io(e.to_string()))?;
        // SAFETY: `run` checked that the master has one thread, and the
        // master starts none, so the child is a complete copy that may do
        // anything.
        let pid = match unsafe { proc::fork() } {
            Err(e) => return Err(WireError::Fork(e.raw_os_error().unwrap_or(0))),
            Ok(Forked::Parent(pid)) => pid,
            Ok(Forked::Child) => {
                // The child: close the master's ends of every other
                // worker's socket and pidfd (taken out of the copied tables
                // and dropped). The tables themselves are forgotten rather
                // than dropped: freeing them would only write to
                // copy-on-write pages.
                drop(mine);
                drop(self.end.take());
                drop(self.spare.take());
                for id in &self.live {
                    if let Some(p) = self.procs.get_mut(id) {
                        drop(p.conn.take());
                        drop(p.pidfd.take());
                    }
                }
                std::mem::forget(std::mem::take(&mut self.procs));
                child(theirs, self.pid);
                // `child` never returns; should it, end the child here.
                proc::exit_now(127);
            }
        };
        drop(theirs);
        Ok((pid, mine, proc::pidfd_open(pid)))
    }

    fn insert_proc(
        &mut self,
        starter: u64,
        inherit: &WireInherit,
        def_id: u64,
        (os_pid, conn, pidfd): (RawPid, OwnedFd, Option<OwnedFd>),
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.live.insert(id);
        self.procs.insert(
            id,
            Proc {
                def_id,
                os_pid,
                child: true,
                conn: Some(conn),
                rbuf: Vec::new(),
                pidfd,
                reaped: false,
                outcome: None,
                joined: false,
                discard: self.released_defs.contains(&def_id),
                waiters: Vec::new(),
            },
        );
        if starter != 0 {
            self.table.inherit(starter, id, inherit);
        }
        id
    }

    /// Forks a spare worker: a copy of the master that waits for the
    /// definition and argument it will run. Forking ahead of the start
    /// request takes the fork off the path from `start` to the result.
    fn fork_spare(&mut self) -> Result<Spare, WireError> {
        let (os_pid, conn, pidfd) = self.fork_child(|fd, master| worker::spare_main(fd, master))?;
        Ok(Spare {
            os_pid,
            conn,
            pidfd,
        })
    }

    /// Starts a process of a definition in the spare worker (forking one
    /// when there is none).
    fn start_def(
        &mut self,
        starter: u64,
        inherit: &WireInherit,
        info: &'static DefinitionInfo,
        arg: Vec<u8>,
    ) -> Result<u64, WireError> {
        self.want_spare = true;
        let id = self.next_id;
        let cmd = Command::Run {
            id,
            def_addr: std::ptr::from_ref(info).expose_provenance() as u64,
            def_id: info.id,
            arg,
        };
        let frame = control::encode(&cmd).map_err(|e| WireError::Io(e.to_string()))?;
        for _ in 0..2 {
            let spare = match self.spare.take() {
                Some(s) => s,
                None => self.fork_spare()?,
            };
            if control::send_all(&spare.conn, &frame).is_ok() {
                let child = (spare.os_pid, spare.conn, spare.pidfd);
                return Ok(self.insert_proc(starter, inherit, info.id, child));
            }
            // The spare is gone (killed from outside): reap it, try anew.
            spare.kill_and_reap();
        }
        Err(WireError::Io("cannot start a worker".into()))
    }

    /// Whether the first process has finished (its `Done` arrived) or died.
    fn first_over(&self) -> bool {
        self.procs
            .get(&FIRST)
            .is_none_or(|p| p.reaped || p.outcome.is_some())
    }

    fn serve(&mut self) {
        #[derive(Clone, Copy)]
        enum Src {
            Conn,
            Pidfd,
            End,
        }
        let mut fds: Vec<RawFd> = Vec::new();
        let mut who: Vec<(u64, Src)> = Vec::new();
        let mut ready: Vec<bool> = Vec::new();
        loop {
            if self.first_over() {
                break;
            }
            fds.clear();
            who.clear();
            let mut no_pidfd = false;
            let mut deadline: Option<Instant> = None;
            if let Some(e) = &self.end {
                fds.push(e.as_raw_fd());
                who.push((FIRST, Src::End));
            }
            for &id in &self.live {
                let Some(p) = self.procs.get(&id) else {
                    continue;
                };
                if let Some(c) = &p.conn {
                    fds.push(c.as_raw_fd());
                    who.push((id, Src::Conn));
                }
                if let Some(pf) = &p.pidfd {
                    fds.push(pf.as_raw_fd());
                    who.push((id, Src::Pidfd));
                } else if !p.reaped {
                    no_pidfd = true;
                }
                for &(_, d) in &p.waiters {
                    if let Some(d) = d {
                        deadline = Some(deadline.map_or(d, |x: Instant| x.min(d)));
                    }
                }
            }
            if self.want_spare && self.spare.is_none() {
                // Fork the next spare when nothing else is waiting.
                let n = socket::poll_readable(&fds, Some(Duration::ZERO), &mut ready);
                if matches!(n, Ok(0)) {
                    self.spare = self.fork_spare().ok();
                    if self.spare.is_none() {
                        self.want_spare = false;
                    }
                }
            }
            let mut timeout = deadline
                .map(|d| d.saturating_duration_since(Instant::now()) + Duration::from_millis(1));
            if no_pidfd {
                // Without pidfds, look for ended children every 20 ms.
                let slice = Duration::from_millis(20);
                timeout = Some(timeout.map_or(slice, |t| t.min(slice)));
            }
            let n = socket::poll_readable(&fds, timeout, &mut ready).unwrap_or(0);
            if n > 0 {
                for (i, &r) in ready.iter().enumerate() {
                    if !r {
                        continue;
                    }
                    match who[i] {
                        (id, Src::Pidfd) => self.reap(id, true),
                        (id, Src::Conn) => self.read_conn(id),
                        (_, Src::End) => self.read_end(),
                    }
                }
            }
            if no_pidfd {
                let ids: Vec<u64> = self
                    .live
                    .iter()
                    .copied()
                    .filter(|i| self.procs.get(i).is_some_and(|p| p.pidfd.is_none()))
                    .collect();
                for id in ids {
                    self.reap(id, false);
                }
            }
            self.expire(Instant::now());
        }
    }

    /// Reads the first process's end-of-run message: its outcome, or the
    /// end of the channel when it died.
    fn read_end(&mut self) {
        let Some(end) = &self.end else { return };
        let msg = control::recv_frame(end).and_then(|b| control::decode::<Request>(&b));
        match msg {
            Ok(Request::Done(outcome)) => {
                // What it sent on its control socket before comes first.
                self.read_conn(FIRST);
                self.handle(FIRST, Request::Done(outcome));
            }
            _ => {
                // The caller died: nobody waits for the report.
                self.end = None;
                self.reap(FIRST, true);
            }
        }
    }

    /// Reads what a worker sent and handles every complete request (also
    /// those that arrived just before the worker closed its end).
    ///
    /// Bytes are read into one buffer the master reuses for every worker
    /// (each page the master writes after a fork costs a copy-on-write
    /// fault); only a partial message is kept with its worker.
    fn read_conn(&mut self, id: u64) {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let open = {
            let Some(p) = self.procs.get_mut(&id) else {
                self.scratch = buf;
                return;
            };
            let Some(c) = &p.conn else {
                self.scratch = buf;
                return;
            };
            buf.append(&mut p.rbuf);
            matches!(control::recv_available(c, &mut buf), Ok(true))
        };
        let mut broken = false;
        loop {
            match control::take_message::<Request>(&mut buf) {
                Ok(Some(req)) => self.handle(id, req),
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        if let Some(p) = self.procs.get_mut(&id) {
            if broken || !open {
                // Closed, or a broken stream: stop listening to it.
                p.conn = None;
            } else if !buf.is_empty() {
                p.rbuf.extend_from_slice(&buf);
            }
        }
        buf.clear();
        if buf.capacity() > 1 << 20 {
            buf = Vec::new();
        }
        self.scratch = buf;
    }

    fn reply(&mut self, to: u64, reply: &Reply) {
        let Some(p) = self.procs.get_mut(&to) else {
            return;
        };
        let Some(c) = &p.conn else { return };
        let ok = control::encode(reply)
            .and_then(|f| control::send_all(c, &f))
            .is_ok();
        if !ok {
            p.conn = None;
        }
    }

    fn handle(&mut self, from: u64, req: Request) {
        match req {
            Request::Start {
                def_addr,
                def_id,
                arg,
                inherit,
            } => {
                let r = match self.definition(def_addr, def_id) {
                    _ if self.finishing => Reply::Err(WireError::RunOver),
                    None => Reply::Err(WireError::BadDefinition),
                    Some(info) => match self.start_def(from, &inherit, info, arg) {
                        Ok(id) => Reply::Started(id),
                        Err(e) => Reply::Err(e),
                    },
                };
                self.reply(from, &r);
            }
            Request::Join { pid, def_id, mode } => {
                let r = self.join(from, pid, def_id, mode);
                if let Some(r) = r {
                    self.reply(from, &r);
                }
            }
            Request::Status { pid } => {
                let r = match (self.procs.get(&pid), self.retired.get(&pid)) {
                    (Some(p), _) => Reply::Status(p.outcome.as_ref().map(cause_of)),
                    (None, Some(r)) => Reply::Status(Some(r.cause.clone())),
                    (None, None) if self.was_started(pid) => Reply::Err(WireError::Forgotten(pid)),
                    (None, None) => Reply::Err(WireError::NoSuchProcess(pid)),
                };
                self.reply(from, &r);
            }
            Request::Kill { pid, signal } => {
                let r = match self.procs.get(&pid) {
                    Some(p) => {
                        if !p.reaped {
                            signal_proc(p, signal);
                        }
                        Reply::Ok
                    }
                    // Ended long ago: nothing to do.
                    None if self.was_started(pid) => Reply::Ok,
                    None => Reply::Err(WireError::NoSuchProcess(pid)),
                };
                self.reply(from, &r);
            }
            Request::ReleaseJoinPoint { def_id } => {
                self.released_defs.insert(def_id);
                let mut notify = Vec::new();
                for (&id, p) in self.procs.iter_mut() {
                    if p.def_id == def_id {
                        p.discard = true;
                        if let Some(o) = &p.outcome {
                            p.outcome = Some(cause_of(o));
                        }
                        notify.extend(p.waiters.drain(..).map(|(w, _)| (w, id)));
                    }
                }
                let ids: Vec<u64> = notify.iter().map(|&(_, id)| id).collect();
                for (w, id) in notify {
                    self.reply(w, &Reply::Err(WireError::JoinPointReleased(id)));
                }
                for id in ids {
                    self.retire(id);
                }
                self.reply(from, &Reply::Ok);
            }
            Request::Manage { kind, name } => {
                let info = self.table.manage(kind, name, from);
                self.reply(from, &Reply::Resource(info));
            }
            Request::Lookup { id } => {
                let r = match self.table.lookup(id, from) {
                    Some(info) => Reply::Resource(info),
                    None => Reply::Err(WireError::NoSuchResource(id)),
                };
                self.reply(from, &r);
            }
            Request::Release { id } => {
                let r = if self.table.release(id, from) {
                    Reply::Ok
                } else {
                    Reply::Err(WireError::NoSuchResource(id))
                };
                self.reply(from, &r);
            }
            Request::Done(outcome) => {
                // The body is over: what it used is released now, before
                // its result can reach a joiner.
                self.table.release_all(from);
                if let Some(p) = self.procs.get_mut(&from) {
                    if p.outcome.is_none() {
                        p.outcome = Some(if p.discard {
                            cause_of(&outcome)
                        } else {
                            outcome
                        });
                    }
                }
                self.deliver(from);
            }
        }
    }

    /// Answers a join at once, or records the joiner and returns `None`.
    fn join(&mut self, from: u64, pid: u64, def_id: u64, mode: JoinMode) -> Option<Reply> {
        if pid == from {
            return Some(Reply::Err(WireError::JoinSelf(pid)));
        }
        let Some(p) = self.procs.get_mut(&pid) else {
            return Some(Reply::Err(match self.retired.get(&pid) {
                Some(r) if r.def_id != def_id => WireError::WrongDefinition(pid),
                Some(r) if r.discard => WireError::JoinPointReleased(pid),
                Some(_) => WireError::AlreadyJoined(pid),
                None if !self.was_started(pid) => WireError::NoSuchProcess(pid),
                None if self.released_defs.contains(&def_id) => WireError::JoinPointReleased(pid),
                None => WireError::AlreadyJoined(pid),
            }));
        };
        if p.def_id != def_id {
            return Some(Reply::Err(WireError::WrongDefinition(pid)));
        }
        if p.discard {
            return Some(Reply::Err(WireError::JoinPointReleased(pid)));
        }
        if p.joined {
            return Some(Reply::Err(WireError::AlreadyJoined(pid)));
        }
        if let Some(o) = &mut p.outcome {
            p.joined = true;
            let cause = cause_of(o);
            let reply = Reply::Outcome(std::mem::replace(o, cause));
            self.retire(pid);
            return Some(reply);
        }
        match mode {
            JoinMode::Poll | JoinMode::Timeout(0) => Some(Reply::NotYet),
            JoinMode::Block => {
                p.waiters.push((from, None));
                None
            }
            JoinMode::Timeout(ms) => {
                let d = Instant::now().checked_add(Duration::from_millis(ms));
                p.waiters.push((from, d));
                None
            }
        }
    }

    /// Hands a known outcome to the first waiter; later waiters learn that
    /// it was already joined.
    fn deliver(&mut self, id: u64) {
        let Some(p) = self.procs.get_mut(&id) else {
            return;
        };
        if p.outcome.is_none() || p.waiters.is_empty() {
            return;
        }
        let waiters = std::mem::take(&mut p.waiters);
        let o = p.outcome.as_mut().expect("checked above");
        let cause = cause_of(o);
        let full = std::mem::replace(o, cause);
        p.joined = true;
        let mut first = Some(full);
        for (w, _) in waiters {
            match first.take() {
                Some(o) => self.reply(w, &Reply::Outcome(o)),
                None => self.reply(w, &Reply::Err(WireError::AlreadyJoined(id))),
            }
        }
    }

    /// Answers joins whose deadline passed.
    fn expire(&mut self, now: Instant) {
        let mut late = Vec::new();
        for id in &self.live {
            let Some(p) = self.procs.get_mut(id) else {
                continue;
            };
            p.waiters.retain(|&(w, d)| match d {
                Some(d) if d <= now => {
                    late.push(w);
                    false
                }
                _ => true,
            });
        }
        for w in late {
            self.reply(w, &Reply::NotYet);
        }
    }

    /// Reaps a worker that ended (`block`: wait for it). For the first
    /// process, which is not the master's child, `block` means that it is
    /// known to be gone; otherwise the master checks whether it still is
    /// its parent.
    fn reap(&mut self, id: u64, block: bool) {
        let Some(p) = self.procs.get(&id) else { return };
        if p.reaped {
            return;
        }
        let os_pid = p.os_pid;
        let mut ended = Ended::Signaled(proc::SIGKILL);
        if p.child {
            match proc::wait(os_pid, block) {
                Ok(Some(e)) => ended = e,
                Ok(None) => return,
                // ECHILD: nothing to wait for (should not happen); treat as
                // gone.
                Err(_) => {}
            }
        } else if !block && proc::getppid() == self.parent {
            return;
        }
        // Whatever the worker sent before it ended (its outcome) first.
        self.read_conn(id);
        let Some(p) = self.procs.get_mut(&id) else {
            return;
        };
        p.reaped = true;
        p.pidfd = None;
        p.conn = None;
        p.rbuf = Vec::new();
        if p.outcome.is_none() {
            p.outcome = Some(ended_outcome(ended));
        }
        self.live.remove(&id);
        self.table.release_all(id);
        for q in &self.live {
            if let Some(q) = self.procs.get_mut(q) {
                q.waiters.retain(|&(w, _)| w != id);
            }
        }
        self.deliver(id);
        self.retire(id);
    }

    /// Whether `pid` names a process of this run (ended or not).
    fn was_started(&self, pid: u64) -> bool {
        (FIRST..self.next_id).contains(&pid)
    }

    /// Moves a process that was reaped and joined (or whose result is not
    /// kept) to the retired ones, keeping only what `status` and `join`
    /// need, and forgets the oldest retired beyond the limit: the master's
    /// memory does not grow with the number of processes started.
    fn retire(&mut self, id: u64) {
        let done = self.procs.get(&id).is_some_and(|p| {
            id != FIRST && p.reaped && (p.joined || p.discard) && p.waiters.is_empty()
        });
        if !done {
            return;
        }
        let Some(p) = self.procs.remove(&id) else {
            return;
        };
        let cause = p
            .outcome
            .as_ref()
            .map_or(WireOutcome::Killed(proc::SIGKILL), cause_of);
        self.retired.insert(
            id,
            Retired {
                def_id: p.def_id,
                discard: p.discard,
                cause,
            },
        );
        while self.retired.len() > self.keep {
            self.retired.pop_first();
        }
    }

    /// Ends the run once the first process has finished: kills and reaps
    /// the workers still running, waits for those whose body has finished
    /// (they are on their way out, and are not reported as killed), and
    /// deletes every resource left. Returns the killed, the unjoined, and
    /// the number of processes started.
    fn finish(&mut self) -> (Vec<u64>, Vec<u64>, u64) {
        self.finishing = true;
        self.want_spare = false;
        if let Some(s) = self.spare.take() {
            s.kill_and_reap();
        }
        // What the workers sent before the end (outcomes above all) first,
        // so that a worker whose body has finished is not counted as
        // killed.
        let live: Vec<u64> = self
            .live
            .iter()
            .copied()
            .filter(|&id| id != FIRST)
            .collect();
        for id in live {
            self.read_conn(id);
        }
        let (ending, running): (Vec<u64>, Vec<u64>) = self
            .live
            .iter()
            .copied()
            .filter(|&id| id != FIRST)
            .partition(|id| self.procs.get(id).is_some_and(|p| p.outcome.is_some()));
        for &id in &running {
            if let Some(p) = self.procs.get(&id) {
                signal_proc(p, proc::SIGKILL);
            }
        }
        // A worker sends its outcome, then exits at once: give it a moment.
        let grace = Instant::now() + Duration::from_secs(2);
        for &id in &ending {
            loop {
                self.reap(id, false);
                if self.procs.get(&id).is_none_or(|p| p.reaped) {
                    break;
                }
                if Instant::now() >= grace {
                    if let Some(p) = self.procs.get(&id) {
                        signal_proc(p, proc::SIGKILL);
                    }
                    self.reap(id, true);
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for &id in &running {
            self.reap(id, true);
        }
        let unjoined = self
            .procs
            .iter()
            .filter(|(&i, p)| {
                i != FIRST
                    && !running.contains(&i)
                    && !p.joined
                    && !p.discard
                    && p.outcome.is_some()
            })
            .map(|(&i, _)| i)
            .collect();
        self.table.delete_all();
        (running, unjoined, self.next_id - 1)
    }
}

fn signal_proc(p: &Proc, signal: i32) {
    if let Some(pf) = &p.pidfd {
        if proc::pidfd_send_signal(pf, signal) {
            return;
        }
    }
    // Not reaped yet, so its pid is still ours.
    let _ = proc::kill(p.os_pid, signal);
}
