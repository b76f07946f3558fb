//! The connection handshake as data: which commands a new connection sends, and what their
//! replies mean. Both drivers (blocking and async) run the same plan.
//!
//! RESP3 (the default) is one round trip: `HELLO 3 AUTH user pass SETNAME name` with `SELECT db`
//! pipelined behind it. A server that does not know HELLO (Redis < 6) gets the legacy plan,
//! `AUTH` / `CLIENT SETNAME` / `SELECT`, and the connection speaks RESP2. Protocol 2 starts
//! with the legacy plan, which is empty (no round trip at all) when there is nothing to set.

use super::error::{Error, Result};
use super::protocol::Protocol;
use super::server_error::ServerErrorKind;
use super::status::Status;
use crate::resp::{Node, Reply, ReplyKind};

/// What the handshake needs from the configuration.
#[derive(Clone, Debug, Default)]
pub struct Params {
    pub username: Option<String>,
    pub password: Option<String>,
    pub client_name: Option<String>,
    pub db: u32,
    /// 2 or 3.
    pub protocol: u32,
    /// Send `READONLY`: a cluster replica then serves reads of the slots its primary owns.
    pub readonly: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// `HELLO 3 ...` then `SELECT`.
    Hello,
    /// `AUTH`, `CLIENT SETNAME`, `SELECT` (RESP2).
    Legacy,
}

/// What a finished stage tells the driver to do next.
#[derive(Debug)]
pub enum Outcome {
    /// The connection is ready; `resp3` says which protocol it speaks.
    Ready {
        resp3: bool,
    },
    /// The server does not know HELLO: run [`Stage::Legacy`] next.
    Fallback,
    Failed(Error),
}

pub type Command = Vec<Vec<u8>>;

impl Params {
    pub fn first_stage(&self) -> Stage {
        if self.protocol >= 3 {
            Stage::Hello
        } else {
            Stage::Legacy
        }
    }

    /// The commands of `stage`, to be pipelined in one round trip.
    pub fn commands(&self, stage: Stage) -> Vec<Command> {
        let mut cmds = Vec::new();
        let credentials = self.password.as_ref().map(|pass| {
            let user = self.username.clone().unwrap_or_else(|| "default".into());
            (user, pass.clone())
        });
        match stage {
            Stage::Hello => {
                let mut hello: Command = vec![b"HELLO".to_vec(), b"3".to_vec()];
                if let Some((user, pass)) = credentials {
                    hello.extend([b"AUTH".to_vec(), user.into_bytes(), pass.into_bytes()]);
                }
                if let Some(name) = &self.client_name {
                    hello.extend([b"SETNAME".to_vec(), name.clone().into_bytes()]);
                }
                cmds.push(hello);
            }
            Stage::Legacy => {
                if let Some(pass) = &self.password {
                    let mut auth: Command = vec![b"AUTH".to_vec()];
                    if let Some(user) = &self.username {
                        auth.push(user.clone().into_bytes());
                    }
                    auth.push(pass.clone().into_bytes());
                    cmds.push(auth);
                }
                if let Some(name) = &self.client_name {
                    cmds.push(vec![
                        b"CLIENT".to_vec(),
                        b"SETNAME".to_vec(),
                        name.clone().into_bytes(),
                    ]);
                }
            }
        }
        if self.db != 0 {
            cmds.push(vec![b"SELECT".to_vec(), self.db.to_string().into_bytes()]);
        }
        if self.readonly {
            cmds.push(vec![b"READONLY".to_vec()]);
        }
        cmds
    }

    /// Judges the replies to [`Params::commands`]`(stage)`, in the same order.
    pub fn check(&self, stage: Stage, replies: &[&Node]) -> Outcome {
        let names = self.command_names(stage);
        debug_assert_eq!(names.len(), replies.len());
        for (i, (name, reply)) in names.iter().zip(replies).enumerate() {
            if reply.kind() != ReplyKind::Error {
                continue;
            }
            let error = Error::from_reply(reply.as_bytes().unwrap_or_default());
            if stage == Stage::Hello
                && i == 0
                && matches!(error.server_kind(), Some(ServerErrorKind::NoHello))
            {
                return Outcome::Fallback;
            }
            // Only the first failure matters: later ones are usually its echo (NOAUTH).
            return Outcome::Failed(error.sent(false).context(format!("handshake {name}")));
        }
        Outcome::Ready {
            resp3: stage == Stage::Hello,
        }
    }

    /// Names of the commands in a stage, for messages (never their arguments).
    fn command_names(&self, stage: Stage) -> Vec<&'static str> {
        self.commands(stage)
            .iter()
            .map(|c| match c[0].as_slice() {
                b"HELLO" => "HELLO",
                b"AUTH" => "AUTH",
                b"CLIENT" => "CLIENT SETNAME",
                b"READONLY" => "READONLY",
                _ => "SELECT",
            })
            .collect()
    }
}

