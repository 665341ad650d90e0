//! The smallest Redis client that serves the suites that compare with a real
//! `redis-server`: one connection, one command at a time, binary-safe arguments, RESP2
//! replies. `cargo xtask test` starts the server on a free port and passes it in
//! `DISTLAB_REDIS_PORT`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

const PORT_VAR: &str = "DISTLAB_REDIS_PORT";

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

/// One connection to the suite's Redis.
pub struct Redis {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Redis {
    /// Connects and checks the server answers; `compared` names what the suite compares
    /// with Redis, for the message when none is there.
    pub fn connect(compared: &str) -> Redis {
        let how = "start one with `cargo xtask test` (it installs Debian's redis-server \
                   when missing and run as root, starts it on a free port and stops it \
                   afterwards), or run `apt-get install redis-server`, start \
                   `redis-server --port 6390 --save '' --appendonly no` and set \
                   DISTLAB_REDIS_PORT=6390";
        let port = std::env::var(PORT_VAR).unwrap_or_else(|_| {
            panic!("{PORT_VAR} is not set: this test compares {compared} with a real Redis; {how}")
        });
        let addr = format!("127.0.0.1:{port}");
        let stream = TcpStream::connect(&addr)
            .unwrap_or_else(|e| panic!("no Redis answers on {addr} ({e}); {how}"));
        let mut r = Redis {
            reader: BufReader::new(stream.try_clone().expect("clone the socket")),
            writer: stream,
        };
        assert_eq!(r.call(&["PING"]), Resp::Simple("PONG".into()));
        r
    }

    /// Sends one command and reads its reply.
    pub fn call<S: AsRef<[u8]>>(&mut self, args: &[S]) -> Resp {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).expect("send to Redis");
        self.read()
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).expect("read from Redis");
        assert!(l.ends_with("\r\n"), "truncated reply line {l:?}");
        l.truncate(l.len() - 2);
        l
    }

    fn read(&mut self) -> Resp {
        let line = self.line();
        let (kind, rest) = line.split_at(1);
        let n = || rest.parse::<i64>().expect("a length");
        match kind {
            "+" => Resp::Simple(rest.to_string()),
            "-" => Resp::Error(rest.to_string()),
            ":" => Resp::Int(n()),
            "$" if n() < 0 => Resp::Bulk(None),
            "$" => {
                let mut buf = vec![0; n() as usize + 2];
                self.reader
                    .read_exact(&mut buf)
                    .expect("read a bulk string");
                buf.truncate(buf.len() - 2);
                Resp::Bulk(Some(buf))
            }
            "*" if n() < 0 => Resp::Array(None),
            "*" => Resp::Array(Some((0..n()).map(|_| self.read()).collect())),
            _ => panic!("not a RESP reply: {line:?}"),
        }
    }
}
