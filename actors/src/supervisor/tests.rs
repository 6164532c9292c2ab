//! Supervision on paused tokio time with a test actor that panics, returns an error or
//! hangs on command. No sleeps: virtual time advances while everything is idle.

use super::*;
use ractor::ActorStatus;
use ractor::rpc::CallResult;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// What the test actor does with a [`Cmd::Fail`].
#[derive(Debug, Clone, Copy)]
enum Fault {
    Panic,
    Error,
    Hang,
}

enum Cmd {
    Fail(Fault),
    Ping(RpcReplyPort<()>),
}

impl From<Ping> for Cmd {
    fn from(ping: Ping) -> Self {
        Cmd::Ping(ping.0)
    }
}

/// Shared view of one child across its restarts: how often it started, its current ref.
#[derive(Clone, Default)]
struct Probe {
    starts: Arc<AtomicU32>,
    current: Arc<Mutex<Option<ActorRef<Cmd>>>>,
    /// Fail `pre_start` while this is non-zero (decremented per attempt).
    failing_starts: Arc<AtomicU32>,
}

impl Probe {
    fn starts(&self) -> u32 {
        self.starts.load(Ordering::SeqCst)
    }
    fn actor(&self) -> ActorRef<Cmd> {
        self.current.lock().unwrap().clone().expect("child started")
    }
}

#[derive(Clone)]
struct TestActor;

impl Actor for TestActor {
    type Msg = Cmd;
    type State = ();
    type Arguments = Probe;

    async fn pre_start(
        &self,
        myself: ActorRef<Cmd>,
        probe: Probe,
    ) -> Result<(), ActorProcessingErr> {
        if probe
            .failing_starts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("store unreachable".into());
        }
        probe.starts.fetch_add(1, Ordering::SeqCst);
        *probe.current.lock().unwrap() = Some(myself);
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Cmd>,
        cmd: Cmd,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match cmd {
            Cmd::Fail(Fault::Panic) => panic!("injected panic"),
            Cmd::Fail(Fault::Error) => Err("injected error".into()),
            Cmd::Fail(Fault::Hang) => std::future::pending().await,
            Cmd::Ping(reply) => {
                let _ = reply.send(());
                Ok(())
            }
        }
    }
}

/// Stands in for a supervisor's own supervisor: forwards what happens to its child.
#[derive(Clone)]
struct Parent;

impl Actor for Parent {
    type Msg = ();
    type State = mpsc::UnboundedSender<String>;
    type Arguments = mpsc::UnboundedSender<String>;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        tx: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        event: SupervisionEvent,
        tx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let text = match event {
            SupervisionEvent::ActorFailed(_, e) => format!("failed: {e}"),
            SupervisionEvent::ActorTerminated(_, _, reason) => format!("terminated: {reason:?}"),
            _ => return Ok(()),
        };
        let _ = tx.send(text);
        Ok(())
    }
}

fn policy(strategy: Strategy) -> RestartPolicy {
    RestartPolicy {
        backoff_jitter: 0.0,
        liveness_interval_ms: 0,
        ..RestartPolicy::new(strategy)
    }
}

struct Tree {
    supervisor: ActorRef<SupervisorMsg>,
    probes: Vec<Probe>,
    stats: RestartStats,
    events: mpsc::UnboundedReceiver<String>,
}

async fn tree(policy: RestartPolicy, children: usize) -> Tree {
    let probes: Vec<Probe> = (0..children).map(|_| Probe::default()).collect();
    let specs = probes
        .iter()
        .enumerate()
        .map(|(i, probe)| {
            let probe = probe.clone();
            ChildSpec::new(format!("child-{i}"), "test", TestActor, move || {
                probe.clone()
            })
            .with_ping::<Cmd>()
        })
        .collect();
    let stats = RestartStats::default();
    let (tx, events) = mpsc::unbounded_channel();
    let (parent, _) = Actor::spawn(None, Parent, tx).await.expect("parent");
    let (supervisor, _) = Actor::spawn_linked(
        None,
        Supervisor,
        SupervisorArgs {
            name: "test".into(),
            policy,
            children: specs,
            stats: stats.clone(),
        },
        parent.get_cell(),
    )
    .await
    .expect("supervisor starts");
    Tree {
        supervisor,
        probes,
        stats,
        events,
    }
}

