//! Where an actor finds the current incarnation of a sibling it sends to.
//!
//! Pipelines are built downstream first (stager, then fetchers, then scheduler), and the
//! supervisors restart every actor after a failed one (rest_for_one), so when a fetcher
//! starts, the stager it needs has already (re)started and registered itself here.

use ractor::ActorRef;
use std::sync::{Arc, Mutex};

/// The current `ActorRef` of one actor, shared with the actors that send to it.
pub struct Directory<M>(Arc<Mutex<Option<ActorRef<M>>>>);

impl<M> Clone for Directory<M> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<M> Default for Directory<M> {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(None)))
    }
}

impl<M> Directory<M> {
    /// Called by the actor itself in `pre_start`.
    pub fn register(&self, actor: ActorRef<M>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(actor);
    }

    /// The current incarnation, if it has started.
    pub fn get(&self) -> Option<ActorRef<M>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
