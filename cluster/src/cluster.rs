//! [`run`] and [`Cluster`]: a rank of an MPI job as an mc master.

use std::marker::PhantomData;

use mpi::datatype::Equivalence;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Destination, Root, Source};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{frame, ClusterError};

/// The MPI tag of [`Cluster::send`] / [`Cluster::recv`] messages (for
/// code that talks to the same ranks through [`Cluster::world`]).
pub const TAG_USER: i32 = 1;
/// The tag of [`Cluster::gather`] (and `reduce`) messages.
const TAG_GATHER: i32 = 2;
/// [`Cluster::deal`]: a rank's request for tasks (with its last results).
const TAG_DEAL_ASK: i32 = 3;
/// [`Cluster::deal`]: the tasks the root deals (none: no more).
const TAG_DEAL_GIVE: i32 = 4;
/// [`Cluster::send_shared`]: the offer (fingerprint, bytes needed).
const TAG_SH_OFFER: i32 = 5;
/// [`Cluster::recv_shared`]: the address the image will be read at (0:
/// refused).
const TAG_SH_ACCEPT: i32 = 6;
/// [`Cluster::send_shared`]: the image's root offset and length, or why
/// there is none.
const TAG_SH_HEADER: i32 = 7;
/// [`Cluster::send_shared`]: the image.
const TAG_SH_IMAGE: i32 = 8;

/// 64 bytes, 64-aligned: what image buffers are made of (the largest
/// alignment of a shared representation).
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// The first `n` bytes of `lines` (64-aligned), which grows to hold them.
fn image_buffer(lines: &mut Vec<Line>, n: usize) -> Result<&mut [u8], ClusterError> {
    let want = n.div_ceil(64).max(1);
    if lines.len() < want {
        lines
            .try_reserve_exact(want - lines.len())
            .map_err(|e| ClusterError::Encode(format!("{n} bytes for an image: {e}")))?;
        lines.resize(want, Line([0; 64]));
    }
    Ok(&mut bytemuck::cast_slice_mut(lines)[..n])
}

/// A buffer kept from one message to the next (no allocation and no page
/// faults of a fresh buffer per message). Taken for one use and put back,
/// so that a nested use gets a fresh one instead of a conflict.
struct Reused<T>(std::cell::Cell<Vec<T>>);

impl<T> Reused<T> {
    fn new() -> Self {
        Reused(std::cell::Cell::new(Vec::new()))
    }

    fn with<R>(&self, f: impl FnOnce(&mut Vec<T>) -> R) -> R {
        let mut v = self.0.take();
        let r = f(&mut v);
        self.0.set(v);
        r
    }
}

/// This rank's view of the job: who it is, and how it talks to the others.
/// Only the thread that called [`run`] uses it (MPI runs `Funneled`).
pub struct Cluster {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    node: String,
    threading: mpi::Threading,
    /// The buffers of encoded messages, and of images in mc's layout.
    sendbuf: Reused<u8>,
    recvbuf: Reused<u8>,
    recvimage: Reused<Line>,
    /// Set while a message goes out (a `Serialize` impl that sends would
    /// put its message between the parts of the one being sent).
    sending: std::cell::Cell<bool>,
    /// Not `Send`, not `Sync`: MPI is called from one thread only.
    _one_thread: PhantomData<*const ()>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .field("node", &self.node)
            .finish()
    }
}

