//! What the server says about its commands (`COMMAND`): which only read, and where their keys
//! are (key specs, Redis 7; the first/last/step triple on older servers). With no table, a
//! built-in fallback covers the common commands.
//!
//! Keys decide the cluster slot a command goes to; "read-only" decides whether a command whose
//! request was sent may be replayed.

use super::commands::builtin_read_only;
use super::hash::FastHash;
use crate::resp::{Args, Node};
use std::collections::HashMap;

/// Where a command's keys start.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Begin {
    /// At this argument index.
    Index(i64),
    /// After `keyword`, searched from `start_from` (negative: backwards from the end).
    Keyword { keyword: Vec<u8>, start_from: i64 },
}

/// How many keys follow, and how they are spaced.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Find {
    /// Keys from the start to `last_key` (relative; negative: from the end of argv), every
    /// `step`; with `last_key` -1 and `limit` > 1, only the first 1/limit of what remains.
    Range {
        last_key: i64,
        step: i64,
        limit: i64,
    },
    /// The number of keys is the argument at `num_index` (relative to the start); the first key
    /// is at `first` (relative), every `step`.
    KeyNum {
        num_index: i64,
        first: i64,
        step: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct KeySpec {
    begin: Begin,
    find: Find,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct CommandInfo {
    facts: CommandFacts,
    /// It has subcommands (Redis 7 lists them as `name|sub` entries).
    container: bool,
    /// Key specs when the server gives them; else the legacy triple as one range spec; `None`
    /// when neither describes the keys (movable keys on a server without key specs).
    keys: Option<Vec<KeySpec>>,
}

/// Argument positions (of a command's keys): up to four without an allocation.
#[derive(Clone)]
pub enum Positions {
    Inline { len: usize, items: [usize; 4] },
    Heap(Vec<usize>),
}

impl Default for Positions {
    fn default() -> Self {
        Positions::Inline {
            len: 0,
            items: [0; 4],
        }
    }
}

impl Positions {
    pub fn push(&mut self, position: usize) {
        match self {
            Positions::Inline { len, items } if *len < items.len() => {
                items[*len] = position;
                *len += 1;
            }
            Positions::Inline { len, items } => {
                let mut heap = items[..*len].to_vec();
                heap.push(position);
                *self = Positions::Heap(heap);
            }
            Positions::Heap(heap) => heap.push(position),
        }
    }

    pub fn as_slice(&self) -> &[usize] {
        match self {
            Positions::Inline { len, items } => &items[..*len],
            Positions::Heap(heap) => heap,
        }
    }

    fn sort_dedup(&mut self) {
        match self {
            Positions::Inline { len, items } => {
                let items = &mut items[..*len];
                items.sort_unstable();
                let mut kept = 0;
                for i in 0..items.len() {
                    if kept == 0 || items[i] != items[kept - 1] {
                        items[kept] = items[i];
                        kept += 1;
                    }
                }
                *len = kept;
            }
            Positions::Heap(heap) => {
                heap.sort_unstable();
                heap.dedup();
            }
        }
    }
}

impl From<Vec<usize>> for Positions {
    fn from(positions: Vec<usize>) -> Positions {
        Positions::Heap(positions)
    }
}

impl std::ops::Deref for Positions {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        self.as_slice()
    }
}

impl std::fmt::Debug for Positions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl PartialEq for Positions {
    fn eq(&self, other: &Positions) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Positions {}

/// What the server's table says about a command besides where its keys are: whether it only
/// reads (retries), whether it writes and whether its answer may change without any key
/// changing (the client-side cache).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandFacts {
    pub read_only: bool,
    /// The `write` flag.
    pub write: bool,
    /// The `random` flag (Redis 6) or the `nondeterministic_output` tip (Redis 7): the answer
    /// may differ between two calls on the same data (RANDOMKEY, SRANDMEMBER, TTL, TIME...).
    pub nondeterministic: bool,
    /// The `blocking` flag.
    pub blocking: bool,
    /// Some of its keys cannot be found from its arguments: a key spec the server marks
    /// `unknown` or `incomplete` (SORT's STORE key, MIGRATE's KEYS), or movable keys without
    /// key specs (Redis 6).
    pub unnamed_keys: bool,
}

#[derive(Debug, Default)]
pub struct CommandTable {
    /// By lower-case name, and `container|sub` for subcommands.
    /// (The server's own names: no seed needed.)
    commands: HashMap<Vec<u8>, CommandInfo, FastHash>,
}

fn int(node: Option<&Node>) -> Option<i64> {
    node.and_then(|n| n.as_integer().or_else(|| n.as_str()?.parse().ok()))
}

/// Whether the server flags a key spec `incomplete` (it may not find every key).
fn spec_is_incomplete(spec: &Node) -> bool {
    spec.get("flags").is_some_and(|flags| {
        flags
            .children()
            .iter()
            .any(|f| f.as_bytes() == Some(b"incomplete"))
    })
}

fn parse_key_spec(spec: &Node) -> Option<KeySpec> {
    let begin = spec.get("begin_search")?;
    let begin_spec = begin.get("spec")?;
    let begin = match begin.get("type")?.as_str()? {
        "index" => Begin::Index(int(begin_spec.get("index"))?),
        "keyword" => Begin::Keyword {
            keyword: begin_spec.get("keyword")?.as_bytes()?.to_ascii_uppercase(),
            start_from: int(begin_spec.get("startfrom"))?,
        },
        _ => return None,
    };
    let find = spec.get("find_keys")?;
    let find_spec = find.get("spec")?;
    let find = match find.get("type")?.as_str()? {
        "range" => Find::Range {
            last_key: int(find_spec.get("lastkey"))?,
            step: int(find_spec.get("keystep"))?.max(1),
            limit: int(find_spec.get("limit"))?,
        },
        "keynum" => Find::KeyNum {
            num_index: int(find_spec.get("keynumidx"))?,
            first: int(find_spec.get("firstkey"))?,
            step: int(find_spec.get("keystep"))?.max(1),
        },
        _ => return None,
    };
    Some(KeySpec { begin, find })
}

impl CommandTable {
    /// Builds the table from the reply to `COMMAND` (RESP2 or RESP3).
    pub fn from_command_reply(reply: &Node) -> CommandTable {
        let mut table = CommandTable::default();
        for entry in reply.children() {
            table.add_entry(entry);
        }
        table
    }

    fn add_entry(&mut self, entry: &Node) {
        let fields = entry.children();
        let Some(name) = fields.first().and_then(Node::as_bytes) else {
            return;
        };
        let flags = fields.get(2).map(Node::children).unwrap_or_default();
        let has_flag = |flag: &[u8]| flags.iter().any(|f| f.as_bytes() == Some(flag));
        // Redis 7 command tips (field 7).
        let tips = fields.get(7).map(Node::children).unwrap_or_default();
        let nondeterministic = has_flag(b"random")
            || tips
                .iter()
                .any(|t| t.as_bytes() == Some(b"nondeterministic_output"));
        let container = fields
            .get(9)
            .is_some_and(|subs| !subs.children().is_empty());
        let mut info = CommandInfo {
            container,
            facts: CommandFacts {
                read_only: has_flag(b"readonly"),
                write: has_flag(b"write"),
                nondeterministic,
                blocking: has_flag(b"blocking"),
                unnamed_keys: false,
            },
            keys: None,
        };
        // Redis 7 key specs (field 8). Specs of type "unknown" (SORT's STORE key, say) cannot
        // be followed and are skipped: routing needs one key, and the server rejects a command
        // whose other keys are in another slot.
        let raw_specs = fields.get(8).map(Node::children).unwrap_or_default();
        let specs: Vec<KeySpec> = raw_specs.iter().filter_map(parse_key_spec).collect();
        info.facts.unnamed_keys = specs.len() < raw_specs.len()
            || raw_specs.iter().any(spec_is_incomplete)
            || (raw_specs.is_empty() && has_flag(b"movablekeys"));
        match specs {
            specs if !specs.is_empty() => info.keys = Some(specs),
            _ if has_flag(b"movablekeys") => {}
            _ => {
                let (first, last, step) =
                    (int(fields.get(3)), int(fields.get(4)), int(fields.get(5)));
                if let (Some(first), Some(last), Some(step)) = (first, last, step) {
                    // First 0: no keys. Built only for a positive first, so that `last - first`
                    // cannot overflow whatever numbers the server sent.
                    info.keys = Some(if first > 0 {
                        vec![KeySpec {
                            begin: Begin::Index(first),
                            find: Find::Range {
                                last_key: if last < 0 { last } else { last - first },
                                step: step.max(1),
                                limit: 0,
                            },
                        }]
                    } else {
                        Vec::new()
                    });
                }
            }
        }
        self.commands.insert(name.to_ascii_lowercase(), info);
        // Redis 7 lists subcommands as full entries in field 9.
        if let Some(subcommands) = fields.get(9) {
            for sub in subcommands.children() {
                self.add_entry(sub);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// The entry for `args`: its subcommand's when it has one, else the command's. Names are
    /// lower-cased in a stack buffer: no allocation.
    fn info(&self, args: &Args<'_>) -> Option<&CommandInfo> {
        let mut buffer = [0u8; 64];
        let name = args.name();
        let lower = buffer.get_mut(..name.len())?;
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        let info = self.commands.get(&buffer[..name.len()])?;
        if !info.container || args.len() < 2 {
            return Some(info);
        }
        // A container (CLIENT, OBJECT, ...): its subcommand's entry, if the server has one.
        let sub = args.get(1);
        let end = name.len() + 1 + sub.len();
        if let Some(rest) = buffer.get_mut(name.len()..end) {
            rest[0] = b'|';
            rest[1..].copy_from_slice(sub);
            rest[1..].make_ascii_lowercase();
            if let Some(sub_info) = self.commands.get(&buffer[..end]) {
                return Some(sub_info);
            }
        }
        Some(info)
    }

    /// Whether the command (with its subcommand, for containers) only reads.
    pub fn is_read_only(&self, args: &Args<'_>) -> bool {
        self.info(args).is_some_and(|i| i.facts.read_only)
    }

    /// What the table says about the command (with its subcommand, for containers); `None` when
    /// it does not know it.
    pub fn facts(&self, args: &Args<'_>) -> Option<CommandFacts> {
        self.info(args).map(|i| i.facts)
    }

    /// The argument positions of the command's keys; `None` when the table does not know it.
    pub fn key_positions(&self, args: &Args<'_>) -> Option<Vec<usize>> {
        keys_of(self.info(args)?, args).map(|p| p.as_slice().to_vec())
    }

    /// [`CommandTable::facts`] and [`CommandTable::key_positions`] with one lookup (and no
    /// allocation for up to four keys).
    pub fn facts_and_keys(&self, args: &Args<'_>) -> Option<(CommandFacts, Option<Positions>)> {
        let info = self.info(args)?;
        Some((info.facts, keys_of(info, args)))
    }
}

fn keys_of(info: &CommandInfo, args: &Args<'_>) -> Option<Positions> {
    let specs = info.keys.as_ref()?;
    let mut positions = Positions::default();
    for spec in specs {
        apply_spec(spec, args, &mut positions);
    }
    if specs.len() > 1 {
        // One spec's positions are in order and distinct already; several may overlap.
        positions.sort_dedup();
    }
    Some(positions)
}

fn apply_spec(spec: &KeySpec, args: &Args<'_>, out: &mut Positions) {
    let argc = args.len() as i64;
    let start = match &spec.begin {
        Begin::Index(i) => *i,
        Begin::Keyword {
            keyword,
            start_from,
        } => {
            let found = if *start_from >= 0 {
                (*start_from..argc).find(|&i| args.get(i as usize).eq_ignore_ascii_case(keyword))
            } else {
                (1..=argc + start_from)
                    .rev()
                    .find(|&i| args.get(i as usize).eq_ignore_ascii_case(keyword))
            };
            match found {
                Some(i) => i + 1,
                None => return,
            }
        }
    };
    if start < 1 || start >= argc {
        return;
    }
    // The numbers come from the server (and the key count from the caller): arithmetic
    // saturates, and only arguments after the name (1..argc) come out as keys.
    let (first, last, step) = match spec.find {
        Find::Range {
            last_key,
            step,
            limit,
        } => {
            let last = if last_key >= 0 {
                start.saturating_add(last_key)
            } else if last_key == -1 && limit > 1 {
                start + (argc - start) / limit - 1
            } else {
                argc + last_key
            };
            (start, last, step)
        }
        Find::KeyNum {
            num_index,
            first,
            step,
        } => {
            let Some(count) = usize::try_from(start.saturating_add(num_index))
                .ok()
                .and_then(|i| args.iter().nth(i))
                .and_then(|n| std::str::from_utf8(n).ok()?.parse::<i64>().ok())
                .filter(|&count| count > 0)
            else {
                return;
            };
            let first = start.saturating_add(first);
            // A spec whose keys would start at the name or before it is not one Redis gives.
            if first < 1 {
                return;
            }
            (
                first,
                first.saturating_add((count - 1).saturating_mul(step)),
                step,
            )
        }
    };
    for i in (first..=last.min(argc - 1)).step_by(step as usize) {
        out.push(i as usize);
    }
}

/// Key positions for when there is no server table: the common shapes, and "the first argument"
/// for everything else that has arguments.
pub fn builtin_key_positions(args: &Args<'_>) -> Vec<usize> {
    let argc = args.len();
    let name = args.name();
    let is = |names: &[&str]| {
        names
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
    };
    if argc < 2
        || is(&[
            "PING",
            "ECHO",
            "INFO",
            "TIME",
            "DBSIZE",
            "FLUSHALL",
            "FLUSHDB",
            "CONFIG",
            "CLIENT",
            "CLUSTER",
            "COMMAND",
            "SCRIPT",
            "FUNCTION",
            "PUBLISH",
            "KEYS",
            "SCAN",
            "RANDOMKEY",
            "LASTSAVE",
            "SAVE",
            "BGSAVE",
            "WAIT",
            "WAITAOF",
            "MEMORY",
            "LATENCY",
            "SLOWLOG",
            "ACL",
            "DEBUG",
            "HELLO",
            "AUTH",
            "SELECT",
            "MULTI",
            "EXEC",
            "DISCARD",
            "UNWATCH",
            "READONLY",
            "READWRITE",
            "ASKING",
            "QUIT",
            "RESET",
            "LOLWUT",
            "SWAPDB",
        ])
    {
        return Vec::new();
    }
    if is(&[
        "MGET",
        "DEL",
        "EXISTS",
        "UNLINK",
        "TOUCH",
        "WATCH",
        "SINTER",
        "SUNION",
        "SDIFF",
        "PFCOUNT",
        "PFMERGE",
        "SINTERSTORE",
        "SUNIONSTORE",
        "SDIFFSTORE",
    ]) {
        return (1..argc).collect();
    }
    if is(&["MSET", "MSETNX"]) {
        return (1..argc).step_by(2).collect();
    }
    if is(&["BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"]) {
        return (1..argc - 1).collect();
    }
    if is(&[
        "EVAL",
        "EVALSHA",
        "EVAL_RO",
        "EVALSHA_RO",
        "FCALL",
        "FCALL_RO",
    ]) {
        // The key count is the caller's text: it may be missing (`EVAL script`) or absurd.
        let count = args
            .iter()
            .nth(2)
            .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok());
        return match count {
            Some(n) => (3..n.saturating_add(3).min(argc)).collect(),
            None => Vec::new(),
        };
    }
    if is(&["XREAD", "XREADGROUP"]) {
        let Some(streams) = (1..argc).find(|&i| args.get(i).eq_ignore_ascii_case(b"STREAMS"))
        else {
            return Vec::new();
        };
        let count = (argc - streams - 1) / 2;
        return (streams + 1..streams + 1 + count).collect();
    }
    vec![1]
}

/// Whether `args` only reads, by the server's table when there is one, else the built-in list.
pub fn read_only(table: Option<&CommandTable>, args: &Args<'_>) -> bool {
    match table {
        Some(table) => table.is_read_only(args),
        None => builtin_read_only(args.name()),
    }
}

/// The positions of `args`'s keys, by the server's table when it knows the command.
pub fn key_positions(table: Option<&CommandTable>, args: &Args<'_>) -> Vec<usize> {
    table
        .and_then(|t| t.key_positions(args))
        .unwrap_or_else(|| builtin_key_positions(args))
}

#[cfg(test)]
mod tests;
