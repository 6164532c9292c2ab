//! Making a scenario's fault: the Toxiproxy routes a network fault needs, injecting the
//! fault and holding it, and waiting for a cluster to be whole again.

use crate::backend::{Action, Backend, Service};
use crate::instance::{Instance, Run, env_port, free_port};
use crate::scenario::{Fault, Link, Schedule};
use crate::toxiproxy::Toxiproxy;
use crate::watch::wait_for;
use anyhow::{Context, bail};
use std::time::{Duration, Instant};
use tributary::config::Config;

/// Creates Toxiproxy proxy `proxy` in front of `link`'s store and returns the
/// environment that makes tributary reach the store through it.
pub(crate) async fn route_through_proxy(
    toxiproxy: &Toxiproxy,
    proxy: &str,
    link: Link,
    config: &Config,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = Vec::new();
    let (listen, upstream) = match link {
        Link::Postgres => {
            let port = free_port()?;
            env.push(("TRIBUTARY__POSTGRES__PORT".into(), port.to_string()));
            (
                format!("127.0.0.1:{port}"),
                format!("{}:{}", config.postgres.host, config.postgres.port),
            )
        }
        Link::Kafka => {
            // The broker's PROXIED listener advertises the proxy's address (stack.sh).
            let (proxy_port, proxied_port) = (
                env_port("TRIBUTARY_STACK_KAFKA_PROXY_PORT", 29092),
                env_port("TRIBUTARY_STACK_KAFKA_PROXIED_PORT", 9094),
            );
            env.push((
                "TRIBUTARY__KAFKA__BOOTSTRAP_SERVERS".into(),
                format!("127.0.0.1:{proxy_port}"),
            ));
            (
                format!("127.0.0.1:{proxy_port}"),
                format!("127.0.0.1:{proxied_port}"),
            )
        }
        Link::Cassandra => {
            let port = free_port()?;
            let node = config
                .cassandra
                .contact_points
                .first()
                .cloned()
                .unwrap_or_else(|| "127.0.0.1:9042".into());
            env.push((
                "TRIBUTARY__CASSANDRA__CONTACT_POINTS".into(),
                format!("127.0.0.1:{port}"),
            ));
            // The node reports its own address: translate it to the proxy; the driver
            // also looks up the contact point itself, which maps to itself.
            let proxy_address = format!("127.0.0.1:{port}");
            env.push((
                "TRIBUTARY__CASSANDRA__ADDRESS_TRANSLATION".into(),
                format!("{node}={proxy_address},{proxy_address}={proxy_address}"),
            ));
            (format!("127.0.0.1:{port}"), node)
        }
    };
    toxiproxy.proxy(proxy, &listen, &upstream).await?;
    Ok(env)
}

/// The embedded source of a scenario, at a fixed address.
pub(crate) struct Source {
    pub config: tributary::source::Config,
    pub address: std::net::SocketAddr,
    pub running: Option<tributary::source::server::ServerHandle>,
}

