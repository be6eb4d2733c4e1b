//! The bridge thread: owns the node's AMQP connection (lapin on a tokio current-thread
//! runtime that lives and dies in this thread) and talks to the workers only through channels:
//! a crossbeam inbox plus a [`Notify`] the async loop awaits one way, the workers' own inboxes
//! (the [`Sink`]) the other.
//!
//! One loop iteration: take every command queued (publishes, acks, nacks), take every delivery
//! and confirm that is ready, hand the resulting events to the workers, wake each worker that
//! got one once, then await whatever comes next. Deliveries are parsed here ([`body::parse`]);
//! a malformed one is nacked without requeue at once. Acks, nacks and publishes are spawned as
//! tasks on the runtime, which first runs them in spawn order (the current-thread scheduler's
//! queue is FIFO), so each goes out without waiting for the one before and publishes keep
//! their order; the confirm of each publish comes back through an internal channel.
//!
//! When the connection fails (or a channel does: any error ends the session) the bridge
//! closes what is left, fails the publishes in flight (they may or may not have arrived: never
//! resent), tells every worker it is down, and reconnects with exponential backoff and full
//! jitter (100 ms → 10 s), declaring the topology again; publishes wait meanwhile in a bounded
//! backlog, sent in order once up. lapin itself runs one I/O thread per connection
//! (`lapin-io-loop`); this thread never blocks on it.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, TryRecvError};
use futures_core::Stream;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, Consumer, Event, ExchangeKind,
};
use tokio::sync::{mpsc, Notify};

use super::body::{self, Data};
use super::{AmqpCmd, AmqpConfig, AmqpEvent, AmqpShared, AmqpState, DeliveryTag, Sink};

/// First reconnect delay; it doubles up to [`BACKOFF_MAX`] (each wait is random in 0..delay).
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// The longest a connection and its topology may take to set up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stopping bridge waits for the confirms of what it published, and for the close.
const STOP_WAIT: Duration = Duration::from_secs(1);
/// The longest a publish waits for its confirm (a broker that blocks publishers under a
/// resource alarm, or a stalled connection the heartbeat has not caught yet). Beyond it the
/// publish counts as failed; it may still arrive.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(15);
/// The same connection failure is logged as a warning at most once per this period.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(60);
/// At most one log line about malformed bodies per this period.
const MALFORMED_LOG_EVERY: Duration = Duration::from_secs(10);
/// Deliveries taken per iteration before the workers are woken (fairness to the rest).
const DELIVERY_BUDGET: usize = 1024;

/// A publish waiting for the connection.
struct Publish {
    routing_key: String,
    body: Vec<u8>,
    worker: usize,
    token: u64,
}

/// How a publish ended, as its task saw it.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Confirmed,
    Unroutable,
    Nacked,
    Lost,
}

/// One connection with its two channels.
struct Session {
    conn: Connection,
    /// Topology, publishes (in confirm mode), depth checks.
    publish: Channel,
    /// The consumer (QoS, acks).
    consume: Channel,
    consumer: Consumer,
    /// The connection's events: an error (of the connection or of either channel) ends the
    /// session.
    events: Pin<Box<dyn Stream<Item = Event> + Send>>,
    /// Messages ready in the queue when it was declared.
    depth: u32,
}

/// Malformed bodies since the last log line.
#[derive(Default)]
struct MalformedLog {
    last: Option<Instant>,
    count: u64,
}

pub(super) struct Bridge {
    cfg: Arc<AmqpConfig>,
    uri: AMQPUri,
    inbox: Receiver<AmqpCmd>,
    notify: Arc<Notify>,
    shared: Arc<AmqpShared>,
    sink: Sink,
    /// Counts connections that came up: the generation of the delivery tags handed out.
    generation: u64,
    up: bool,
    /// Publishes sent while down, in order (bounded by `cfg.backlog`).
    backlog: VecDeque<Publish>,
    /// Publishes sent and not confirmed yet: id → (worker, token).
    in_flight: HashMap<u64, (usize, u64)>,
    next_id: u64,
    confirm_tx: mpsc::UnboundedSender<(u64, Outcome)>,
    confirm_rx: mpsc::UnboundedReceiver<(u64, Outcome)>,
    /// Workers handed an event this iteration: woken once at its end.
    to_wake: Vec<bool>,
    rng: u64,
    backoff: Duration,
    malformed: MalformedLog,
    /// The last connection failure logged as a warning, and when.
    last_error: Option<(String, Instant)>,
    /// Set by [`AmqpCmd::Stop`] or when every handle is gone.
    stopping: bool,
    /// Deliveries are handed to the workers from then on (`start_grace` after the start).
    consume_from: tokio::time::Instant,
}

