//! A private `redis-server` for the native tests: `tests/tests/redis_scripts.rs` checks the
//! rate limiter's Lua scripts against it. Found on PATH, or installed from Debian's package
//! when missing and root; started on 127.0.0.1 on a free port with no persistence; its port
//! handed to the tests in `DISTLAB_REDIS_PORT`; stopped by its process id when the guard is
//! dropped, whether the tests passed or not.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Result, is_root, run, version_of};

/// The variable the test reads.
pub const PORT_VAR: &str = "DISTLAB_REDIS_PORT";
const STARTUP: Duration = Duration::from_secs(20);

/// A running server; dropping it stops the server.
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        eprintln!(
            "==> stopping redis-server (pid {}, port {})",
            self.child.id(),
            self.port
        );
        // Child::kill signals exactly this process id; wait reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ensure_installed() -> Result {
    if version_of("redis-server").is_some() {
        return Ok(());
    }
    let debian = std::path::Path::new("/etc/debian_version").exists();
    if !(debian && is_root()) {
        return Err(
            "the native tests compare the rate limiter's Lua scripts with a real \
                    Redis: install it (on Debian, `apt-get install redis-server` as root) \
                    and run again"
                .into(),
        );
    }
    // The package lists may be missing or stale on a fresh machine.
    if run(
        "redis-server",
        "apt-get",
        &["install", "-y", "-q", "redis-server"],
    )
    .is_err()
    {
        run("apt-get update", "apt-get", &["update", "-q"])?;
        run(
            "redis-server",
            "apt-get",
            &["install", "-y", "-q", "redis-server"],
        )?;
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Starts a server (installing it first if need be) and exports its port to the tests
/// this process runs.
pub fn start() -> Result<RedisServer> {
    ensure_installed()?;
    let port = free_port()?;
    let port_arg = port.to_string();
    let args = [
        "--port",
        port_arg.as_str(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ];
    eprintln!("==> redis-server {}", args.join(" "));
    let child = Command::new("redis-server")
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start redis-server: {e}"))?;
    let mut server = RedisServer { child, port };
    let started = Instant::now();
    while !answers_ping(port) {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!("redis-server exited at once ({status})"));
        }
        if started.elapsed() > STARTUP {
            return Err(format!(
                "redis-server did not answer PING on port {port} within {STARTUP:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: xtask runs no other thread that could read the environment meanwhile.
    unsafe { std::env::set_var(PORT_VAR, &port_arg) };
    eprintln!(
        "<== redis-server pid {} answers on 127.0.0.1:{port}",
        server.child.id()
    );
    Ok(server)
}
