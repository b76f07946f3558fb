//! What a transaction's replies mean: MULTI's reply, one QUEUED (or error) per command, then
//! EXEC's reply, read as one array.

use super::error::{Error, Result};
use super::status::Status;
use crate::resp::{Reply, ReplyKind};

/// The caller's result of a transaction from all its replies: EXEC's array, WATCH when EXEC
/// answered nil, or EXEC's error with the first rejected command named.
pub fn transaction_result(all: Reply) -> Result<Reply> {
    let replies = all.children();
    let (Some(multi), Some(exec)) = (replies.first(), replies.last()) else {
        return Err(Error::new(
            Status::Protocol,
            "a transaction without replies",
        ));
    };
    if multi.kind() == ReplyKind::Error {
        return Err(Error::from_reply(multi.as_bytes().unwrap_or_default()).context("MULTI"));
    }
    match exec.kind() {
        ReplyKind::Array => {
            let last = replies.len() - 1;
            Ok(all.into_element(last).expect("EXEC's reply is the last"))
        }
        ReplyKind::Nil => Err(watch_aborted()),
        ReplyKind::Error => {
            let mut error = Error::from_reply(exec.as_bytes().unwrap_or_default());
            if let Some((i, queued)) = replies[..replies.len() - 1]
                .iter()
                .enumerate()
                .skip(1)
                .find(|(_, r)| r.kind() == ReplyKind::Error)
            {
                error = error.detail(format!(
                    "command {} was rejected: {}",
                    i,
                    queued.as_str().unwrap_or("?")
                ));
            }
            Err(error)
        }
        other => Err(Error::new(
            Status::Protocol,
            format!("EXEC answered with a {other:?} instead of an array"),
        )),
    }
}

/// EXEC answered nil: a WATCHed key changed and nothing was applied.
pub fn watch_aborted() -> Error {
    Error::new(
        Status::Watch,
        "transaction aborted: a WATCHed key changed (EXEC returned nil), nothing was applied",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(kind: ReplyKind, s: &str) -> Reply {
        Reply::text(kind, s.as_bytes())
    }

    fn all(exec: Reply, queued: Vec<Reply>) -> Reply {
        let mut replies = vec![text(ReplyKind::Status, "OK")];
        replies.extend(queued);
        replies.push(exec);
        Reply::aggregate(ReplyKind::Array, replies)
    }

    #[test]
    fn exec_array_nil_and_error() {
        let queued = || vec![text(ReplyKind::Status, "QUEUED")];
        let ok = all(
            Reply::aggregate(ReplyKind::Array, vec![text(ReplyKind::Status, "OK")]),
            queued(),
        );
        assert_eq!(transaction_result(ok).unwrap().children().len(), 1);
        let watched = transaction_result(all(Reply::nil(), queued())).unwrap_err();
        assert_eq!(watched.status(), Status::Watch);
        let rejected = vec![text(ReplyKind::Error, "ERR wrong number of arguments")];
        let aborted = all(
            text(ReplyKind::Error, "EXECABORT Transaction discarded"),
            rejected,
        );
        let e = transaction_result(aborted).unwrap_err();
        assert_eq!(e.status(), Status::Server);
        assert!(
            e.message()
                .contains("command 1 was rejected: ERR wrong number")
        );
    }
}