impl Bridge {
    pub(super) fn new(
        cfg: AmqpConfig,
        uri: AMQPUri,
        inbox: Receiver<AmqpCmd>,
        notify: Arc<Notify>,
        shared: Arc<AmqpShared>,
        sink: Sink,
    ) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        let (confirm_tx, confirm_rx) = mpsc::unbounded_channel();
        Self {
            cfg: Arc::new(cfg),
            uri,
            inbox,
            notify,
            shared,
            sink,
            generation: 0,
            up: false,
            backlog: VecDeque::new(),
            in_flight: HashMap::new(),
            next_id: 0,
            confirm_tx,
            confirm_rx,
            to_wake: Vec::new(),
            rng: seed | 1,
            backoff: BACKOFF_MIN,
            malformed: MalformedLog::default(),
            last_error: None,
            stopping: false,
            // Set when the runtime runs (`main`).
            consume_from: tokio::time::Instant::now(),
        }
    }

    pub(super) fn run(self) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "amqp bridge cannot start its runtime");
                return;
            }
        };
        rt.block_on(self.main());
    }

    async fn main(mut self) {
        self.consume_from = tokio::time::Instant::now() + self.cfg.start_grace;
        while !self.stopping {
            match self.connect().await {
                Ok(mut session) => {
                    self.on_up(&session);
                    let reason = self.serve(&mut session).await;
                    let _ = tokio::time::timeout(STOP_WAIT, session.conn.close(200, "bye")).await;
                    self.on_down(&reason);
                }
                Err(e) => {
                    if self.stopping {
                        break;
                    }
                    self.log_connect_error(&e);
                }
            }
            if self.stopping {
                break;
            }
            let wait = self.next_backoff();
            self.idle(wait).await;
        }
        // What waited for a connection that will not come.
        for p in std::mem::take(&mut self.backlog) {
            self.fail(p.worker, p.token);
        }
        self.shared.stats.backlog.store(0, Relaxed);
        self.shared.set_state(AmqpState::Down);
        self.wake_workers();
    }

    /// Connects and declares the topology, handling commands meanwhile.
    async fn connect(&mut self) -> Result<Session, String> {
        let setup = connect(self.cfg.clone(), self.uri.clone());
        tokio::pin!(setup);
        let deadline = tokio::time::sleep(SETUP_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            self.wake_workers();
            tokio::select! {
                r = &mut setup => return r.map_err(|e| e.to_string()),
                _ = &mut deadline => return Err("connection setup timed out".into()),
                _ = self.notify.notified() => {
                    self.drain_inbox(None);
                    if self.stopping {
                        return Err("stopping".into());
                    }
                }
            }
        }
    }

    /// Waits `wait` before the next attempt, handling commands meanwhile.
    async fn idle(&mut self, wait: Duration) {
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        loop {
            self.drain_inbox(None);
            self.wake_workers();
            if self.stopping {
                return;
            }
            tokio::select! {
                _ = &mut deadline => return,
                _ = self.notify.notified() => {}
            }
        }
    }

    /// A failed attempt: a warning when the reason is new (an unreachable broker, a refused
    /// login, a queue declared before with other arguments) or a minute old, else debug.
    fn log_connect_error(&mut self, e: &str) {
        let now = Instant::now();
        let repeat = self
            .last_error
            .as_ref()
            .is_some_and(|(last, at)| last == e && now.duration_since(*at) < ERROR_LOG_EVERY);
        if repeat {
            tracing::debug!(error = %e, "amqp bridge cannot connect");
        } else {
            tracing::warn!(error = %e, url = %self.cfg.url_for_logs(), "amqp bridge cannot connect; retrying");
            self.last_error = Some((e.to_owned(), now));
        }
    }

    fn on_up(&mut self, s: &Session) {
        self.last_error = None;
        self.generation += 1;
        self.up = true;
        self.backoff = BACKOFF_MIN;
        self.shared.set_state(AmqpState::Up);
        self.shared
            .stats
            .queue_depth
            .store(u64::from(s.depth), Relaxed);
        tracing::info!(
            node = %self.cfg.node_id,
            queue = %self.cfg.queue,
            exchange = %self.cfg.exchange,
            "amqp bridge connected"
        );
        for w in 0..self.sink.workers {
            self.deliver(w, AmqpEvent::Up);
        }
        for p in std::mem::take(&mut self.backlog) {
            self.publish(s, p);
        }
        self.shared.stats.backlog.store(0, Relaxed);
    }

    fn on_down(&mut self, reason: &str) {
        // Confirms that arrived before the failure count; the rest may or may not have.
        while let Ok(c) = self.confirm_rx.try_recv() {
            self.on_confirm(c);
        }
        for (_, (worker, token)) in std::mem::take(&mut self.in_flight) {
            self.fail(worker, token);
        }
        self.up = false;
        self.shared.set_state(AmqpState::Down);
        if self.stopping {
            tracing::info!("amqp bridge stopped");
        } else {
            self.shared.stats.reconnects.fetch_add(1, Relaxed);
            tracing::warn!(error = %reason, "amqp bridge lost the broker; reconnecting");
        }
        for w in 0..self.sink.workers {
            self.deliver(w, AmqpEvent::Down);
        }
        self.wake_workers();
    }

    /// Runs a connected session until it fails or the bridge stops; returns why it ended.
    async fn serve(&mut self, s: &mut Session) -> String {
        // The queue depth, refreshed with a passive `queue.declare`.
        let every = self.cfg.depth_interval;
        let mut depth = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        depth.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let consume_from = self.consume_from;
        loop {
            self.drain_inbox(Some(&*s));
            if self.stopping {
                self.finish(s).await;
                return "stopping".into();
            }
            let consuming = tokio::time::Instant::now() >= consume_from;
            if let Err(e) = self.drain_ready(s, consuming) {
                return e;
            }
            self.wake_workers();
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep_until(consume_from), if !consuming => {}
                d = poll_fn(|cx| Pin::new(&mut s.consumer).poll_next(cx)), if consuming => {
                    if let Err(e) = self.on_consumed(s, d) {
                        return e;
                    }
                }
                Some(c) = self.confirm_rx.recv() => self.on_confirm(c),
                e = poll_fn(|cx| s.events.as_mut().poll_next(cx)) => {
                    if let Some(reason) = on_event(e) {
                        return reason;
                    }
                }
                _ = depth.tick() => self.refresh_depth(s),
            }
        }
    }

    /// Takes the deliveries and confirms that are ready without waiting.
    fn drain_ready(&mut self, s: &mut Session, consuming: bool) -> Result<(), String> {
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..if consuming { DELIVERY_BUDGET } else { 0 } {
            match Pin::new(&mut s.consumer).poll_next(&mut cx) {
                Poll::Ready(d) => self.on_consumed(s, d)?,
                Poll::Pending => break,
            }
        }
        while let Ok(c) = self.confirm_rx.try_recv() {
            self.on_confirm(c);
        }
        Ok(())
    }

    /// A stopping bridge lets the acks, nacks and publishes it spawned queue their frames
    /// (before the close frame), then waits briefly for the confirms of its publishes.
    async fn finish(&mut self, s: &mut Session) {
        // The tasks spawned so far run before this one is polled again (FIFO scheduler), and
        // each queues its frame on its first poll.
        tokio::task::yield_now().await;
        let deadline = tokio::time::sleep(STOP_WAIT);
        tokio::pin!(deadline);
        while !self.in_flight.is_empty() {
            self.wake_workers();
            tokio::select! {
                Some(c) = self.confirm_rx.recv() => self.on_confirm(c),
                e = poll_fn(|cx| s.events.as_mut().poll_next(cx)) => {
                    if on_event(e).is_some() {
                        break;
                    }
                }
                _ = &mut deadline => break,
            }
        }
    }

    /// Takes the workers' commands (`session` is `None` while down).
    fn drain_inbox(&mut self, session: Option<&Session>) {
        loop {
            let cmd = match self.inbox.try_recv() {
                Ok(cmd) => cmd,
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    // Every handle is gone: the server stopped without saying so.
                    self.stopping = true;
                    return;
                }
            };
            match cmd {
                AmqpCmd::Publish {
                    routing_key,
                    body,
                    worker,
                    token,
                } => {
                    let p = Publish {
                        routing_key,
                        body,
                        worker,
                        token,
                    };
                    match session {
                        Some(s) if !self.stopping => self.publish(s, p),
                        None if !self.stopping && self.backlog.len() < self.cfg.backlog => {
                            self.backlog.push_back(p);
                            self.shared
                                .stats
                                .backlog
                                .store(self.backlog.len() as u64, Relaxed);
                        }
                        _ => self.fail(p.worker, p.token),
                    }
                }
                AmqpCmd::Ack { tag } => {
                    if let Some(s) = session.filter(|_| tag.generation == self.generation) {
                        let ch = s.consume.clone();
                        tokio::spawn(async move {
                            let _ = ch.basic_ack(tag.tag, BasicAckOptions::default()).await;
                        });
                    }
                }
                AmqpCmd::Nack { tag } => {
                    if let Some(s) = session.filter(|_| tag.generation == self.generation) {
                        self.shared.stats.dead_lettered.fetch_add(1, Relaxed);
                        nack(&s.consume, tag.tag);
                    }
                }
                AmqpCmd::Stop => self.stopping = true,
            }
        }
    }

    /// Sends a publish on the session; its outcome comes back through `confirm_rx`.
    fn publish(&mut self, s: &Session, p: Publish) {
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight.insert(id, (p.worker, p.token));
        let ch = s.publish.clone();
        let tx = self.confirm_tx.clone();
        let cfg = self.cfg.clone();
        tokio::spawn(async move {
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into());
            let opts = BasicPublishOptions {
                mandatory: true,
                immediate: false,
            };
            let publish = async {
                let confirm = ch
                    .basic_publish(&cfg.exchange, &p.routing_key, opts, &p.body, props)
                    .await?;
                confirm.await
            };
            let outcome = match tokio::time::timeout(CONFIRM_TIMEOUT, publish).await {
                Ok(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) => Outcome::Confirmed,
                Ok(Ok(Confirmation::Ack(Some(_)))) => Outcome::Unroutable,
                Ok(Ok(Confirmation::Nack(_))) => Outcome::Nacked,
                Ok(Err(_)) | Err(_) => Outcome::Lost,
            };
            let _ = tx.send((id, outcome));
        });
    }

    fn on_confirm(&mut self, (id, outcome): (u64, Outcome)) {
        // Absent: failed already when its connection went down.
        let Some((worker, token)) = self.in_flight.remove(&id) else {
            return;
        };
        let stats = &self.shared.stats;
        let ok = match outcome {
            Outcome::Confirmed => {
                stats.published.fetch_add(1, Relaxed);
                true
            }
            Outcome::Unroutable => {
                stats.unroutable.fetch_add(1, Relaxed);
                stats.publish_failed.fetch_add(1, Relaxed);
                false
            }
            Outcome::Nacked | Outcome::Lost => {
                stats.publish_failed.fetch_add(1, Relaxed);
                false
            }
        };
        self.deliver(worker, AmqpEvent::Confirmed { token, ok });
    }

    /// A publish that will not be sent.
    fn fail(&mut self, worker: usize, token: u64) {
        self.shared.stats.publish_failed.fetch_add(1, Relaxed);
        self.deliver(worker, AmqpEvent::Confirmed { token, ok: false });
    }

    /// What the consumer stream yielded.
    fn on_consumed(
        &mut self,
        s: &Session,
        d: Option<lapin::Result<lapin::message::Delivery>>,
    ) -> Result<(), String> {
        match d {
            Some(Ok(d)) => {
                self.on_delivery(s, d);
                Ok(())
            }
            Some(Err(e)) => Err(format!("consumer failed: {e}")),
            None => Err("the broker cancelled the consumer".into()),
        }
    }

    fn on_delivery(&mut self, s: &Session, d: lapin::message::Delivery) {
        self.shared.stats.consumed.fetch_add(1, Relaxed);
        let parsed = body::parse(&d.data, &self.cfg.owner_field, self.cfg.data_encoding)
            .map(|p| (p.owner.into_owned(), p.data));
        let (owner, data) = match parsed {
            Ok((owner, Data::Span(r))) if r.end <= d.data.len() => {
                (owner, Bytes::from(d.data).slice(r))
            }
            Ok((owner, Data::Decoded(v))) => (owner, Bytes::from(v)),
            Ok((_, Data::Span(_))) => {
                self.malformed(s, &d, body::BodyError::Syntax(d.data.len()));
                return;
            }
            Err(e) => {
                self.malformed(s, &d, e);
                return;
            }
        };
        let worker = (self.sink.route)(&owner);
        let ev = AmqpEvent::Delivery {
            routing_key: d.routing_key.to_string(),
            owner,
            data,
            tag: DeliveryTag {
                generation: self.generation,
                tag: d.delivery_tag,
            },
            message_id: d.properties.message_id().as_ref().map(|m| m.to_string()),
            redelivered: d.redelivered,
        };
        self.deliver(worker, ev);
    }

    /// Dead-letters a body that did not parse; logs at most once per [`MALFORMED_LOG_EVERY`]
    /// (never the payload).
    fn malformed(&mut self, s: &Session, d: &lapin::message::Delivery, e: body::BodyError) {
        nack(&s.consume, d.delivery_tag);
        let stats = &self.shared.stats;
        stats.malformed.fetch_add(1, Relaxed);
        stats.dead_lettered.fetch_add(1, Relaxed);
        let log = &mut self.malformed;
        log.count += 1;
        let now = Instant::now();
        if log
            .last
            .is_none_or(|t| now.duration_since(t) >= MALFORMED_LOG_EVERY)
        {
            tracing::warn!(
                error = %e,
                routing_key = %d.routing_key,
                bytes = d.data.len(),
                dead_lettered = log.count,
                "amqp: malformed message bodies dead-lettered (this one and those since the last report)"
            );
            log.last = Some(now);
            log.count = 0;
        }
    }

    /// Refreshes the queue depth in the background (a passive declare on the publish channel).
    fn refresh_depth(&self, s: &Session) {
        let ch = s.publish.clone();
        let shared = self.shared.clone();
        let cfg = self.cfg.clone();
        tokio::spawn(async move {
            let opts = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            if let Ok(q) = ch
                .queue_declare(&cfg.queue, opts, FieldTable::default())
                .await
            {
                shared
                    .stats
                    .queue_depth
                    .store(u64::from(q.message_count()), Relaxed);
            }
        });
    }

    /// Hands `ev` to worker `w` (woken at the end of the iteration).
    fn deliver(&mut self, w: usize, ev: AmqpEvent) {
        (self.sink.deliver)(w, ev);
        if self.to_wake.len() < self.sink.workers {
            self.to_wake.resize(self.sink.workers, false);
        }
        if let Some(f) = self.to_wake.get_mut(w) {
            *f = true;
        }
    }

    fn wake_workers(&mut self) {
        for (w, f) in self.to_wake.iter_mut().enumerate() {
            if std::mem::take(f) {
                (self.sink.wake)(w);
            }
        }
    }

    /// Full jitter: a random wait in [0, backoff), then the backoff doubles.
    fn next_backoff(&mut self) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let wait = Duration::from_millis(self.rng % (self.backoff.as_millis() as u64).max(1));
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        wait
    }
}