/// Waits (in virtual time) until `cond` holds; panics after `limit` of virtual time.
async fn until(limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn starts(tree: &Tree) -> Vec<u32> {
    tree.probes.iter().map(Probe::starts).collect()
}

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_only_the_failed_child() {
    let t = tree(policy(Strategy::OneForOne), 3).await;
    let untouched = t.probes[2].actor().get_id();
    t.probes[1]
        .actor()
        .send_message(Cmd::Fail(Fault::Panic))
        .unwrap();
    until(Duration::from_secs(5), || starts(&t) == [1, 2, 1]).await;
    assert_eq!(t.probes[2].actor().get_id(), untouched);
    assert_eq!(t.stats.restarts("test"), 1);
    let last = t.stats.snapshot()["test"].last_error.clone().unwrap();
    assert!(last.contains("injected panic"), "{last}");
}

#[tokio::test(start_paused = true)]
async fn one_for_all_restarts_every_child() {
    let t = tree(policy(Strategy::OneForAll), 3).await;
    t.probes[0]
        .actor()
        .send_message(Cmd::Fail(Fault::Error))
        .unwrap();
    until(Duration::from_secs(5), || starts(&t) == [2, 2, 2]).await;
    assert_eq!(t.stats.restarts("test"), 3);
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let t = tree(policy(Strategy::RestForOne), 3).await;
    let first = t.probes[0].actor().get_id();
    t.probes[1]
        .actor()
        .send_message(Cmd::Fail(Fault::Error))
        .unwrap();
    until(Duration::from_secs(5), || starts(&t) == [1, 2, 2]).await;
    assert_eq!(t.probes[0].actor().get_id(), first);
}

#[tokio::test(start_paused = true)]
async fn a_hung_child_is_killed_and_restarted() {
    let policy = RestartPolicy {
        liveness_interval_ms: 1_000,
        liveness_timeout_ms: 3_000,
        ..policy(Strategy::OneForOne)
    };
    let t = tree(policy, 2).await;
    let hung = t.probes[0].actor();
    hung.send_message(Cmd::Fail(Fault::Hang)).unwrap();
    let started = Instant::now();
    until(Duration::from_secs(30), || starts(&t) == [2, 1]).await;
    // Detected by a ping that went unanswered for the timeout, not before.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    until(Duration::from_secs(5), || {
        hung.get_status() == ActorStatus::Stopped
    })
    .await;
    assert!(
        t.stats.snapshot()["test"]
            .last_error
            .clone()
            .unwrap()
            .starts_with("hung")
    );
}

#[tokio::test(start_paused = true)]
async fn restarts_back_off_exponentially() {
    let t = tree(policy(Strategy::OneForOne), 1).await;
    let mut restarted_after = Vec::new();
    for n in 1..=3 {
        let failed_at = Instant::now();
        t.probes[0]
            .actor()
            .send_message(Cmd::Fail(Fault::Error))
            .unwrap();
        until(Duration::from_secs(10), || t.probes[0].starts() == n + 1).await;
        restarted_after.push(failed_at.elapsed().as_millis() / 10 * 10);
    }
    // 200 ms, then 400, then 800 (no jitter in this policy), within polling granularity.
    assert_eq!(restarted_after, [200, 400, 800]);
}

#[tokio::test(start_paused = true)]
async fn exceeding_the_intensity_escalates_to_the_parent() {
    let policy = RestartPolicy {
        max_restarts: 3,
        window_ms: 60_000,
        ..policy(Strategy::OneForOne)
    };
    let mut t = tree(policy, 2).await;
    for n in 1..=3 {
        t.probes[0]
            .actor()
            .send_message(Cmd::Fail(Fault::Panic))
            .unwrap();
        until(Duration::from_secs(10), || t.probes[0].starts() == n + 1).await;
    }
    let sibling = t.probes[1].actor();
    t.probes[0]
        .actor()
        .send_message(Cmd::Fail(Fault::Panic))
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), t.events.recv())
        .await
        .expect("parent told")
        .expect("event");
    assert!(
        event.starts_with("failed: supervisor test: 4 restarts"),
        "{event}"
    );
    until(Duration::from_secs(5), || {
        sibling.get_status() == ActorStatus::Stopped
    })
    .await;
    assert_eq!(t.supervisor.get_status(), ActorStatus::Stopped);
}

#[tokio::test(start_paused = true)]
async fn restarts_outside_the_window_do_not_count() {
    let policy = RestartPolicy {
        max_restarts: 2,
        window_ms: 1_000,
        ..policy(Strategy::OneForOne)
    };
    let t = tree(policy, 1).await;
    for n in 1..=5 {
        t.probes[0]
            .actor()
            .send_message(Cmd::Fail(Fault::Error))
            .unwrap();
        until(Duration::from_secs(10), || t.probes[0].starts() == n + 1).await;
        tokio::time::sleep(Duration::from_secs(2)).await; // virtual: leaves the window
    }
    assert_eq!(t.stats.restarts("test"), 5);
    assert_eq!(t.supervisor.get_status(), ActorStatus::Running);
}

#[tokio::test(start_paused = true)]
async fn a_failing_restart_is_retried_with_backoff() {
    let t = tree(policy(Strategy::OneForOne), 1).await;
    t.probes[0].failing_starts.store(2, Ordering::SeqCst);
    t.probes[0]
        .actor()
        .send_message(Cmd::Fail(Fault::Error))
        .unwrap();
    until(Duration::from_secs(10), || t.probes[0].starts() == 2).await;
    let stats = t.stats.snapshot()["test"].clone();
    assert_eq!(stats.failures, 3, "the failure plus two failed restarts");
    assert!(stats.last_error.unwrap().contains("store unreachable"));
}

#[tokio::test(start_paused = true)]
async fn children_are_listed_with_their_state() {
    let t = tree(policy(Strategy::OneForOne), 2).await;
    let children = t
        .supervisor
        .call(SupervisorMsg::Children, None)
        .await
        .unwrap();
    let CallResult::Success(children) = children else {
        panic!("no answer")
    };
    assert_eq!(children.len(), 2);
    assert!(children.iter().all(|c| c.running && c.kind == "test"));
    assert_eq!(children[1].name, "child-1");
}
