//! Which slot a command belongs to, and how the multi-key commands whose keys span slots are
//! split into one command per slot and their replies put back together.

use crate::core::Error;
use crate::core::Result;
use crate::core::cluster::key_slot;
use crate::core::command_table::{CommandTable, key_positions};
use crate::resp::{Args, Reply, ReplyKind};

/// Where a command goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// No keys: any primary.
    Anywhere,
    Slot(u16),
    /// Keys in several slots; the slots in order of first appearance.
    Spread,
}

pub(crate) fn placement(table: Option<&CommandTable>, args: &Args<'_>) -> Placement {
    let mut slot = None;
    for i in key_positions(table, args) {
        let s = key_slot(args.get(i));
        match slot {
            None => slot = Some(s),
            Some(first) if first != s => return Placement::Spread,
            Some(_) => {}
        }
    }
    slot.map_or(Placement::Anywhere, Placement::Slot)
}

/// INVALID_ARGUMENT naming CROSSSLOT, for a command whose keys no single node serves.
pub(crate) fn cross_slot(name: &[u8]) -> Error {
    Error::invalid_argument(format!(
        "CROSSSLOT: the keys of {} hash to different slots, so no single cluster node can run \
         it; put them in one slot with a hash tag ({{user1}}:a, {{user1}}:b)",
        String::from_utf8_lossy(name).to_ascii_uppercase()
    ))
}

/// How a split command's replies combine into the reply the caller expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Merge {
    /// MGET: the values, in the order of the keys.
    Values,
    /// MSET: OK when every part was.
    AllOk,
    /// DEL, UNLINK, EXISTS, TOUCH: the sum of the counts.
    Sum,
}

/// One command per slot, as argument lists, plus where each original key's reply lands.
pub(crate) struct Split {
    pub merge: Merge,
    pub parts: Vec<Vec<Vec<u8>>>,
    /// For `Merge::Values`: for each part, the positions of its keys in the original command.
    pub positions: Vec<Vec<usize>>,
    pub keys: usize,
}

/// Splits MGET, MSET, DEL, UNLINK, EXISTS and TOUCH by slot; `None` for other commands, which
/// cannot be split without changing what they mean.
pub(crate) fn split(args: &Args<'_>) -> Option<Split> {
    let name = args.name().to_ascii_uppercase();
    let (merge, stride) = match name.as_slice() {
        b"MGET" => (Merge::Values, 1),
        b"MSET" => (Merge::AllOk, 2),
        b"DEL" | b"UNLINK" | b"EXISTS" | b"TOUCH" => (Merge::Sum, 1),
        _ => return None,
    };
    let operands = args.len() - 1;
    if operands == 0 || !operands.is_multiple_of(stride) {
        return None; // let the server say what is wrong with it
    }
    let mut by_slot: Vec<(u16, Vec<Vec<u8>>, Vec<usize>)> = Vec::new();
    for (key_index, first) in (1..args.len()).step_by(stride).enumerate() {
        let slot = key_slot(args.get(first));
        let part = match by_slot.iter().position(|(s, _, _)| *s == slot) {
            Some(i) => i,
            None => {
                by_slot.push((slot, vec![args.name().to_vec()], Vec::new()));
                by_slot.len() - 1
            }
        };
        let (_, words, positions) = &mut by_slot[part];
        words.extend((first..first + stride).map(|i| args.get(i).to_vec()));
        positions.push(key_index);
    }
    let (parts, positions) = by_slot.into_iter().map(|(_, w, p)| (w, p)).unzip();
    Some(Split {
        merge,
        parts,
        positions,
        keys: operands / stride,
    })
}

