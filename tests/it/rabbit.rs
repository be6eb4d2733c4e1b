//! A real RabbitMQ for the tests of `tests/amqp_bridge.rs` (the bridge as a library) and of
//! the `it` binary's `gateway_*.rs` (the gateway through the `corecast` binary): the broker
//! process and a service (the test's own AMQP client, playing the Trip and Driver services).
//!
//! [`Rabbit`] is Debian's `rabbitmq-server` in the foreground, with its files in a temporary
//! directory, free ports above 61000 for AMQP, distribution and a private `epmd`, and a unique
//! node name; stopped by PID when dropped. It takes about 5 s to start on the 2-core machine.
//! Without `rabbitmq-server` a test prints `SKIPPED` and returns (it checks nothing then); CI
//! installs it (`tools/setup.sh`), and under `CI=true` a missing one fails the test instead.
//!
//! One file for both test binaries (`#[path]` in `amqp_bridge.rs`): it uses nothing of either
//! but `fixture.rs` (which `amqp_bridge.rs` includes the same way).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::fixture::{can_run, free_port, require, signal, temp_dir};

/// Where Debian puts the server script that runs as the calling user (`/usr/sbin`'s wrapper
/// switches to the `rabbitmq` user and its fixed directories).
const SERVER_SCRIPT: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

// ---- the broker --------------------------------------------------------------------------

/// Whether the broker is installed (see [`require`]).
fn installed() -> bool {
    require(
        Path::new(SERVER_SCRIPT).exists() && can_run("epmd", "-help"),
        "rabbitmq-server",
        "amqp",
    )
}

/// A `rabbitmq-server` of one test, with a private `epmd`; both killed by PID on drop.
pub struct Rabbit {
    server: Option<Child>,
    epmd: Child,
    /// The AMQP port (kept across [`Rabbit::restart`]).
    pub port: u16,
    dist_port: u16,
    epmd_port: u16,
    name: String,
    dir: PathBuf,
}