/// A handshake in progress on one connection: the plan above, run. Both drivers (blocking and
/// async) move bytes for it and do what [`Handshake::poll`] says; the stages, the fallback to
/// the legacy plan and the judging of the replies happen here, once.
pub struct Handshake<'p> {
    params: &'p Params,
    stage: Stage,
    /// Commands of the current stage sent and awaiting their replies (0: the stage is not
    /// queued yet).
    sent: usize,
    replies: Vec<Reply>,
}

/// What a driver does next for a [`Handshake`].
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Write what the protocol has queued, then poll again.
    Write,
    /// Read more bytes into the protocol's input buffer, then poll again.
    Read,
    /// The connection is ready; `resp3` says which protocol it speaks.
    Ready { resp3: bool },
}

impl<'p> Handshake<'p> {
    pub fn new(params: &'p Params) -> Handshake<'p> {
        Handshake {
            params,
            stage: params.first_stage(),
            sent: 0,
            replies: Vec::new(),
        }
    }

    /// Advances on what `proto` has read so far and says what the driver does next. An error is
    /// the handshake's failure (never "sent": no caller's request has been written).
    pub fn poll(&mut self, proto: &mut Protocol) -> Result<Step> {
        loop {
            if self.sent == 0 {
                let commands = self.params.commands(self.stage);
                if commands.is_empty() {
                    return Ok(Step::Ready { resp3: false });
                }
                for command in &commands {
                    proto.queue_owned(command);
                }
                self.sent = commands.len();
                return Ok(Step::Write);
            }
            while self.replies.len() < self.sent {
                match proto.next_reply()? {
                    Some(reply) => self.replies.push(reply),
                    None => return Ok(Step::Read),
                }
            }
            let replies = std::mem::take(&mut self.replies);
            let nodes: Vec<&Node> = replies.iter().map(|r| r.node()).collect();
            match self.params.check(self.stage, &nodes) {
                // Anything read past the last reply would answer the first request.
                Outcome::Ready { .. } if proto.read_past_replies() => {
                    return Err(Error::new(
                        Status::Protocol,
                        "the server sent more than the replies to the handshake",
                    ));
                }
                Outcome::Ready { resp3 } => return Ok(Step::Ready { resp3 }),
                Outcome::Fallback => {
                    self.stage = Stage::Legacy;
                    self.sent = 0;
                }
                Outcome::Failed(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(cmd: &Command) -> Vec<String> {
        cmd.iter()
            .map(|a| String::from_utf8(a.clone()).unwrap())
            .collect()
    }

    fn params() -> Params {
        Params {
            username: Some("app".into()),
            password: Some("s3cret".into()),
            client_name: Some("worker-1".into()),
            db: 2,
            protocol: 3,
            readonly: false,
        }
    }

    #[test]
    fn resp3_is_one_hello_then_select() {
        let p = params();
        let cmds = p.commands(Stage::Hello);
        assert_eq!(
            words(&cmds[0]),
            ["HELLO", "3", "AUTH", "app", "s3cret", "SETNAME", "worker-1"]
        );
        assert_eq!(words(&cmds[1]), ["SELECT", "2"]);
        assert_eq!(cmds.len(), 2);
    }

    #[test]
    fn password_without_user_authenticates_as_default() {
        let p = Params {
            password: Some("pw".into()),
            protocol: 3,
            ..Params::default()
        };
        assert_eq!(
            words(&p.commands(Stage::Hello)[0]),
            ["HELLO", "3", "AUTH", "default", "pw"]
        );
        assert_eq!(words(&p.commands(Stage::Legacy)[0]), ["AUTH", "pw"]);
    }

    #[test]
    fn legacy_plan_and_empty_plan() {
        let p = params();
        let cmds: Vec<_> = p.commands(Stage::Legacy).iter().map(words).collect();
        assert_eq!(cmds[0], ["AUTH", "app", "s3cret"]);
        assert_eq!(cmds[1], ["CLIENT", "SETNAME", "worker-1"]);
        assert_eq!(cmds[2], ["SELECT", "2"]);
        let bare = Params {
            protocol: 2,
            ..Params::default()
        };
        assert_eq!(bare.first_stage(), Stage::Legacy);
        assert!(bare.commands(Stage::Legacy).is_empty());
        assert!(matches!(
            bare.check(Stage::Legacy, &[]),
            Outcome::Ready { resp3: false }
        ));
    }

    #[test]
    fn replica_connections_end_with_readonly() {
        let p = Params {
            protocol: 3,
            readonly: true,
            ..Params::default()
        };
        let cmds: Vec<_> = p.commands(Stage::Hello).iter().map(words).collect();
        assert_eq!(cmds, [vec!["HELLO", "3"], vec!["READONLY"]]);
        let refused = Reply::text(
            ReplyKind::Error,
            b"ERR This instance has cluster support disabled",
        );
        let ok = Reply::text(ReplyKind::Status, b"OK");
        match p.check(Stage::Hello, &[&ok, &refused]) {
            Outcome::Failed(e) => assert!(e.message().starts_with("handshake READONLY: ERR")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_hello_falls_back_and_auth_failure_fails() {
        let p = params();
        let no_hello = Reply::text(ReplyKind::Error, b"ERR unknown command 'HELLO'");
        let noauth = Reply::text(ReplyKind::Error, b"NOAUTH Authentication required.");
        assert!(matches!(
            p.check(Stage::Hello, &[&no_hello, &noauth]),
            Outcome::Fallback
        ));

        let wrongpass = Reply::text(
            ReplyKind::Error,
            b"WRONGPASS invalid username-password pair",
        );
        match p.check(Stage::Hello, &[&wrongpass, &noauth]) {
            Outcome::Failed(e) => {
                assert_eq!(e.status(), crate::core::Status::Auth);
                assert!(e.message().starts_with("handshake HELLO: WRONGPASS"));
                assert!(!e.message().contains("s3cret"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn select_failure_is_reported() {
        let p = params();
        let ok = Reply::text(ReplyKind::Status, b"OK");
        let bad_db = Reply::text(ReplyKind::Error, b"ERR DB index is out of range");
        match p.check(Stage::Hello, &[&ok, &bad_db]) {
            Outcome::Failed(e) => assert_eq!(
                e.message(),
                "handshake SELECT: ERR DB index is out of range"
            ),
            other => panic!("{other:?}"),
        }
    }

    /// The runner asks for a write, which the test takes as written.
    fn wrote(hs: &mut Handshake, proto: &mut Protocol) {
        assert_eq!(hs.poll(proto).unwrap(), Step::Write);
        let n = proto.output().len();
        proto.consume_output(n);
    }

    /// A reply after the handshake's last one would answer the first request: the handshake
    /// fails (PROTOCOL) instead of leaving it there.
    #[test]
    fn the_runner_refuses_replies_past_its_own() {
        let p = params();
        let mut proto = Protocol::default();
        let mut hs = Handshake::new(&p);
        wrote(&mut hs, &mut proto);
        proto
            .input_buffer()
            .extend_from_slice(b"-ERR unknown command 'HELLO'\r\n-NOAUTH x\r\n");
        wrote(&mut hs, &mut proto);
        proto
            .input_buffer()
            .extend_from_slice(b"+OK\r\n+OK\r\n+OK\r\n+stray\r\n");
        let e = hs.poll(&mut proto).unwrap_err();
        assert_eq!(e.status(), Status::Protocol, "{e}");
        assert!(!e.is_sent());
    }

    /// The runner on bytes: a server without HELLO gets the legacy plan after its error, and the
    /// replies may arrive in any pieces.
    #[test]
    fn the_runner_falls_back_and_reads_in_pieces() {
        let p = params();
        let mut proto = Protocol::default();
        let mut hs = Handshake::new(&p);
        assert_eq!(hs.poll(&mut proto).unwrap(), Step::Write);
        assert!(proto.output().starts_with(b"*7\r\n$5\r\nHELLO"));
        let n = proto.output().len();
        proto.consume_output(n);
        assert_eq!(hs.poll(&mut proto).unwrap(), Step::Read);
        for piece in [&b"-ERR unknown command 'HE"[..], b"LLO'\r\n-NOAUTH x\r"] {
            proto.input_buffer().extend_from_slice(piece);
            assert_eq!(hs.poll(&mut proto).unwrap(), Step::Read);
        }
        proto.input_buffer().extend_from_slice(b"\n");
        assert_eq!(
            hs.poll(&mut proto).unwrap(),
            Step::Write,
            "legacy plan queued"
        );
        assert!(proto.output().starts_with(b"*3\r\n$4\r\nAUTH"));
        let n = proto.output().len();
        proto.consume_output(n);
        proto
            .input_buffer()
            .extend_from_slice(b"+OK\r\n+OK\r\n+OK\r\n");
        assert_eq!(hs.poll(&mut proto).unwrap(), Step::Ready { resp3: false });

        let bare = Params {
            protocol: 2,
            ..Params::default()
        };
        let mut hs = Handshake::new(&bare);
        assert_eq!(hs.poll(&mut proto).unwrap(), Step::Ready { resp3: false });
        assert!(proto.output().is_empty(), "nothing to send, no round trip");

        let mut hs = Handshake::new(&p);
        wrote(&mut hs, &mut proto);
        proto
            .input_buffer()
            .extend_from_slice(b"-WRONGPASS nope\r\n-NOAUTH x\r\n");
        let e = hs.poll(&mut proto).unwrap_err();
        assert_eq!(e.status(), crate::core::Status::Auth);
        assert!(!e.is_sent());
    }
}
