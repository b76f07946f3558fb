//! The blocking side of each client: one command at a time, pipelines of 100, LRANGE. Every reply
//! is looked at (type and length), as in bench.c.

use crate::data::{Keys, LIST_KEY, LRANGE_LEN, NKEYS, PIPE_BATCH, VALUE};
use crate::die;
use brisk::{Args, Client, Pipeline, ReplyKind};
use redis::Value;

/// One client's blocking workloads; the timed loops in main.rs drive them through `dyn`.
pub trait SyncPeer {
    fn set(&mut self, keys: &Keys, k: usize);
    fn get(&mut self, keys: &Keys, k: usize);
    /// A batch of PIPE_BATCH SETs (get = false) or GETs on the keys from *k on.
    fn pipeline_batch(&mut self, keys: &Keys, get: bool, k: &mut usize);
    /// LRANGE of the whole list; returns a sum over its bytes (so the walk is not optimised out).
    fn lrange(&mut self) -> u64;

    fn warm(&mut self, keys: &Keys) {
        for k in 0..50 {
            self.set(keys, k);
            self.get(keys, k);
        }
    }
}

fn next_key(k: &mut usize) -> usize {
    let key = *k;
    *k = if key + 1 == NKEYS { 0 } else { key + 1 };
    key
}

// -------------------------------------------------------------------------------------------
// brisk's Rust API: Client::command, Client::pipeline

pub struct BriskSync {
    client: Client,
    pipeline: Pipeline,
}

impl BriskSync {
    pub fn open(host: &str, port: u16) -> BriskSync {
        let client = crate::brisk_client(host, port);
        let pipeline = client.pipeline();
        BriskSync { client, pipeline }
    }

    pub fn into_client(self) -> Client {
        self.client
    }
}

impl SyncPeer for BriskSync {
    #[inline]
    fn set(&mut self, keys: &Keys, k: usize) {
        let args: [&[u8]; 3] = [b"SET", keys.get(k), VALUE];
        match self.client.command(&Args::from_slices(&args)) {
            Ok(r) if r.kind() == ReplyKind::Status => {}
            Ok(r) => die(&format!("brisk-rust SET: unexpected reply {r:?}")),
            Err(e) => die(&format!("brisk-rust SET: {e}")),
        }
    }

    #[inline]
    fn get(&mut self, keys: &Keys, k: usize) {
        let args: [&[u8]; 2] = [b"GET", keys.get(k)];
        match self.client.command(&Args::from_slices(&args)) {
            Ok(r) if r.as_bytes().is_some_and(|b| b.len() == VALUE.len()) => {}
            Ok(r) => die(&format!("brisk-rust GET: unexpected reply {r:?}")),
            Err(e) => die(&format!("brisk-rust GET: {e}")),
        }
    }

    fn pipeline_batch(&mut self, keys: &Keys, get: bool, k: &mut usize) {
        for _ in 0..PIPE_BATCH {
            let key = keys.get(next_key(k));
            let set: [&[u8]; 3] = [b"SET", key, VALUE];
            let get_args: [&[u8]; 2] = [b"GET", key];
            let args: &[&[u8]] = if get { &get_args } else { &set };
            if let Err(e) = self.pipeline.append(&Args::from_slices(args)) {
                die(&format!("brisk-rust pipeline append: {e}"));
            }
        }
        let reply = self
            .pipeline
            .exec()
            .unwrap_or_else(|e| die(&format!("brisk-rust pipeline: {e}")));
        let replies = reply.children();
        if replies.len() != PIPE_BATCH {
            die(&format!("brisk-rust pipeline: {} replies", replies.len()));
        }
        for (i, r) in replies.iter().enumerate() {
            match r.as_bytes() {
                Some(b) if !get || b.len() == VALUE.len() => {}
                _ => die(&format!("brisk-rust pipeline: unexpected reply {i}: {r:?}")),
            }
        }
    }

