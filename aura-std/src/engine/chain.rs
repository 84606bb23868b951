//! Linked chains: several operations that run in order on one ring (`IOSQE_IO_LINK`); when one
//! fails, the rest complete with [`Error::Cancelled`].

use std::sync::atomic::Ordering;

use aura_core::op::SqeFlags;
use aura_core::Sqe;

use super::{lock, Claim, Engine};
use crate::buffer::BufferRef;
use crate::error::{Error, Result};
use crate::request::{Keep, Request, RequestHandle};
use crate::shard::ShardState;

/// A linked chain being built; [`Chain::submit`] sends it. Each operation's callback runs as
/// usual; after a failure, the later ones get [`Error::Cancelled`].
///
/// A chain bypasses the in-flight gate (its SQEs must reach the ring together, in order) and
/// goes to one ring.
pub struct Chain<'e> {
    engine: &'e Engine,
    ops: Vec<(Sqe, Request, Claim<'e>)>,
}

impl std::fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("ops", &self.ops.len())
            .finish()
    }
}

/// The most operations in one chain.
pub const MAX_CHAIN: usize = 64;

impl Engine {
    /// Starts a linked chain.
    pub fn chain(&self) -> Chain<'_> {
        Chain {
            engine: self,
            ops: Vec::new(),
        }
    }
}

impl<'e> Chain<'e> {
    fn add(&mut self, sqe: Sqe, req: Request, claim: Claim<'e>) -> Result<&mut Self> {
        if self.ops.len() >= MAX_CHAIN {
            return Err(Error::invalid(format!(
                "chain: at most {MAX_CHAIN} operations"
            )));
        }
        self.ops.push((sqe, req, claim));
        Ok(self)
    }

    /// Appends a read (see [`Engine::read`]).
    ///
    /// # Safety
    ///
    /// As for [`Engine::read`].
    pub unsafe fn read(
        &mut self,
        fd: i32,
        buf: BufferRef,
        len: usize,
        offset: u64,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<&mut Self> {
        let (sqe, claim) = self.engine.rw_sqe(false, fd, buf, len, offset)?;
        self.add(sqe, Request::plain(callback, Keep::Nothing, true), claim)
    }

    /// Appends a write (see [`Engine::write`]).
    ///
    /// # Safety
    ///
    /// As for [`Engine::write`].
    pub unsafe fn write(
        &mut self,
        fd: i32,
        buf: BufferRef,
        len: usize,
        offset: u64,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<&mut Self> {
        let (sqe, claim) = self.engine.rw_sqe(true, fd, buf, len, offset)?;
        self.add(sqe, Request::plain(callback, Keep::Nothing, true), claim)
    }

    /// Appends an fsync (see [`Engine::fsync`]).
    pub fn fsync(
        &mut self,
        fd: i32,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<&mut Self> {
        let (target, claim) = self.engine.target(fd)?;
        let sqe = aura_core::op::fsync(target);
        self.add(sqe, Request::plain(callback, Keep::Nothing, false), claim)
    }

    /// Appends an fdatasync (see [`Engine::fdatasync`]).
    pub fn fdatasync(
        &mut self,
        fd: i32,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<&mut Self> {
        let (target, claim) = self.engine.target(fd)?;
        let sqe = aura_core::op::fdatasync(target);
        self.add(sqe, Request::plain(callback, Keep::Nothing, false), claim)
    }

    /// Sends the chain to one ring and submits it at once. Returns a handle per operation.
    pub fn submit(self) -> Result<Vec<RequestHandle>> {
        let engine = self.engine;
        if self.ops.is_empty() {
            return Ok(Vec::new());
        }
        if engine.inner.shutting_down.load(Ordering::Acquire) {
            return Err(Error::Shutdown);
        }
        let ring = engine.select();
        let shard = &engine.inner.shards[ring];
        let mut st = lock(&shard.state);
        let n = self.ops.len();
        if st.ring.sq_entries() < n as u32 || st.slab.capacity() - st.slab.len() < n as u32 {
            return Err(Error::WouldBlock);
        }
        // Everything pushed earlier goes first, so the chain's SQEs sit together in the SQ.
        st.flush()?;
        if st.ring.sq_entries() - st.ring.sq_unconsumed() < n as u32 {
            return Err(Error::WouldBlock);
        }
        let now = engine.now_ns();
        let mut handles = Vec::with_capacity(n);
        let mut sqes = Vec::with_capacity(n);
        for (i, (sqe, mut req, claim)) in self.ops.into_iter().enumerate() {
            if req.data {
                req.submit_ns = now.max(1);
            }
            req.fixed = claim.bits();
            let token = match st.slab.insert(req) {
                Ok(t) => t.user_data(),
                Err(mut r) => {
                    r.fixed = 0;
                    engine.unwind_chain(&mut st, &handles);
                    return Err(Error::WouldBlock);
                }
            };
            // The slot owns the claim now: its completion releases it.
            claim.commit();
            let mut sqe = sqe.user_data(token);
            if i + 1 < n {
                sqe = sqe.flags(SqeFlags::IO_LINK);
            }
            sqes.push(sqe);
            handles.push(RequestHandle {
                ring: ring as u32,
                user_data: token,
            });
        }
        // SAFETY: each SQE's memory is owned by its request slot or promised by the caller of
        // the unsafe append (Chain::read / write); slots live until their CQEs.
        if unsafe { st.ring.sq().push_all(&sqes) }.is_err() {
            engine.unwind_chain(&mut st, &handles);
            return Err(Error::WouldBlock);
        }
        shard.counters.add_pending(&mut st, n as u32);
        st.in_flight += n as u32;
        st.peak_in_flight = st.peak_in_flight.max(st.in_flight);
        st.flush()?;
        Ok(handles)
    }
}

impl Engine {
    /// Takes back the slots of a chain whose SQEs never reached the ring (inserted under this
    /// same lock, so nothing else can have removed them): their requests are dropped unrun and
    /// their registered-resource claims released.
    fn unwind_chain(&self, st: &mut ShardState, handles: &[RequestHandle]) {
        for h in handles {
            if let Ok(mut back) = st.slab.remove(h.user_data) {
                self.inner.fixed.release(std::mem::take(&mut back.fixed));
            }
        }
    }
}
