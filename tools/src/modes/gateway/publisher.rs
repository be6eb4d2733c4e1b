//! The gateway mode's publisher: one thread in worker process 0 plays the services of a
//! microservice system, publishing owner-addressed events to the broker's topic exchange at a
//! paced rate. It owns its AMQP connection (lapin on a tokio current-thread runtime that lives
//! and dies in the thread; lapin adds its own I/O thread) and shares only atomic counters and
//! two CPU samples with the workload. It also samples the CPU time of the gateway and the
//! broker at the edges of the measured window, so both figures cover the same instants.
//!
//! Publishing: every 1 ms step it sends the events due by then (`rate x elapsed`), each as a
//! task on the runtime (lapin writes a publish's frames when its task is first polled, and the
//! current-thread scheduler runs tasks in spawn order, so events leave in number order and
//! none waits for the one before). With confirms, a publish is in flight until the broker
//! acknowledges it; without, until its frames are written. At `max_in_flight` the publisher
//! skips steps (the broker pushes back) and catches up later: the achieved rate shows it.
//!
//! Knows the wire format of the events ([`super::body`]) and the broker; nothing about sockets
//! to the gateway.

use super::{body, owner_of};
use crate::cli::Addressing;
use crate::procstat;
use crate::report::{new_hist, record_ns};
use crate::sys::monotonic_ns;
use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Pacing step.
const STEP: Duration = Duration::from_millis(1);
/// How long the publisher waits for its last confirms after the run.
const CONFIRM_WAIT_NS: u64 = 10_000_000_000;
/// Connection and topology setup must finish within this.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);

/// What to publish.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub exchange: String,
    pub routing_key: String,
    pub owner_field: String,
    pub owner_prefix: String,
    pub owners: u64,
    pub addressing: Addressing,
    /// Events per second.
    pub rate: f64,
    /// Length of `data`, bytes.
    pub size: usize,
    pub confirm: bool,
    pub persistent: bool,
    pub max_in_flight: u64,
    /// Sampled for CPU time at the window's edges.
    pub server_pids: Vec<u32>,
    pub broker_pids: Vec<u32>,
}

/// When the run happens (CLOCK_MONOTONIC ns).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Publishing starts (the warm-up, then the measured window).
    pub start_ns: u64,
    pub measure_from_ns: u64,
    /// Publishing stops.
    pub end_ns: u64,
}

/// The publisher's state, as the workload sees it.
pub const CONNECTING: u8 = 0;
pub const READY: u8 = 1;
pub const FAILED: u8 = 2;
/// Done publishing, confirms in (or given up on).
pub const DONE: u8 = 3;

/// CPU seconds of the sampled processes over the measured window.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowCpu {
    pub wall_secs: f64,
    pub server_cpu_secs: f64,
    pub broker_cpu_secs: f64,
}

/// What the thread shares with the workload.
#[derive(Debug, Default)]
pub struct Shared {
    pub state: AtomicU8,
    /// Events handed to the broker connection (frames written).
    pub published: AtomicU64,
    /// Of those, sent within the measured window.
    pub published_measured: AtomicU64,
    /// Confirmed by the broker and routed to a queue.
    pub confirmed: AtomicU64,
    /// Confirmed but returned (no queue bound for the key).
    pub returned: AtomicU64,
    pub nacked: AtomicU64,
    /// Publishes or confirms that failed with the connection.
    pub failed: AtomicU64,
    pub in_flight: AtomicU64,
    /// Steps in which the in-flight bound held publishes back.
    pub held_back_steps: AtomicU64,
    /// Most events due and not yet sent at a step's end.
    pub max_behind: AtomicU64,
    pub error: Mutex<Option<String>>,
    pub window_cpu: Mutex<Option<WindowCpu>>,
    /// Publish -> confirm (or -> written, without confirms) of the events published in the
    /// measured window, in µs: how long the broker takes to accept an event.
    pub confirm_us: Mutex<Option<Histogram<u64>>>,
}

impl Shared {
    pub fn state(&self) -> u8 {
        self.state.load(Relaxed)
    }

    fn fail(&self, e: &anyhow::Error) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert_with(|| format!("{e:#}"));
        }
        self.state.store(FAILED, Relaxed);
    }
}