/// Injects the fault, holds it for the scheduled time, and heals.
pub(crate) async fn inject(
    run: &mut Run<'_>,
    backend: &Backend,
    toxiproxy: &Toxiproxy,
    proxy: &str,
    source: &mut Source,
    fault: Fault,
    schedule: Schedule,
) -> anyhow::Result<()> {
    let hold = Duration::from_millis(schedule.hold_ms);
    let act = |action, service| backend.call(move |b| b.run(action, service));
    match fault {
        Fault::Kill(service) => {
            act(Action::Kill, service).await?;
            tokio::time::sleep(hold).await;
            act(Action::Start, service).await?;
        }
        Fault::Pause(service) => {
            act(Action::Pause, service).await?;
            tokio::time::sleep(hold).await;
            act(Action::Resume, service).await?;
        }
        Fault::KillTributary => {
            run.instances.iter_mut().for_each(Instance::kill);
            run.instances.clear();
            tokio::time::sleep(hold).await;
            run.start_instance()?;
        }
        Fault::RepeatedKills(times) => {
            for _ in 0..times {
                run.instances.iter_mut().for_each(Instance::kill);
                run.instances.clear();
                run.start_instance()?;
                tokio::time::sleep(hold / 2).await;
            }
        }
        Fault::Link(_, toxic) => {
            toxiproxy.add(proxy, toxic).await?;
            tokio::time::sleep(hold).await;
            toxiproxy.remove(proxy, toxic).await?;
        }
        Fault::Panic(kind) => {
            let url = run
                .instances
                .first()
                .map(|i| i.url(&format!("/test/panic/{kind}")))
                .context("no tributary instance")?;
            let response = reqwest::Client::new()
                .post(url)
                .send()
                .await
                .context("admin endpoint")?;
            if !response.status().is_success() {
                bail!("arming a {kind} panic: {}", response.status());
            }
            tokio::time::sleep(hold).await;
        }
        Fault::SourceOutage => {
            if let Some(running) = source.running.take() {
                running.stop(false).await;
            }
            tokio::time::sleep(hold).await;
            source.running = Some(tributary::source::server::spawn_at(
                &source.config,
                source.address,
            )?);
        }
        Fault::KillBroker(role) => {
            let (raw, id) = (
                run.config.kafka.topics.raw.name.clone(),
                run.config.publish.transactional_id.clone(),
            );
            let node = backend.call(move |b| b.who(role, &raw, &id)).await?;
            say(&format!("{role:?} is broker {node}: SIGKILL"));
            act(Action::Kill, Service::KafkaNode(node)).await?;
            tokio::time::sleep(hold).await;
            act(Action::Start, Service::KafkaNode(node)).await?;
        }
        Fault::RollingRestart(store) => {
            for node in 1..=CLUSTER_NODES {
                act(Action::Stop, store.node(node)).await?;
                act(Action::Start, store.node(node)).await?;
                // As an operator does: the next node only once every replica is in
                // sync again and the ring is whole.
                wait_whole(backend).await?;
            }
        }
        Fault::Partition { minority } => {
            if minority {
                let cgroup = backend.call(|b| b.node_cgroup(PARTITIONED_NODE)).await?;
                run.start_instance_in(Some(&cgroup))?;
                let second = run.instances.len() - 1;
                // It owns partitions (a writer of its own claimed one): the cut then
                // leaves a writer on the minority side, which must be fenced, not
                // merely an instance that never joined.
                wait_for(Duration::from_secs(90), async || {
                    run.instances[second]
                        .log_text()
                        .contains("\"message\":\"partition claimed\"")
                        .then_some(())
                })
                .await
                .context("the minority instance never claimed a partition")?;
            }
            backend.call(|b| b.partition(PARTITIONED_NODE)).await?;
            tokio::time::sleep(hold).await;
            backend.call(Backend::heal).await?;
        }
        Fault::Disconnect(service) => {
            act(Action::Disconnect, service).await?;
            tokio::time::sleep(hold).await;
            act(Action::Connect, service).await?;
        }
        Fault::PauseTributary | Fault::DisconnectTributary => {
            let container = run
                .instances
                .first()
                .context("no tributary instance")?
                .container()?
                .to_owned();
            let pause = fault == Fault::PauseTributary;
            let name = container.clone();
            backend
                .call(move |b| {
                    if pause {
                        b.docker(&["pause", &name])
                    } else {
                        b.disconnect(&name)
                    }
                })
                .await?;
            tokio::time::sleep(hold).await;
            backend
                .call(move |b| {
                    if pause {
                        b.unpause(&container)
                    } else {
                        b.connect(&container, None)
                    }
                })
                .await?;
        }
        Fault::ComposeUp => bail!("compose-up is a scenario of its own, not a fault to inject"),
        Fault::KillSecondInstanceDuringRebalance => {
            run.start_instance()?;
            let second = run.instances.len() - 1;
            // It joined the group: the rebalance that hands it partitions is under way.
            let joined = wait_for(Duration::from_secs(60), async || {
                run.instances[second]
                    .log_text()
                    .contains("coordinator joined the consumer group")
                    .then_some(())
            })
            .await;
            joined.context("the second instance never joined the group")?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            // Gone for good: the instances left are the ones that run (the soak samples
            // the last one; its log stays in `run.logs`).
            run.instances.remove(second).kill();
            tokio::time::sleep(hold).await;
        }
    }
    Ok(())
}

/// Nodes of each store in the cluster stack.
const CLUSTER_NODES: u8 = 3;

/// The node a partition cuts off: one of three, so that a quorum stands on the rest.
const PARTITIONED_NODE: u8 = 3;

/// Waits until the cluster is whole again: every node up, every replica in sync, one
/// schema version, no hints pending (`stack.sh status` of the cluster profile). A node
/// left on an old schema version for a minute is restarted (`schema-resync`): Cassandra
/// does not pull the schema again by itself after a failed schema change.
pub(crate) async fn wait_whole(backend: &Backend) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut resynced = false;
    loop {
        let Err(why) = backend.call(|b| Ok(b.whole())).await? else {
            return Ok(());
        };
        if !resynced
            && why.contains("schema versions disagree")
            && started.elapsed() > Duration::from_secs(60)
        {
            say(&format!("{why}: restarting the nodes left behind"));
            backend.call(Backend::schema_resync).await?;
            resynced = true;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the cluster was not whole within 300 s: {why}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// A line of the runner's own progress on stderr.
pub(crate) fn say(line: &str) {
    eprintln!("chaos:   {line}");
}