impl Split {
    /// The caller's reply from the parts' replies (one per part, in order). The first error
    /// reply among them is the result.
    pub fn merge(&self, replies: Vec<Reply>) -> Result<Reply> {
        if let Some(error) = replies.iter().find(|r| r.kind() == ReplyKind::Error) {
            return Err(Error::from_reply(error.as_bytes().unwrap_or_default()));
        }
        match self.merge {
            Merge::Values => {
                let mut values: Vec<Option<Reply>> = (0..self.keys).map(|_| None).collect();
                for (reply, positions) in replies.into_iter().zip(&self.positions) {
                    for (value, &at) in reply.into_elements().into_iter().zip(positions) {
                        values[at] = Some(value);
                    }
                }
                let values = values
                    .into_iter()
                    .map(|v| v.unwrap_or_else(Reply::nil))
                    .collect();
                Ok(Reply::aggregate(ReplyKind::Array, values))
            }
            Merge::AllOk => Ok(Reply::text(ReplyKind::Status, b"OK")),
            Merge::Sum => {
                let total: i64 = replies.iter().filter_map(|r| r.node().as_integer()).sum();
                Ok(Reply::scalar(ReplyKind::Integer, total as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args<'a>(words: &'a [&'a str]) -> Vec<&'a [u8]> {
        words.iter().map(|w| w.as_bytes()).collect()
    }

    #[test]
    fn placement_follows_keys_and_hash_tags() {
        let keyless = args(&["PING"]);
        assert_eq!(
            placement(None, &Args::from_slices(&keyless)),
            Placement::Anywhere
        );
        let tagged = args(&["MGET", "{u1}:a", "{u1}:b"]);
        assert_eq!(
            placement(None, &Args::from_slices(&tagged)),
            Placement::Slot(key_slot(b"u1"))
        );
        let spread = args(&["MGET", "a", "b"]);
        assert_eq!(
            placement(None, &Args::from_slices(&spread)),
            Placement::Spread
        );
        let e = cross_slot(b"mget");
        assert_eq!(e.status(), crate::core::Status::InvalidArgument);
        assert!(e.message().starts_with("CROSSSLOT: the keys of MGET"));
    }

    #[test]
    fn mset_splits_into_pairs_and_mget_reassembles_in_order() {
        let mset = args(&["MSET", "a", "1", "b", "2", "{a}x", "3"]);
        let split = split(&Args::from_slices(&mset)).unwrap();
        assert_eq!(split.merge, Merge::AllOk);
        let first: Vec<&[u8]> = split.parts[0].iter().map(Vec::as_slice).collect();
        assert_eq!(first, [&b"MSET"[..], b"a", b"1", b"{a}x", b"3"]);
        assert_eq!(split.parts.len(), 2);

        let mget = args(&["MGET", "a", "b", "{a}x"]);
        let split = super::split(&Args::from_slices(&mget)).unwrap();
        assert_eq!(split.positions, [vec![0, 2], vec![1]]);
        let part = |values: &[&[u8]]| {
            Reply::aggregate(
                ReplyKind::Array,
                values
                    .iter()
                    .map(|v| Reply::text(ReplyKind::String, v))
                    .collect(),
            )
        };
        let merged = split
            .merge(vec![part(&[b"A", b"X"]), part(&[b"B"])])
            .unwrap();
        let got: Vec<_> = merged
            .into_elements()
            .iter()
            .map(|r| r.as_bytes().unwrap().to_vec())
            .collect();
        assert_eq!(got, [b"A".to_vec(), b"B".to_vec(), b"X".to_vec()]);
    }

    #[test]
    fn counts_add_up_and_errors_win() {
        let del = args(&["DEL", "a", "b", "c"]);
        let split = split(&Args::from_slices(&del)).unwrap();
        let n = |v| Reply::scalar(ReplyKind::Integer, v);
        let parts = (0..split.parts.len()).map(|_| n(1)).collect();
        let total = split.merge(parts).unwrap();
        assert_eq!(total.as_integer(), Some(split.parts.len() as i64));
        let failed = vec![n(1), Reply::text(ReplyKind::Error, b"ERR boom")];
        assert!(split.merge(failed).is_err());
        let odd = args(&["MSET", "a", "1", "b"]);
        assert!(super::split(&Args::from_slices(&odd)).is_none());
        let other = args(&["SUNION", "a", "b"]);
        assert!(super::split(&Args::from_slices(&other)).is_none());
    }
}
