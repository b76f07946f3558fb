//! A real `redis-server` process per test.
//!
//! The server flavour comes from the environment: `BRISK_TEST_SERVER` names the server program
//! (a name in `PATH` or a path, e.g. a `valkey-server`) and `BRISK_TEST_CLI` the matching
//! command-line client; by default they are Debian's `redis-server` and `redis-cli`.
//!
//! Each server gets its own temporary directory (config file, log, Unix socket, certificates)
//! and a free loopback port. The port is found by binding `127.0.0.1:0` and closing the socket,
//! so another process can take it before redis-server binds it: a server that exits at startup
//! because its port was taken is started again on a new port.
//!
//! Every server also listens on a Unix socket in its directory. Readiness is checked over that
//! socket (`PING` answered, with `+PONG` or with `-NOAUTH`: either proves our process is up), so it
//! works the same with passwords, ACLs and TLS, and can never reach another test's server that
//! happens to have the port. Redis binds all its listeners before serving, so once the socket
//! answers, the TCP or TLS port is ready too.

use super::tls::{self, TlsFiles};
use brisk::Config;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to answer after it was started.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// Attempts at finding a port redis-server can bind.
const PORT_ATTEMPTS: usize = 5;

/// The server program tests start: `$BRISK_TEST_SERVER`, or `redis-server`.
pub fn server_program() -> String {
    env_or("BRISK_TEST_SERVER", "redis-server")
}