/// Runs `f` as this rank's first process: starts mc's run (so the master,
/// and every worker it forks, exist before MPI does), then initialises MPI
/// (`Funneled`) and calls `f` with the rank's [`Cluster`]. MPI is finalised
/// when `f` returns, then the run ends. A program that was not started by
/// `mpirun` or `srun` runs as a job of one rank.
///
/// # Errors
///
/// [`ClusterError::Init`] when MPI cannot be initialised (it was, already,
/// in this process); [`ClusterError::Mc`] when the run fails or its first
/// process does not return (a panic in `f`).
pub fn run<R>(f: impl FnOnce(&Cluster) -> R) -> Result<R, ClusterError> {
    let report = mc::run(move || -> Result<R, ClusterError> {
        let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or_else(|| {
                ClusterError::Init("MPI is initialised already in this process".into())
            })?;
        let world = universe.world();
        let rank = usize::try_from(world.rank()).unwrap_or(0);
        on_termination(rank);
        let cluster = Cluster {
            rank,
            size: usize::try_from(world.size()).unwrap_or(1),
            node: mpi::environment::processor_name().unwrap_or_else(|_| "?".into()),
            threading,
            world,
            sendbuf: Reused::new(),
            recvbuf: Reused::new(),
            recvimage: Reused::new(),
            sending: std::cell::Cell::new(false),
            _one_thread: PhantomData,
        };
        let r = f(&cluster);
        drop(cluster);
        // MPI_Finalize.
        drop(universe);
        Ok(r)
    })?;
    match report.into_result() {
        Ok(r) => r,
        Err(ended) => Err(ClusterError::Mc(mc::Error::new(format!(
            "the rank's first process did not return: {ended}"
        )))),
    }
}

/// The message a rank prints when the job ends it (`SIGTERM`, which
/// `mpirun` sends to the other ranks when one fails), made before the
/// handler can run.
static ENDED: std::sync::atomic::AtomicPtr<u8> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());
static ENDED_LEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn ended(_: std::ffi::c_int) {
    use std::sync::atomic::Ordering;
    let p = ENDED.load(Ordering::Acquire);
    let len = ENDED_LEN.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: `p` points to `len` bytes leaked by `on_termination`,
        // which never change or go away.
        let msg = unsafe { std::slice::from_raw_parts(p, len) };
        let _ = nix::unistd::write(std::io::stderr(), msg);
    }
    // The rank's mc master sees its first process gone and ends the
    // workers and the rank's segments.
    // SAFETY: `_exit` is async-signal-safe and ends the process at once.
    unsafe { nix::libc::_exit(143) }
}

/// Makes `SIGTERM` end the rank with a line that says why, instead of
/// silently: the job's other ranks see a clear error when one rank fails.
fn on_termination(rank: usize) {
    use std::sync::atomic::Ordering;
    let msg = format!(
        "mc-cluster: rank {rank}: the job was ended (another rank failed, or the job was \
         cancelled); this rank's workers and segments are released\n"
    )
    .into_bytes()
    .into_boxed_slice();
    let len = msg.len();
    ENDED_LEN.store(len, Ordering::Release);
    ENDED.store(Box::leak(msg).as_mut_ptr(), Ordering::Release);
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(ended),
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler calls only `write` and `_exit`, which are
    // async-signal-safe, on memory made before it was installed.
    let _ = unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGTERM, &action) };
}

impl Cluster {
    /// This rank (0 to [`size`](Self::size) - 1).
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks in the job.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether this is rank 0.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// The name of the node this rank runs on (MPI's processor name).
    pub fn node_name(&self) -> &str {
        &self.node
    }

    /// The thread level MPI granted (`Funneled` or more).
    pub fn threading(&self) -> mpi::Threading {
        self.threading
    }

    fn check(&self, rank: usize) -> Result<i32, ClusterError> {
        if rank >= self.size {
            return Err(ClusterError::NoSuchRank {
                rank,
                size: self.size,
            });
        }
        i32::try_from(rank).map_err(|_| ClusterError::NoSuchRank {
            rank,
            size: self.size,
        })
    }