    fn lrange(&mut self) -> u64 {
        let args: [&[u8]; 4] = [b"LRANGE", LIST_KEY, b"0", b"-1"];
        let reply = self
            .client
            .command(&Args::from_slices(&args))
            .unwrap_or_else(|e| die(&format!("brisk-rust LRANGE: {e}")));
        let items = reply.children();
        if items.len() != LRANGE_LEN {
            die(&format!("brisk-rust LRANGE: {} elements", items.len()));
        }
        let mut sum = 0u64;
        for (i, item) in items.iter().enumerate() {
            match item.as_bytes() {
                Some(b) if b.len() == VALUE.len() => sum += u64::from(b[b.len() - 1]),
                _ => die(&format!("brisk-rust LRANGE: element {i}")),
            }
        }
        sum
    }
}

// -------------------------------------------------------------------------------------------
// redis-rs: redis::Connection, redis::cmd, redis::pipe, replies as redis::Value

pub struct RedisSync {
    con: redis::Connection,
}

impl RedisSync {
    pub fn open(host: &str, port: u16) -> RedisSync {
        let client = crate::redis_client(host, port);
        let con = client
            .get_connection()
            .unwrap_or_else(|e| die(&format!("redis-rs connect: {e}")));
        RedisSync { con }
    }
}

fn is_ok(v: &Value) -> bool {
    matches!(v, Value::Okay) || matches!(v, Value::SimpleString(s) if s == "OK")
}

fn is_value(v: &Value) -> bool {
    matches!(v, Value::BulkString(b) if b.len() == VALUE.len())
}

impl SyncPeer for RedisSync {
    #[inline]
    fn set(&mut self, keys: &Keys, k: usize) {
        match redis::cmd("SET")
            .arg(keys.get(k))
            .arg(&VALUE[..])
            .query::<Value>(&mut self.con)
        {
            Ok(v) if is_ok(&v) => {}
            Ok(v) => die(&format!("redis-rs SET: unexpected reply {v:?}")),
            Err(e) => die(&format!("redis-rs SET: {e}")),
        }
    }

    #[inline]
    fn get(&mut self, keys: &Keys, k: usize) {
        match redis::cmd("GET")
            .arg(keys.get(k))
            .query::<Value>(&mut self.con)
        {
            Ok(v) if is_value(&v) => {}
            Ok(v) => die(&format!("redis-rs GET: unexpected reply {v:?}")),
            Err(e) => die(&format!("redis-rs GET: {e}")),
        }
    }

    fn pipeline_batch(&mut self, keys: &Keys, get: bool, k: &mut usize) {
        let mut pipe = redis::pipe();
        for _ in 0..PIPE_BATCH {
            let key = keys.get(next_key(k));
            if get {
                pipe.cmd("GET").arg(key);
            } else {
                pipe.cmd("SET").arg(key).arg(&VALUE[..]);
            }
        }
        let replies: Vec<Value> = pipe
            .query(&mut self.con)
            .unwrap_or_else(|e| die(&format!("redis-rs pipeline: {e}")));
        if replies.len() != PIPE_BATCH {
            die(&format!("redis-rs pipeline: {} replies", replies.len()));
        }
        for (i, v) in replies.iter().enumerate() {
            if !(if get { is_value(v) } else { is_ok(v) }) {
                die(&format!("redis-rs pipeline: unexpected reply {i}: {v:?}"));
            }
        }
    }

    fn lrange(&mut self) -> u64 {
        let reply: Value = redis::cmd("LRANGE")
            .arg(LIST_KEY)
            .arg(0)
            .arg(-1)
            .query(&mut self.con)
            .unwrap_or_else(|e| die(&format!("redis-rs LRANGE: {e}")));
        let Value::Array(items) = reply else {
            die(&format!("redis-rs LRANGE: unexpected reply {reply:?}"));
        };
        if items.len() != LRANGE_LEN {
            die(&format!("redis-rs LRANGE: {} elements", items.len()));
        }
        let mut sum = 0u64;
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::BulkString(b) if b.len() == VALUE.len() => sum += u64::from(b[b.len() - 1]),
                _ => die(&format!("redis-rs LRANGE: element {i}")),
            }
        }
        sum
    }
}