/// The workload's handle on the publisher thread.
pub struct Publisher {
    pub shared: Arc<Shared>,
    start: Option<oneshot::Sender<Window>>,
    stop: Arc<AtomicBool>,
    confirm: bool,
}

impl Publisher {
    /// Starts the thread, which connects and declares the exchange at once.
    pub fn spawn(plan: Plan) -> Result<Self> {
        check_loopback(&plan.url)?;
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = oneshot::channel();
        let (s, st, confirm) = (shared.clone(), stop.clone(), plan.confirm);
        std::thread::Builder::new()
            .name("gateway-publisher".into())
            .spawn(move || run(plan, &s, &st, rx))
            .context("starting the publisher thread")?;
        Ok(Publisher {
            shared,
            start: Some(tx),
            stop,
            confirm,
        })
    }

    /// Publishing runs over `w` (once).
    pub fn start(&mut self, w: Window) {
        if let Some(tx) = self.start.take() {
            let _ = tx.send(w);
        }
    }

    /// Whether the broker confirms each publish.
    pub fn confirms(&self) -> bool {
        self.confirm
    }

    /// Stop publishing now (the run ended early).
    pub fn stop(&self) {
        self.stop.store(true, Relaxed);
    }
}

/// Refuses a broker that is not on this machine.
pub fn check_loopback(url: &str) -> Result<()> {
    let uri: lapin::uri::AMQPUri = url
        .parse()
        .map_err(|e| anyhow::anyhow!("--amqp-url: {e}"))?;
    if uri.scheme != lapin::uri::AMQPScheme::AMQP {
        bail!("--amqp-url: only amqp:// (a broker on this machine) is supported");
    }
    let host = uri
        .authority
        .host
        .trim_start_matches('[')
        .trim_end_matches(']');
    let addrs: Vec<_> = (host, uri.authority.port)
        .to_socket_addrs()
        .with_context(|| format!("--amqp-url: cannot resolve {host:?}"))?
        .collect();
    if addrs.is_empty() || !addrs.iter().all(|a| crate::cli::is_local(a.ip())) {
        bail!("--amqp-url: {host} is not a loopback address: only 127.0.0.0/8 and ::1 are allowed");
    }
    Ok(())
}

fn run(plan: Plan, shared: &Arc<Shared>, stop: &AtomicBool, start: oneshot::Receiver<Window>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return shared.fail(&anyhow::Error::from(e).context("publisher runtime")),
    };
    if let Err(e) = rt.block_on(publish(plan, shared, stop, start)) {
        shared.fail(&e);
    }
}