impl Rabbit {
    /// Starts one and waits until it speaks AMQP; `None` (skip) when it is not installed. A
    /// broker that fails to boot (a port taken between the probe and its bind) is tried again
    /// on other ports, twice.
    pub fn start() -> Option<Rabbit> {
        static N: AtomicU64 = AtomicU64::new(0);
        if !installed() {
            return None;
        }
        for attempt in 1.. {
            let (port, dist_port, epmd_port) = (free_port(), free_port(), free_port());
            let n = N.fetch_add(1, Relaxed);
            let dir = temp_dir("rabbit", port);
            std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
            // A private epmd in the foreground, so that it is ours to stop.
            let epmd = Command::new("epmd")
                .args(["-port", &epmd_port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning epmd");
            let mut rabbit = Rabbit {
                server: None,
                epmd,
                port,
                dist_port,
                epmd_port,
                name: format!("corecast-it-{}-{n}@localhost", std::process::id()),
                dir,
            };
            match rabbit.spawn() {
                Ok(took) => {
                    eprintln!("rabbitmq-server on port {port} up in {took:.1?}");
                    return Some(rabbit);
                }
                Err(e) if attempt < 3 => eprintln!("rabbitmq-server did not boot; again: {e}"),
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Starts the server process (again) and waits for its AMQP listener; returns how long it
    /// took, or why it exited (its output).
    fn spawn(&mut self) -> Result<Duration, String> {
        let started = Instant::now();
        let log = std::fs::File::create(self.dir.join("server.out")).unwrap();
        let d = |p: &str| self.dir.join(p);
        let child = Command::new(SERVER_SCRIPT)
            .arg("-noinput")
            .env("HOME", &self.dir)
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", d("plugins"))
            .env("RABBITMQ_CONF_ENV_FILE", d("rabbitmq-env.conf"))
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d("advanced.config"))
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            // Exec the VM in place of the script (our child is the broker itself: killing it
            // by PID stops it) with input closed.
            .env("RABBITMQ_ALLOW_INPUT", "1")
            // One scheduler that sleeps when idle: the machine is small and shared.
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning rabbitmq-server");
        self.server = Some(child);
        let deadline = started + Duration::from_secs(90);
        while Instant::now() < deadline {
            if let Some(c) = self.server.as_mut() {
                if let Some(status) = c.try_wait().unwrap() {
                    self.server = None;
                    let out =
                        std::fs::read_to_string(self.dir.join("server.out")).unwrap_or_default();
                    return Err(format!("rabbitmq-server exited ({status}):\n{out}"));
                }
            }
            if self.speaks_amqp() {
                return Ok(started.elapsed());
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("rabbitmq-server on port {} did not start", self.port);
    }

    /// Whether the listener answers the AMQP 0-9-1 header with a method frame
    /// (`connection.start`).
    fn speaks_amqp(&self) -> bool {
        let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"AMQP\x00\x00\x09\x01").is_err() {
            return false;
        }
        let mut frame_type = [0u8; 1];
        s.read_exact(&mut frame_type).is_ok() && frame_type[0] == 1
    }

    /// SIGSTOP (`true`) or SIGCONT: the broker stalls with its connections open, as a frozen
    /// host would.
    #[allow(dead_code)] // tests/amqp_bridge.rs only
    pub fn pause(&self, stop: bool) {
        if let Some(c) = self.server.as_ref() {
            signal(c.id(), if stop { "STOP" } else { "CONT" });
        }
    }

    /// SIGKILL: a crash (durable queues and persistent messages survive on disk).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data (up to three tries: the ports of a broker
    /// just killed may take a moment to be free).
    pub fn restart(&mut self) -> Duration {
        assert!(self.server.is_none(), "restart of a running broker");
        for attempt in 1.. {
            match self.spawn() {
                Ok(took) => return took,
                Err(e) if attempt < 3 => {
                    eprintln!("rabbitmq-server did not boot again; once more: {e}");
                    thread::sleep(Duration::from_secs(1));
                }
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        self.kill();
        let _ = self.epmd.kill();
        let _ = self.epmd.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---- a service (the test's own AMQP client) ---------------------------------------------

/// What corecast publishes upstream carries: persistent (delivery mode 2), JSON.
pub fn assert_persistent_json(m: &lapin::message::BasicGetMessage) {
    assert_eq!(
        *m.delivery.properties.delivery_mode(),
        Some(2),
        "persistent"
    );
    assert_eq!(
        m.delivery
            .properties
            .content_type()
            .as_ref()
            .map(|c| c.as_str()),
        Some("application/json")
    );
}

/// A lapin client on a current-thread runtime, used blockingly.
pub struct Service {
    /// Runs the client's futures.
    pub rt: tokio::runtime::Runtime,
    /// The connection.
    pub conn: Connection,
    /// A channel in confirm mode.
    pub ch: Channel,
}

impl Service {
    /// Connects to `url` and opens a channel in confirm mode.
    pub fn connect(url: &str) -> Service {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (conn, ch) = rt.block_on(async {
            let props = ConnectionProperties::default()
                .with_executor(tokio_executor_trait::Tokio::current())
                .with_reactor(tokio_reactor_trait::Tokio::current());
            let conn = Connection::connect(url, props).await.unwrap();
            let ch = conn.create_channel().await.unwrap();
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .unwrap();
            (conn, ch)
        });
        Service { rt, conn, ch }
    }

    /// Declares a durable exchange.
    pub fn exchange(&self, name: &str, kind: ExchangeKind) {
        let opts = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        self.rt
            .block_on(
                self.ch
                    .exchange_declare(name, kind, opts, FieldTable::default()),
            )
            .unwrap();
    }

    /// Declares a durable queue bound to `exchange` with `keys`.
    pub fn queue(&self, name: &str, exchange: &str, keys: &[&str]) {
        self.rt.block_on(async {
            let opts = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            self.ch
                .queue_declare(name, opts, FieldTable::default())
                .await
                .unwrap();
            for k in keys {
                self.ch
                    .queue_bind(
                        name,
                        exchange,
                        k,
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .unwrap();
            }
        });
    }

    /// Publishes persistently and waits for the broker's confirm.
    pub fn publish(&self, exchange: &str, key: &str, body: &[u8], message_id: Option<&str>) {
        let mut props = BasicProperties::default().with_delivery_mode(2);
        if let Some(id) = message_id {
            props = props.with_message_id(id.into());
        }
        self.rt.block_on(async {
            let confirm = self
                .ch
                .basic_publish(exchange, key, BasicPublishOptions::default(), body, props)
                .await
                .unwrap()
                .await
                .unwrap();
            assert!(confirm.is_ack(), "publish to {key} not confirmed");
        });
    }

    /// Takes one message from `queue` (polling until `timeout`), acked.
    pub fn get(&self, queue: &str, timeout: Duration) -> Option<lapin::message::BasicGetMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self
                .rt
                .block_on(self.ch.basic_get(queue, BasicGetOptions { no_ack: true }))
                .unwrap();
            if m.is_some() || Instant::now() >= deadline {
                return m;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Messages ready in `queue` (passive declare).
    pub fn ready(&self, queue: &str) -> u32 {
        let opts = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        self.rt
            .block_on(self.ch.queue_declare(queue, opts, FieldTable::default()))
            .unwrap()
            .message_count()
    }

    /// Declares `queue` with `opts` and `args` on a fresh channel: whether the broker agrees
    /// (a mismatch with the existing queue closes that channel with 406).
    pub fn declare_matches(
        &self,
        queue: &str,
        opts: QueueDeclareOptions,
        args: FieldTable,
    ) -> bool {
        self.rt.block_on(async {
            let ch = self.conn.create_channel().await.unwrap();
            ch.queue_declare(queue, opts, args).await.is_ok()
        })
    }
}