    /// Sends `value` to rank `to` (blocking until MPI has taken the bytes).
    ///
    /// The value is encoded (postcard) into a buffer this rank keeps.
    /// Strings and byte buffers (`serde_bytes`) of 256 KiB or more are not
    /// copied into it: they go out from the value's own memory, as parts
    /// of the same message, which [`recv`](Self::recv) puts back together.
    ///
    /// # Errors
    ///
    /// [`ClusterError::NoSuchRank`]; [`ClusterError::Encode`] when the value
    /// cannot be encoded.
    pub fn send<T: Serialize>(&self, to: usize, value: &T) -> Result<(), ClusterError> {
        let to = self.check(to)?;
        self.send_tagged(to, TAG_USER, value)
    }

    /// Encodes `value` into the reused send buffer and sends it with `tag`
    /// (large byte strings from the value's own memory, in parts: see
    /// [`frame`]).
    fn send_tagged<T: Serialize>(&self, to: i32, tag: i32, value: &T) -> Result<(), ClusterError> {
        if self.sending.replace(true) {
            return Err(ClusterError::Encode(
                "a value's Serialize impl sent a message itself, while the value was being sent \
                 (send it before or after)"
                    .into(),
            ));
        }
        /// Clears `sending` when the send ends, also by a panic.
        struct Sending<'a>(&'a std::cell::Cell<bool>);
        impl Drop for Sending<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _sending = Sending(&self.sending);
        let peer = self.world.process_at_rank(to);
        self.sendbuf.with(|buf| {
            let sent = frame::encode_split(value, buf, frame::DIRECT, &mut |part| {
                peer.send_with_tag(part, tag);
            })?;
            if sent == frame::Encoded::Whole {
                peer.send_with_tag(&buf[..], tag);
            }
            Ok(())
        })
    }

    /// Receives the next message with `tag` from `from` (any rank:
    /// `None`) into the reused receive buffer and decodes it; with the
    /// rank it came from.
    fn recv_tagged<T: DeserializeOwned>(
        &self,
        from: Option<i32>,
        tag: i32,
    ) -> Result<(usize, T), ClusterError> {
        let (msg, status) = match from {
            Some(r) => self.world.process_at_rank(r).matched_probe_with_tag(tag),
            None => self.world.any_process().matched_probe_with_tag(tag),
        };
        let peer = self.world.process_at_rank(status.source_rank());
        let src = usize::try_from(status.source_rank()).unwrap_or(usize::MAX);
        // Received at `at` in the buffer, which only grows (a reused buffer
        // is not filled again).
        let into = |buf: &mut Vec<u8>, at: usize, msg: mpi::point_to_point::Message, n: i32| {
            let n = usize::try_from(n).unwrap_or(0);
            if buf.len() < at + n {
                buf.resize(at + n, 0);
            }
            msg.matched_receive_into(&mut buf[at..at + n]);
            n
        };
        let value = self.recvbuf.with(|buf| {
            let first = into(buf, 0, msg, status.count(u8::equivalent_datatype()));
            // The other parts of a message in parts come from the same rank
            // with the same tag, in order (MPI does not reorder them).
            frame::receive(src, buf, first, &mut |buf, at| {
                let (msg, status) = peer.matched_probe_with_tag(tag);
                into(buf, at, msg, status.count(u8::equivalent_datatype()))
            })
        })?;
        Ok((src, value))
    }

    /// Sends a shared value in its own layout (mc's representation, the
    /// layout of heaps and camlbox messages), with no serde encoding: the
    /// receiver ([`recv_shared`](Self::recv_shared)) first says at which
    /// address it will read the image, this rank writes the value there
    /// (its pointers relocated for that address) and sends it, and the
    /// receiver validates it as a camlbox message is validated. For any
    /// `T: Shared`, also without serde; a value read in place from a heap is
    /// sent with `send_shared(to, &guard_value)` after copying it out, or
    /// as is when it is a `T` itself.
    ///
    /// # Errors
    ///
    /// [`ClusterError::NoSuchRank`]; [`ClusterError::BadMessage`] when the
    /// receiver expects another type; [`ClusterError::Encode`] when the
    /// value cannot be written (a lock this thread holds).
    pub fn send_shared<T: mc::Shared>(&self, to: usize, value: &T) -> Result<(), ClusterError> {
        let r = self.check(to)?;
        let size = mc::Camlbox::<T>::message_size(value);
        self.send_tagged(r, TAG_SH_OFFER, &(T::FINGERPRINT, size as u64))?;
        let (_, target): (usize, u64) = self.recv_tagged(Some(r), TAG_SH_ACCEPT)?;
        if target == 0 {
            return Err(ClusterError::BadMessage {
                from: to,
                reason: format!(
                    "rank {to} expects another type than {}",
                    std::any::type_name::<T>()
                ),
            });
        }
        // A fresh buffer: writing an image into one that the receiver has
        // just read (MPI's single copy, `process_vm_readv`) measured 15
        // times slower here than writing into fresh memory.
        let mut lines = Vec::new();
        let written = image_buffer(&mut lines, size).and_then(|buf| {
            let t = usize::try_from(target).map_err(|_| {
                ClusterError::Encode("an image address past the address space".into())
            })?;
            let (root, used) = mc::value::copy_into_region_for(value, buf, t)
                .map_err(|e| ClusterError::Encode(e.to_string()))?;
            Ok((root, &buf[..used]))
        });
        match written {
            Ok((root, image)) => {
                self.send_tagged(
                    r,
                    TAG_SH_HEADER,
                    &Ok::<_, String>((root as u64, image.len() as u64)),
                )?;
                self.world
                    .process_at_rank(r)
                    .send_with_tag(image, TAG_SH_IMAGE);
                Ok(())
            }
            Err(e) => {
                self.send_tagged(r, TAG_SH_HEADER, &Err::<(u64, u64), _>(e.to_string()))?;
                Err(e)
            }
        }
    }

    /// Receives a shared value that rank `from` sent with
    /// [`send_shared`](Self::send_shared): the image arrives in a buffer
    /// of this rank at the address it told the sender, is validated, and
    /// copied out.
    ///
    /// # Errors
    ///
    /// [`ClusterError::NoSuchRank`]; [`ClusterError::BadMessage`] when the
    /// sender sends another type, could not write the value, or the image
    /// is cut or corrupt (what validation found).
    pub fn recv_shared<T: mc::Shared>(&self, from: usize) -> Result<T, ClusterError> {
        let r = self.check(from)?;
        let bad = |reason: String| ClusterError::BadMessage { from, reason };
        let (_, (fp, size)): (usize, (u64, u64)) = self.recv_tagged(Some(r), TAG_SH_OFFER)?;
        if fp != T::FINGERPRINT {
            self.send_tagged(r, TAG_SH_ACCEPT, &0u64)?;
            return Err(bad(format!(
                "a value of another type than {}",
                std::any::type_name::<T>()
            )));
        }
        let size =
            usize::try_from(size).map_err(|_| bad("an image past the address space".into()))?;
        self.recvimage
            .with(|lines| self.recv_image(r, from, lines, size))
    }

    /// [`recv_shared`](Self::recv_shared) once the offer is taken: the
    /// image of `size` bytes arrives in `lines`.
    fn recv_image<T: mc::Shared>(
        &self,
        r: i32,
        from: usize,
        lines: &mut Vec<Line>,
        size: usize,
    ) -> Result<T, ClusterError> {
        let bad = |reason: String| ClusterError::BadMessage { from, reason };
        let buf = match image_buffer(lines, size) {
            Ok(b) => b,
            Err(e) => {
                self.send_tagged(r, TAG_SH_ACCEPT, &0u64)?;
                return Err(e);
            }
        };
        let target = buf.as_ptr().addr() as u64;
        self.send_tagged(r, TAG_SH_ACCEPT, &target)?;
        let (_, header): (usize, Result<(u64, u64), String>) =
            self.recv_tagged(Some(r), TAG_SH_HEADER)?;
        let (root, used) =
            header.map_err(|e| bad(format!("the sender could not write it: {e}")))?;
        let (msg, status) = self
            .world
            .process_at_rank(r)
            .matched_probe_with_tag(TAG_SH_IMAGE);
        let n = usize::try_from(status.count(u8::equivalent_datatype())).unwrap_or(usize::MAX);
        if n > buf.len() || u64::try_from(n).ok() != Some(used) {
            // Taken all the same, so that it does not block the next one.
            let _ =
                mpi::point_to_point::MatchedReceiveVec::matched_receive_vec::<u8>((msg, status));
            return Err(bad(format!("an image of {n} bytes, {used} announced")));
        }
        msg.matched_receive_into(&mut buf[..n]);
        let root =
            usize::try_from(root).map_err(|_| bad("a root past the address space".into()))?;
        mc::value::copy_from_region::<T>(&mut buf[..n], root).map_err(|e| bad(e.to_string()))
    }

    /// Receives the next value that rank `from` sent with [`send`](Self::send).
    ///
    /// # Errors
    ///
    /// [`ClusterError::NoSuchRank`]; [`ClusterError::BadMessage`] when the
    /// message holds another type, or is cut or corrupt.
    pub fn recv<T: DeserializeOwned>(&self, from: usize) -> Result<T, ClusterError> {
        let r = self.check(from)?;
        Ok(self.recv_tagged(Some(r), TAG_USER)?.1)
    }

    /// Receives the next value any rank sent with [`send`](Self::send), and
    /// the rank it came from.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_any<T: DeserializeOwned>(&self) -> Result<(usize, T), ClusterError> {
        self.recv_tagged(None, TAG_USER)
    }

    /// Broadcasts rank `root`'s value to every rank: the root gives
    /// `Some(value)`, the others `None`; every rank gets the value.
    ///
    /// # Errors
    ///
    /// [`ClusterError::NoSuchRank`]; [`ClusterError::Encode`] on the root
    /// (also when it gives `None`: the others then get `BadMessage`);
    /// [`ClusterError::BadMessage`] as for [`recv`](Self::recv).
    pub fn broadcast<T: Serialize + DeserializeOwned>(
        &self,
        root: usize,
        value: Option<&T>,
    ) -> Result<T, ClusterError> {
        let r = self.check(root)?;
        let proc = self.world.process_at_rank(r);
        let mut bytes = Vec::new();
        let mut encode_err = None;
        if self.rank == root {
            match value.map(frame::encode).transpose() {
                Ok(Some(b)) => bytes = b,
                Ok(None) => {
                    encode_err = Some(ClusterError::Encode(
                        "the root of a broadcast must give a value".into(),
                    ))
                }
                Err(e) => encode_err = Some(e),
            }
        }
        // The length first (0: nothing follows, the others fail too).
        let mut len = bytes.len() as u64;
        proc.broadcast_into(&mut len);
        let len = usize::try_from(len).map_err(|_| ClusterError::BadMessage {
            from: root,
            reason: "a broadcast longer than the address space".into(),
        })?;
        bytes.resize(len, 0);
        if len > 0 {
            proc.broadcast_into(&mut bytes[..]);
        }
        if let Some(e) = encode_err {
            return Err(e);
        }
        frame::decode(root, &bytes)
    }

    /// Gathers every rank's value on rank `root`, in rank order: `Some`
    /// there, `None` on the others.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send) and [`recv`](Self::recv).
    pub fn gather<T: Serialize + DeserializeOwned>(
        &self,
        root: usize,
        value: &T,
    ) -> Result<Option<Vec<T>>, ClusterError> {
        let r = self.check(root)?;
        if self.rank != root {
            let bytes = frame::encode(value)?;
            self.world
                .process_at_rank(r)
                .send_with_tag(&bytes[..], TAG_GATHER);
            return Ok(None);
        }
        let mine = frame::encode(value)?;
        let mut all = Vec::with_capacity(self.size);
        for from in 0..self.size {
            if from == root {
                all.push(frame::decode(root, &mine)?);
                continue;
            }
            let (bytes, _) = self
                .world
                .process_at_rank(self.check(from)?)
                .receive_vec_with_tag::<u8>(TAG_GATHER);
            all.push(frame::decode(from, &bytes)?);
        }
        Ok(Some(all))
    }

    /// Combines every rank's value with `op` on rank `root` (in rank order:
    /// `op(op(v0, v1), v2)…`): `Some` there, `None` on the others.
    ///
    /// # Errors
    ///
    /// As [`gather`](Self::gather).
    pub fn reduce<T: Serialize + DeserializeOwned>(
        &self,
        root: usize,
        value: &T,
        op: impl FnMut(T, T) -> T,
    ) -> Result<Option<T>, ClusterError> {
        Ok(self
            .gather(root, value)?
            .and_then(|all| all.into_iter().reduce(op)))
    }

    /// Deals tasks to every rank on demand and collects their results on
    /// rank 0: a work queue with dynamic load balance. Rank 0 gives the
    /// tasks (`Some`; the others `None`) and keeps the queue; every rank
    /// calls `work` on batches of at most `batch` tasks (typically handing
    /// them to its mc workers) until the queue is empty. A rank asks for
    /// its next batch when it sends the results of the last one, so fast
    /// ranks take more. Rank 0 works too: its batches run on a thread of
    /// their own (`work` calls no MPI, hence `Send`), while its first
    /// thread answers the other ranks.
    /// Returns every result on rank 0 (in no particular order), `None` on
    /// the others. Every rank calls it (it ends with a barrier, so that
    /// one deal's messages never meet the next one's).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send) and [`recv`](Self::recv);
    /// [`ClusterError::Encode`] when rank 0 gives no tasks.
    pub fn deal<T, R>(
        &self,
        tasks: Option<Vec<T>>,
        batch: usize,
        mut work: impl FnMut(Vec<T>) -> Vec<R> + Send,
    ) -> Result<Option<Vec<R>>, ClusterError>
    where
        T: Serialize + DeserializeOwned + Send,
        R: Serialize + DeserializeOwned + Send,
    {
        let batch = batch.max(1);
        let root = self.world.process_at_rank(0);
        if self.rank != 0 {
            let mut results: Vec<R> = Vec::new();
            loop {
                let ask = frame::encode(&results)?;
                root.send_with_tag(&ask[..], TAG_DEAL_ASK);
                let (bytes, _) = root.receive_vec_with_tag::<u8>(TAG_DEAL_GIVE);
                let tasks: Vec<T> = frame::decode(0, &bytes)?;
                if tasks.is_empty() {
                    // Nobody starts the next deal before rank 0 has
                    // answered every request of this one.
                    self.world.barrier();
                    return Ok(None);
                }
                results = work(tasks);
            }
        }
        let mut queue: std::collections::VecDeque<T> = tasks
            .ok_or_else(|| ClusterError::Encode("rank 0 of a deal must give the tasks".into()))?
            .into();
        let mut out = Vec::new();
        let mut asking = self.size - 1;
        // Answers one rank's request (results in, a batch or "done" out).
        let answer = |bytes: Vec<u8>,
                      from: usize,
                      queue: &mut std::collections::VecDeque<T>,
                      out: &mut Vec<R>|
         -> Result<bool, ClusterError> {
            out.extend(frame::decode::<Vec<R>>(from, &bytes)?);
            let n = batch.min(queue.len());
            let give: Vec<T> = queue.drain(..n).collect();
            let reply = frame::encode(&give)?;
            self.world
                .process_at_rank(self.check(from)?)
                .send_with_tag(&reply[..], TAG_DEAL_GIVE);
            Ok(give.is_empty())
        };
        // This rank's own batches run on a thread of their own (they call
        // no MPI), so that this thread answers the others at once.
        let served = std::thread::scope(|scope| -> Result<(), ClusterError> {
            let (give_tx, give_rx) = std::sync::mpsc::channel::<Vec<T>>();
            let (done_tx, done_rx) = std::sync::mpsc::channel::<Vec<R>>();
            let local = scope.spawn(move || {
                for b in give_rx {
                    if done_tx.send(work(b)).is_err() {
                        return;
                    }
                }
            });
            let mut local_busy = false;
            // How long an idle look waits before the next: short after
            // something happened, then longer (each look costs the CPU the
            // workers need), up to a bound on the answer's delay.
            let (min_idle, max_idle) = (
                std::time::Duration::from_micros(20),
                std::time::Duration::from_micros(500),
            );
            let mut idle = min_idle;
            let r = loop {
                if local_busy {
                    match done_rx.try_recv() {
                        Ok(r) => {
                            out.extend(r);
                            local_busy = false;
                        }
                        Err(std::sync::mpsc::TryRecvError::Empty) => {}
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                            break Err(ClusterError::Mc(mc::Error::new(
                                "the work of rank 0 panicked",
                            )));
                        }
                    }
                }
                if let Some(status) = self
                    .world
                    .any_process()
                    .immediate_probe_with_tag(TAG_DEAL_ASK)
                {
                    let from = status.source_rank();
                    let (bytes, _) = self
                        .world
                        .process_at_rank(from)
                        .receive_vec_with_tag::<u8>(TAG_DEAL_ASK);
                    let from = usize::try_from(from).unwrap_or(usize::MAX);
                    match answer(bytes, from, &mut queue, &mut out) {
                        Ok(true) => asking -= 1,
                        Ok(false) => {}
                        Err(e) => break Err(e),
                    }
                    idle = min_idle;
                    continue;
                }
                if !local_busy && !queue.is_empty() {
                    let n = batch.min(queue.len());
                    if give_tx.send(queue.drain(..n).collect()).is_err() {
                        break Err(ClusterError::Mc(mc::Error::new(
                            "the work of rank 0 panicked",
                        )));
                    }
                    local_busy = true;
                    idle = min_idle;
                    continue;
                }
                if !local_busy && queue.is_empty() && asking == 0 {
                    break Ok(());
                }
                // Nothing to do this instant: wait for this rank's results
                // (which end the wait at once) or the next look at requests.
                if local_busy {
                    match done_rx.recv_timeout(idle) {
                        Ok(r) => {
                            out.extend(r);
                            local_busy = false;
                            idle = min_idle;
                            continue;
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                            break Err(ClusterError::Mc(mc::Error::new(
                                "the work of rank 0 panicked",
                            )));
                        }
                    }
                } else {
                    std::thread::sleep(idle);
                }
                idle = (idle * 2).min(max_idle);
            };
            drop(give_tx);
            let joined = local.join();
            match (r, joined) {
                (Err(e), _) => Err(e),
                (Ok(()), Err(_)) => Err(ClusterError::Mc(mc::Error::new(
                    "the work of rank 0 panicked",
                ))),
                (Ok(()), Ok(())) => Ok(()),
            }
        });
        served?;
        self.world.barrier();
        Ok(Some(out))
    }

    /// The MPI communicator of the job, for what this crate does not wrap.
    /// Only the thread that called [`run`] may use it.
    pub fn world(&self) -> &SimpleCommunicator {
        &self.world
    }

    /// Ends the whole job at once with an error: prints
    /// `mc-cluster: rank R: message` and calls `MPI_Abort`, which ends
    /// every rank (each of which says it was ended, and whose mc master
    /// releases its workers and segments). For a failure this rank cannot
    /// recover from, such as a worker that its master reports killed.
    pub fn abort(&self, message: &str) -> ! {
        eprintln!("mc-cluster: rank {}: {message}", self.rank);
        self.world.abort(1)
    }

    /// Waits until every rank has called it.
    pub fn barrier(&self) {
        self.world.barrier();
    }
}