async fn publish(
    plan: Plan,
    shared: &Arc<Shared>,
    stop: &AtomicBool,
    start: oneshot::Receiver<Window>,
) -> Result<()> {
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current())
        .with_connection_name("corecast-load gateway publisher".into());
    let setup = async {
        let conn = Connection::connect(&plan.url, props).await?;
        let ch = conn.create_channel().await?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        ch.exchange_declare(
            &plan.exchange,
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
        if plan.confirm {
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
        }
        lapin::Result::Ok((conn, ch))
    };
    let (conn, ch) = tokio::time::timeout(SETUP_TIMEOUT, setup)
        .await
        .context("connecting to the broker timed out")?
        .context("connecting to the broker")?;
    shared.state.store(READY, Relaxed);
    let Ok(w) = start.await else {
        return Ok(()); // the run ended before it started
    };

    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(if plan.persistent { 2 } else { 1 });
    let opts = BasicPublishOptions {
        mandatory: true,
        immediate: false,
    };
    let exchange: Arc<str> = plan.exchange.as_str().into();
    let key: Arc<str> = plan.routing_key.as_str().into();
    let body_len = body::body_len(&plan.owner_field, &plan.owner_prefix, plan.size);
    let mut window_start = None;
    let mut n: u64 = 0;
    let mut step = tokio::time::interval(STEP);
    step.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::time::sleep(Duration::from_nanos(
        w.start_ns.saturating_sub(monotonic_ns()),
    ))
    .await;
    loop {
        step.tick().await;
        let now = monotonic_ns();
        if window_start.is_none() && now >= w.measure_from_ns {
            window_start = Some(sample(&plan, now));
        }
        if now >= w.end_ns || stop.load(Relaxed) || shared.state() == FAILED {
            break;
        }
        let due = ((now.saturating_sub(w.start_ns)) as f64 / 1e9 * plan.rate) as u64 + 1;
        let measured = now >= w.measure_from_ns;
        while n < due {
            if shared.in_flight.load(Relaxed) >= plan.max_in_flight {
                shared.held_back_steps.fetch_add(1, Relaxed);
                break;
            }
            let owner = owner_of(n, plan.owners, plan.addressing);
            let mut payload = Vec::with_capacity(body_len);
            let sent_ns = monotonic_ns();
            body::write_body(
                &mut payload,
                &plan.owner_field,
                &plan.owner_prefix,
                owner,
                n,
                sent_ns,
                plan.size,
            );
            shared.in_flight.fetch_add(1, Relaxed);
            shared.published.fetch_add(1, Relaxed);
            if measured {
                shared.published_measured.fetch_add(1, Relaxed);
            }
            let (ch, exchange, key, props, s) = (
                ch.clone(),
                exchange.clone(),
                key.clone(),
                props.clone(),
                shared.clone(),
            );
            let confirm = plan.confirm;
            tokio::spawn(async move {
                let outcome = match ch
                    .basic_publish(&exchange, &key, opts, &payload, props)
                    .await
                {
                    Ok(c) if confirm => c.await,
                    Ok(_) => Ok(Confirmation::NotRequested),
                    Err(e) => Err(e),
                };
                let counter = match outcome {
                    Ok(Confirmation::Ack(None)) => Some(&s.confirmed),
                    Ok(Confirmation::Ack(Some(_))) => Some(&s.returned),
                    Ok(Confirmation::Nack(_)) => Some(&s.nacked),
                    Ok(Confirmation::NotRequested) => None, // written: `published` says it
                    Err(_) => Some(&s.failed),
                };
                if let Some(c) = counter {
                    c.fetch_add(1, Relaxed);
                }
                if measured {
                    if let Ok(mut h) = s.confirm_us.lock() {
                        record_ns(
                            h.get_or_insert_with(new_hist),
                            monotonic_ns().saturating_sub(sent_ns),
                        );
                    }
                }
                s.in_flight.fetch_sub(1, Relaxed);
            });
            n += 1;
        }
        shared.max_behind.fetch_max(due.saturating_sub(n), Relaxed);
    }
    let end = sample(&plan, monotonic_ns());
    if let (Some(Some(a)), Some(b)) = (window_start, end) {
        if let Ok(mut slot) = shared.window_cpu.lock() {
            *slot = Some(WindowCpu {
                wall_secs: (b.0.saturating_sub(a.0)) as f64 / 1e9,
                server_cpu_secs: (b.1 - a.1).max(0.0),
                broker_cpu_secs: (b.2 - a.2).max(0.0),
            });
        }
    }
    // The last confirms (or writes).
    let deadline = monotonic_ns() + CONFIRM_WAIT_NS;
    while shared.in_flight.load(Relaxed) > 0 && monotonic_ns() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if shared.state() != FAILED {
        shared.state.store(DONE, Relaxed);
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "bye")).await;
    Ok(())
}

/// (time, server CPU, broker CPU), or `None` when a process cannot be read (it exited).
fn sample(plan: &Plan, now: u64) -> Option<(u64, f64, f64)> {
    let server = procstat::sample_all(&plan.server_pids).ok()?;
    let broker = procstat::sample_all(&plan.broker_pids).ok()?;
    Some((now, server.cpu_secs, broker.cpu_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_broker_on_this_machine() {
        for ok in [
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            "amqp://127.0.0.2:1/vhost",
            "amqp://localhost:5672",
            "amqp://[::1]:5672/%2f",
        ] {
            assert!(check_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "amqp://guest:guest@10.0.0.1:5672/%2f",
            "amqps://127.0.0.1/%2f",
            "http://127.0.0.1",
            "amqp://0.0.0.0:5672",
        ] {
            assert!(check_loopback(bad).is_err(), "{bad}");
        }
    }
}