/// The command-line client that goes with it: `$BRISK_TEST_CLI`, or `redis-cli`.
pub fn cli_program() -> String {
    env_or("BRISK_TEST_CLI", "redis-cli")
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Configures a [`RedisServer`] before starting it.
#[derive(Default)]
pub struct RedisServerBuilder {
    lines: Vec<String>,
    password: Option<String>,
    tls: bool,
    tls_auth_clients: bool,
}

impl RedisServerBuilder {
    /// Adds a line to redis.conf, e.g. `user alice on >secret ~* &* +@all`.
    pub fn config(mut self, line: &str) -> Self {
        self.lines.push(line.to_owned());
        self
    }

    /// `requirepass`: the default user needs this password.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// Serves TLS only (`port 0`, `tls-port`), with certificates made for this server.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// TLS that also requires a client certificate signed by the test CA.
    pub fn tls_require_client_cert(mut self) -> Self {
        self.tls = true;
        self.tls_auth_clients = true;
        self
    }

    /// Starts the server and waits until it answers. Panics (with the server log) on failure.
    pub fn start(self) -> RedisServer {
        let dir = fresh_dir();
        let tls = self.tls.then(|| tls::generate(&dir));
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            fs::write(dir.join("redis.conf"), self.conf(&dir, port, tls.as_ref()))
                .expect("write redis.conf");
            let _ = fs::remove_file(dir.join("redis.log"));
            // Config errors go to stderr (the log file is not open yet).
            let output = fs::File::create(dir.join("redis.out")).expect("create redis.out");
            let mut child = Command::new(server_program())
                .arg(dir.join("redis.conf"))
                .stdin(Stdio::null())
                .stdout(output.try_clone().expect("clone file handle"))
                .stderr(output)
                .spawn()
                .unwrap_or_else(|e| panic!("start {} (is it installed?): {e}", server_program()));
            match wait_ready(&mut child, &dir, 0) {
                Ready::Yes => {
                    return RedisServer {
                        child,
                        dir,
                        port,
                        tls,
                        password: self.password,
                        exited: false,
                    };
                }
                // The child has exited; try another port.
                Ready::PortTaken => last_log = read_log(&dir),
                Ready::Failed(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = read_log(&dir);
                    let _ = fs::remove_dir_all(&dir);
                    panic!("{} failed: {why}\n{log}", server_program());
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
        panic!(
            "{} found no free port in {PORT_ATTEMPTS} attempts; last log:\n{last_log}",
            server_program()
        );
    }

    fn conf(&self, dir: &Path, port: u16, tls: Option<&TlsFiles>) -> String {
        let mut conf = vec![
            "bind 127.0.0.1".to_owned(),
            format!("dir {}", dir.display()),
            "save \"\"".to_owned(),
            "appendonly no".to_owned(),
            "daemonize no".to_owned(),
            format!("logfile {}", dir.join("redis.log").display()),
            format!("unixsocket {}", socket_path(dir).display()),
            "unixsocketperm 700".to_owned(),
        ];
        match tls {
            None => conf.push(format!("port {port}")),
            Some(files) => conf.extend([
                "port 0".to_owned(),
                format!("tls-port {port}"),
                format!("tls-cert-file {}", files.server_cert.display()),
                format!("tls-key-file {}", files.server_key.display()),
                format!("tls-ca-cert-file {}", files.ca_cert.display()),
                format!(
                    "tls-auth-clients {}",
                    if self.tls_auth_clients { "yes" } else { "no" }
                ),
            ]),
        }
        if let Some(password) = &self.password {
            conf.push(format!("requirepass {password}"));
        }
        conf.extend(self.lines.iter().cloned());
        conf.join("\n") + "\n"
    }
}

/// A running `redis-server`, killed and its directory removed on drop.
pub struct RedisServer {
    child: Child,
    dir: PathBuf,
    port: u16,
    tls: Option<TlsFiles>,
    password: Option<String>,
    exited: bool,
}

enum Ready {
    Yes,
    PortTaken,
    Failed(String),
}

impl RedisServer {
    /// A plain server with the default configuration.
    pub fn start() -> RedisServer {
        RedisServer::builder().start()
    }

    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The TCP port (the TLS port for a TLS server).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://...` for a TLS server. No credentials.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://{}:{}", self.host(), self.port)
    }

    /// A config for this server: its URL, and for TLS the test CA.
    pub fn config(&self) -> Config {
        let mut config = Config::default();
        config.set_url(&self.url()).expect("server URL");
        if let Some(files) = &self.tls {
            config.tls.ca_file = Some(files.ca_cert.clone());
        }
        config
    }

    /// The Unix socket the server listens on (always, also for TLS servers).
    pub fn unix_path(&self) -> PathBuf {
        socket_path(&self.dir)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The certificate files; panics for a server started without TLS.
    #[track_caller]
    pub fn tls(&self) -> &TlsFiles {
        self.tls.as_ref().expect("server was started without TLS")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Freezes the server (SIGSTOP): the kernel still accepts connections and buffers requests,
    /// but nothing is answered.
    pub fn sigstop(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Resumes a server frozen by [`RedisServer::sigstop`].
    pub fn sigcont(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Kills the server now (SIGKILL) and waits for it; the directory stays until drop.
    pub fn kill(&mut self) {
        self.reap();
    }

    fn signal(&self, signal: libc::c_int) {
        assert!(!self.exited, "the server was already killed");
        // SAFETY: plain syscall on our own child, which has not been reaped (so the pid is ours).
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.pid());
    }

    fn reap(&mut self) {
        if !self.exited {
            // SIGKILL also ends a stopped process.
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.exited = true;
        }
    }

    /// Kills the server (SIGKILL, if it still runs) and starts a new `redis-server` on the same
    /// port, in the same directory, with the same configuration; returns once it answers. The
    /// data set starts empty (nothing is saved). Clients see a real restart: their connections
    /// are closed, connects are refused while it is down, and the same address works again.
    pub fn restart(&mut self) {
        self.reap();
        self.start_again();
    }

    /// Starts `redis-server` again on the same port after [`RedisServer::kill`] and waits until
    /// it answers. A port briefly held by someone else is tried again until the start deadline.
    pub fn start_again(&mut self) {
        assert!(self.exited, "the server is still running");
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let log_from =
                fs::read_to_string(self.dir.join("redis.log")).map_or(0, |log| log.len());
            let output = fs::File::create(self.dir.join("redis.out")).expect("create redis.out");
            let mut child = Command::new(server_program())
                .arg(self.dir.join("redis.conf"))
                .stdin(Stdio::null())
                .stdout(output.try_clone().expect("clone file handle"))
                .stderr(output)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", server_program()));
            match wait_ready(&mut child, &self.dir, log_from) {
                Ready::Yes => {
                    self.child = child;
                    self.exited = false;
                    return;
                }
                Ready::PortTaken if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ready::PortTaken => panic!(
                    "port {} stayed taken for {START_DEADLINE:?}:\n{}",
                    self.port,
                    self.log()
                ),
                Ready::Failed(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{} failed to start again: {why}\n{}",
                        server_program(),
                        self.log()
                    );
                }
            }
        }
    }

    /// Kills the server and starts it again on a new port (same directory and configuration
    /// otherwise), as when a node is rescheduled elsewhere. Returns once it answers.
    pub fn move_to_new_port(&mut self) {
        self.reap();
        let conf_path = self.dir.join("redis.conf");
        let conf = fs::read_to_string(&conf_path).expect("read redis.conf");
        let new_port = free_port();
        let moved: Vec<String> = conf
            .lines()
            .map(|line| match line.strip_prefix("port ") {
                Some(_) => format!("port {new_port}"),
                None => line.to_owned(),
            })
            .collect();
        fs::write(&conf_path, moved.join("\n") + "\n").expect("write redis.conf");
        self.port = new_port;
        self.start_again();
    }

    /// Runs `redis-cli` ([`cli_program`]) over the Unix socket (authenticated as the default
    /// user when the server has a password) and returns its output, trimmed. Panics when it
    /// fails.
    #[track_caller]
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new(cli_program());
        command.arg("-s").arg(self.unix_path());
        if let Some(password) = &self.password {
            command.args(["--no-auth-warning", "-a", password]);
        }
        let out = command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", cli_program()));
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            cli_program(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The integer value of `key` (0 when missing), read with redis-cli.
    #[track_caller]
    pub fn counter(&self, key: &str) -> i64 {
        let value = self.cli(&["GET", key]);
        if value.is_empty() {
            0
        } else {
            value.parse().expect("an integer value")
        }
    }

    /// A field of `INFO <section>` (`connected_clients`, `blocked_clients`, ...).
    #[track_caller]
    pub fn info_field(&self, section: &str, field: &str) -> u64 {
        let info = self.cli(&["INFO", section]);
        let prefix = format!("{field}:");
        info.lines()
            .find_map(|l| l.trim().strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {field} in INFO {section}: {info}"))
            .parse()
            .expect("a number")
    }

    /// Normal clients connected to the server, not counting the redis-cli asking.
    pub fn normal_clients(&self) -> u64 {
        self.info_field("clients", "connected_clients") - 1
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        read_log(&self.dir)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.reap();
        if std::thread::panicking() {
            // Shown with the failing test's output.
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            eprintln!(
                "--- {} log tail ({}) ---",
                server_program(),
                self.dir.join("redis.log").display()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Polls until the server answers on its Unix socket, exits, or the deadline passes. Only the
/// log written after byte `log_from` of redis.log is searched for a port conflict.
fn wait_ready(child: &mut Child, dir: &Path, log_from: usize) -> Ready {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = read_log(dir);
            return if log
                .get(log_from..)
                .unwrap_or(&log)
                .contains("Address already in use")
            {
                Ready::PortTaken
            } else {
                Ready::Failed(format!("exited at startup with {status}"))
            };
        }
        if answers_ping(&socket_path(dir)) {
            return Ready::Yes;
        }
        if Instant::now() >= deadline {
            return Ready::Failed(format!("no answer within {START_DEADLINE:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The server's log file, then whatever it printed (config errors).
fn read_log(dir: &Path) -> String {
    let mut log = fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
    log += &fs::read_to_string(dir.join("redis.out")).unwrap_or_default();
    log
}

/// True when something on `path` answers an inline `PING` with a RESP simple string or error.
fn answers_ping(path: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(path) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(1));
    if stream.set_read_timeout(timeout).is_err() || stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut first = [0u8; 1];
    matches!(stream.read(&mut first), Ok(1) if first[0] == b'+' || first[0] == b'-')
}

fn socket_path(dir: &Path) -> PathBuf {
    dir.join("redis.sock")
}

/// A new empty directory under the system temp dir, unique to this process and call.
fn fresh_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("brisk-test-{}-{n}", std::process::id()));
    // A leftover from an earlier process with the same pid would be stale.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the server directory");
    // sun_path holds 108 bytes including the NUL.
    assert!(
        socket_path(&dir).as_os_str().len() < 108,
        "temp dir path too long for a Unix socket: {}",
        dir.display()
    );
    dir
}

/// A loopback port that was free a moment ago.
pub(super) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