/// What a connection event means: `Some(reason)` ends the session.
fn on_event(e: Option<Event>) -> Option<String> {
    match e {
        None => Some("connection ended".into()),
        Some(Event::Error(e)) => Some(e.to_string()),
        Some(Event::ConnectionBlocked(reason)) => {
            // A resource alarm: publishes stall until it clears (confirms come late).
            tracing::warn!(%reason, "amqp: the broker blocked this connection's publishes");
            None
        }
        Some(Event::ConnectionUnblocked) => {
            tracing::info!("amqp: the broker unblocked this connection's publishes");
            None
        }
        Some(_) => None,
    }
}

/// `basic.nack` without requeue, in the background.
fn nack(ch: &Channel, tag: u64) {
    let ch = ch.clone();
    tokio::spawn(async move {
        let opts = BasicNackOptions {
            multiple: false,
            requeue: false,
        };
        let _ = ch.basic_nack(tag, opts).await;
    });
}

/// Opens a connection and declares the topology (see the module documentation of `amqp`).
async fn connect(cfg: Arc<AmqpConfig>, uri: AMQPUri) -> lapin::Result<Session> {
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current())
        .with_connection_name(format!("corecast {}", cfg.node_id).into());
    let conn = Connection::connect_uri(uri, props).await?;
    // Before the channels exist: lapin reports events only while someone listens.
    let events = Box::pin(conn.events_listener());
    let publish = conn.create_channel().await?;
    let consume = conn.create_channel().await?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    publish
        .exchange_declare(
            &cfg.exchange,
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    let mut args = FieldTable::default();
    let expires = i64::try_from(cfg.queue_expires.as_millis()).unwrap_or(i64::MAX);
    args.insert("x-expires".into(), AMQPValue::LongLongInt(expires));
    if let Some(dlx) = &cfg.dead_letter_exchange {
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(dlx.as_str().into()),
        );
    }
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let queue = publish.queue_declare(&cfg.queue, durable, args).await?;
    for key in &cfg.bind {
        publish
            .queue_bind(
                &cfg.queue,
                &cfg.exchange,
                key,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    consume
        .basic_qos(cfg.prefetch, BasicQosOptions::default())
        .await?;
    let consumer = consume
        .basic_consume(
            &cfg.queue,
            &format!("corecast.{}", cfg.node_id),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(Session {
        conn,
        publish,
        consume,
        consumer,
        events,
        depth: queue.message_count(),
    })
}
