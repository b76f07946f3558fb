//! Connecting against real servers: transports (TCP, Unix socket, TLS), authentication, the
//! handshake (db, client name, protocol), timeouts, and failures of every kind.

mod support;

use brisk::{Client, Config, Error, Status};
use support::{
    FullBacklog, RedisServer, ScriptedServer, SilentServer, assert_at_most, assert_between,
    binary_value, client, client_for, client_info_field, closed_port, cmd, config_for, expect_err,
    ok, ok_bytes, setup_ok, text, timed,
};

/// `CLIENT INFO` of the connection a pooled command runs on.
fn client_info(client: &Client) -> String {
    text(&ok(client, &["CLIENT", "INFO"]))
}

/// Fails if any rendering of `error` contains one of `secrets`.
#[track_caller]
fn assert_secret_free(error: &Error, secrets: &[&str]) {
    for rendered in [
        error.message().to_owned(),
        error.to_string(),
        format!("{error:?}"),
    ] {
        for secret in secrets {
            assert!(
                !rendered.contains(secret),
                "error message leaks a password: {rendered}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication

const PASSWORD: &str = "Secr3t-requirepass";
const WRONG: &str = "Wr0ng-guess";

#[test]
fn requirepass_accepts_the_password_and_rejects_others() {
    let server = RedisServer::builder().password(PASSWORD).start();
    let port = server.port();

    // In the URL, and set on the config directly; RESP3 (HELLO AUTH) and RESP2 (AUTH).
    let c = client_for(&format!("redis://:{PASSWORD}@127.0.0.1:{port}"));
    c.ping().expect("PING with the password");
    let mut config = server.config();
    config.password = Some(PASSWORD.to_owned().into());
    config.set_protocol(2).unwrap();
    let c = client(&config);
    c.ping().expect("PING with the password over RESP2");
    assert_eq!(client_info_field(&client_info(&c), "resp"), "2");
    assert!(!format!("{config:?}").contains(PASSWORD), "Debug shows it");

    // Also over the Unix socket.
    let unix = format!("unix://:{PASSWORD}@{}", server.unix_path().display());
    client_for(&unix)
        .ping()
        .expect("PING over unix with password");

    // A malformed URL is reported without echoing the password in it.
    for bad in [
        format!("redis://:{PASSWORD}@127.0.0.1:notaport"),
        format!("redis://:{PASSWORD}@127.0.0.1:{port}/x"),
        format!("redis://:{PASSWORD}@127.0.0.1:{port}?nosuchoption=1"),
    ] {
        let e = expect_err(Config::default().set_url(&bad), Status::InvalidArgument);
        assert_secret_free(&e, &[PASSWORD]);
    }

    for protocol in [3, 2] {
        let wrong = client_for(&format!(
            "redis://:{WRONG}@127.0.0.1:{port}?protocol={protocol}"
        ));
        let e = expect_err(wrong.ping(), Status::Auth);
        assert!(e.message().contains("WRONGPASS"), "{}", e.message());
        assert_secret_free(&e, &[PASSWORD, WRONG]);
        assert_eq!(
            wrong.stat(brisk::stats::Stat::PoolOpen) as usize,
            0,
            "failed handshake leaked"
        );

        // No password at all: NOAUTH from HELLO (RESP3) or from the command itself (RESP2).
        let none = client_for(&format!("redis://127.0.0.1:{port}?protocol={protocol}"));
        let e = expect_err(none.ping(), Status::Auth);
        assert!(e.message().contains("NOAUTH"), "{}", e.message());
    }
}

#[test]
fn acl_users_and_permissions() {
    const ALICE: &str = "alice-Secr3t";
    const READER: &str = "reader-Secr3t";
    // Characters that need percent-encoding in a URL.
    const SPECIAL: &str = "p@ss:w/rd%x?#";
    let server = RedisServer::builder()
        .config(&format!("user alice on >{ALICE} ~* &* +@all"))
        .config(&format!("user reader on >{READER} ~* &* +@all -set"))
        .config(&format!("user special on >{SPECIAL} ~* &* +@all"))
        .start();
    let port = server.port();

    let special = client_for(&format!(
        "redis://special:p%40ss%3Aw%2Frd%25x%3F%23@127.0.0.1:{port}"
    ));
    assert_eq!(text(&ok(&special, &["ACL", "WHOAMI"])), "special");

    let alice = client_for(&format!("redis://alice:{ALICE}@127.0.0.1:{port}"));
    assert_eq!(text(&ok(&alice, &["ACL", "WHOAMI"])), "alice");
    ok(&alice, &["SET", "shared", "from-alice"]);

    // The same user given on the config, over RESP2 (AUTH user pass).
    let mut config = server.config();
    config.username = Some("alice".into());
    config.password = Some(ALICE.to_owned().into());
    config.set_protocol(2).unwrap();
    assert_eq!(text(&ok(&client(&config), &["ACL", "WHOAMI"])), "alice");

    let reader = client_for(&format!("redis://reader:{READER}@127.0.0.1:{port}"));
    assert_eq!(text(&ok(&reader, &["ACL", "WHOAMI"])), "reader");
    let e = expect_err(cmd(&reader, &["SET", "shared", "x"]), Status::Auth);
    assert!(e.message().contains("NOPERM"), "{}", e.message());
    assert_secret_free(&e, &[READER, ALICE]);
    // A permission error is a reply: the connection stays and GET works on it.
    assert_eq!(text(&ok(&reader, &["GET", "shared"])), "from-alice");
    assert_eq!(reader.stat(brisk::stats::Stat::PoolOpen) as usize, 1);

    for protocol in [3, 2] {
        let wrong = client_for(&format!(
            "redis://alice:{WRONG}@127.0.0.1:{port}?protocol={protocol}"
        ));
        let e = expect_err(wrong.ping(), Status::Auth);
        assert_secret_free(&e, &[WRONG, ALICE]);
        let nobody = client_for(&format!(
            "redis://nobody:{ALICE}@127.0.0.1:{port}?protocol={protocol}"
        ));
        let e = expect_err(nobody.ping(), Status::Auth);
        assert_secret_free(&e, &[ALICE]);
    }
}

// ---------------------------------------------------------------------------------------------
// The handshake: db, client name, protocol

#[test]
fn db_from_the_url_path_the_option_and_the_config() {
    let server = RedisServer::start();
    let base = server.url();

    let c3 = client_for(&format!("{base}/3"));
    assert_eq!(client_info_field(&client_info(&c3), "db"), "3");
    ok(&c3, &["SET", "where", "db3"]);

    let c4 = client_for(&format!("{base}?db=4"));
    assert_eq!(client_info_field(&client_info(&c4), "db"), "4");

    let mut config = server.config();
    config.db = 5;
    assert_eq!(client_info_field(&client_info(&client(&config)), "db"), "5");

    // RESP2 selects with a separate SELECT.
    let c3_resp2 = client_for(&format!("{base}/3?protocol=2"));
    let info = client_info(&c3_resp2);
    assert_eq!(client_info_field(&info, "db"), "3");
    assert_eq!(client_info_field(&info, "resp"), "2");
    assert_eq!(text(&ok(&c3_resp2, &["GET", "where"])), "db3");

    // The key really is in db 3 only.
    let c0 = client_for(&base);
    assert!(ok(&c0, &["GET", "where"]).is_nil());
    assert_eq!(server.cli(&["-n", "3", "GET", "where"]), "db3");

    // A db the server does not have fails the handshake with the server's text.
    let c99 = client_for(&format!("{base}/99"));
    let e = expect_err(c99.ping(), Status::Server);
    assert!(e.message().contains("out of range"), "{}", e.message());
    assert_eq!(c99.stat(brisk::stats::Stat::PoolOpen) as usize, 0);
}

#[test]
fn client_name_from_the_url_and_the_config() {
    let server = RedisServer::start();
    let base = server.url();

    let c = client_for(&format!("{base}?client_name=brisk-url"));
    assert_eq!(text(&ok(&c, &["CLIENT", "GETNAME"])), "brisk-url");

    let mut config = server.config();
    config.set_client_name("brisk-config").unwrap();
    assert_eq!(
        text(&ok(&client(&config), &["CLIENT", "GETNAME"])),
        "brisk-config"
    );
    config.set_protocol(2).unwrap();
    assert_eq!(
        text(&ok(&client(&config), &["CLIENT", "GETNAME"])),
        "brisk-config"
    );

    assert!(ok(&client_for(&base), &["CLIENT", "GETNAME"]).is_nil());
}

#[test]
fn resp3_by_default_resp2_on_request() {
    let server = RedisServer::builder().password(PASSWORD).start();
    let port = server.port();
    // Everything the handshake sets, at once, for both protocols.
    for (protocol, resp) in [("", "3"), ("&protocol=3", "3"), ("&protocol=2", "2")] {
        let url =
            format!("redis://:{PASSWORD}@127.0.0.1:{port}/2?client_name=all-in-one{protocol}");
        let info = client_info(&client_for(&url));
        assert_eq!(client_info_field(&info, "resp"), resp, "{url}");
        assert_eq!(client_info_field(&info, "db"), "2");
        assert_eq!(client_info_field(&info, "name"), "all-in-one");
        assert_eq!(client_info_field(&info, "user"), "default");
    }
}

// ---------------------------------------------------------------------------------------------
// Unix socket

#[test]
fn unix_socket_by_url_and_by_path() {
    let server = RedisServer::start();
    let path = server.unix_path();

    let by_url = client_for(&format!("unix://{}", path.display()));
    ok(&by_url, &["SET", "transport", "unix"]);
    // A Unix client shows up with the socket path as its address.
    let info = client_info(&by_url);
    assert!(
        client_info_field(&info, "laddr").starts_with(&path.display().to_string()),
        "{info}"
    );

    let with_db = client_for(&format!("unix://{}?db=2", path.display()));
    assert_eq!(client_info_field(&client_info(&with_db), "db"), "2");

    let mut config = Config::default();
    config.set_unix_path(path.to_str().unwrap()).unwrap();
    let by_path = client(&config);
    assert_eq!(text(&ok(&by_path, &["GET", "transport"])), "unix");

    let mut missing = Config::default();
    missing
        .set_unix_path(server.dir().join("missing.sock").to_str().unwrap())
        .unwrap();
    expect_err(client(&missing).ping(), Status::Connection);
}

// ---------------------------------------------------------------------------------------------
// TLS

#[test]
fn tls_verifies_the_server_with_a_ca_file() {
    let server = RedisServer::builder().tls().start();
    let c = client(&server.config());
    ok(&c, &["SET", "over", "tls"]);
    assert_eq!(text(&ok(&c, &["GET", "over"])), "tls");
    // The pooled TLS connection is reused: the stale check must not mistake post-handshake TLS
    // records (session tickets) for a closed connection.
    let id = client_info_field(&client_info(&c), "id");
    for _ in 0..3 {
        ok(&c, &["PING"]);
        assert_eq!(client_info_field(&client_info(&c), "id"), id);
    }

    // The certificate also names localhost.
    let mut config = config_for(&format!("rediss://localhost:{}", server.port()));
    config.tls.ca_file = Some(server.tls().ca_cert.clone());
    client(&config).ping().expect("PING via localhost");
}

#[test]
fn tls_with_the_wrong_ca_fails() {
    let server = RedisServer::builder().tls().start();
    let mut config = server.config();
    config.tls.ca_file = Some(server.tls().other_ca_cert.clone());
    let c = client(&config);
    let e = expect_err(c.ping(), Status::Tls);
    assert!(e.message().contains("certificate"), "{}", e.message());
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 0);
}

#[test]
fn tls_insecure_skip_verify_accepts_any_certificate() {
    let server = RedisServer::builder().tls().start();
    let c = client_for(&format!("{}?tls_insecure_skip_verify=true", server.url()));
    c.ping().expect("PING without verification");

    let mut config = server.config();
    config.tls.ca_file = Some(server.tls().other_ca_cert.clone());
    config.tls.insecure_skip_verify = true;
    client(&config)
        .ping()
        .expect("PING with a wrong CA but no verification");
}

#[test]
fn tls_server_name_must_match_the_certificate() {
    let server = RedisServer::builder().tls().start();
    let mut config = server.config();
    config.tls.server_name = Some("wrong.example.com".into());
    let e = expect_err(client(&config).ping(), Status::Tls);
    assert!(
        e.message().to_ascii_lowercase().contains("name"),
        "{}",
        e.message()
    );

    // Connecting to 127.0.0.1 while checking the name localhost works.
    config.tls.server_name = Some("localhost".into());
    client(&config)
        .ping()
        .expect("PING with server name localhost");
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let server = RedisServer::builder().tls_require_client_cert().start();
    let files = server.tls().clone();

    let mut with_cert = server.config();
    with_cert.tls.client_cert = Some((files.client_cert.clone(), files.client_key.clone()));
    client(&with_cert).ping().expect("PING with a client cert");

    let without = client(&server.config());
    let e = without.ping().expect_err("no client certificate");
    // TLS 1.3 finishes the client's side of the handshake before the server checks the
    // certificate, so the refusal (an alert) arrives on the first read.
    assert_eq!(e.status(), Status::Tls, "{}", e.message());
    assert_eq!(without.stat(brisk::stats::Stat::PoolOpen) as usize, 0);
}

#[test]
fn tls_carries_an_eight_mib_value() {
    let server = RedisServer::builder().tls().start();
    let c = client(&server.config());
    let value = binary_value(8 * 1024 * 1024);
    ok_bytes(&c, &[b"SET", b"big", &value]);
    let reply = ok_bytes(&c, &[b"GET", b"big"]);
    assert!(reply.as_bytes() == Some(value.as_slice()), "value differs");
    assert_eq!(text(&ok(&c, &["PING"])), "PONG");
}

#[test]
fn tls_timeouts() {
    // A peer that never starts the TLS handshake.
    let silent = SilentServer::start();
    let c = client_for(&format!(
        "rediss://127.0.0.1:{}?tls_insecure_skip_verify=true&read_timeout=300",
        silent.port()
    ));
    let (result, took) = timed(|| c.ping());
    expect_err(result, Status::Timeout);
    assert_at_most(
        took,
        3000,
        "TLS handshake with a silent peer (300 ms read timeout)",
    );

    // A TLS server that stops answering after the connection is up.
    let server = RedisServer::builder().tls().start();
    let mut config = server.config();
    config.set_read_timeout_ms(300);
    let c = client(&config);
    setup_ok(&c, &["SET", "a", "value-of-a"]);
    server.sigstop();
    let (result, took) = timed(|| cmd(&c, &["GET", "a"]));
    server.sigcont();
    expect_err(result, Status::Timeout);
    assert_at_most(took, 3000, "a stopped TLS server (300 ms read timeout)");
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 0);
    assert_eq!(text(&ok(&c, &["ECHO", "fresh"])), "fresh");
}

// ---------------------------------------------------------------------------------------------
// Timeouts and failures

#[test]
fn read_timeout_on_a_server_that_never_answers() {
    let silent = SilentServer::start();
    // RESP3 times out in the handshake, RESP2 (no handshake) in the command itself.
    for protocol in [3, 2] {
        let c = client_for(&format!(
            "{}?read_timeout=300&protocol={protocol}",
            silent.url()
        ));
        let (result, took) = timed(|| c.ping());
        let e = expect_err(result, Status::Timeout);
        assert_between(took, 250, 3000, "a silent server (300 ms read timeout)");
        assert!(e.message().contains("300 ms"), "{}", e.message());
        assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 0);
        // SAFE retries depend on this: the PING itself was never written. RESP3 timed out in
        // the handshake; RESP2 (no handshake) in the client's first exchange on a new
        // connection, the command-table fetch, and the PING is not written on a connection
        // that failed. (A request that was written and then timed out is `sent`: see
        // stopped_server_times_out_and_the_connection_is_discarded.)
        assert!(!e.is_sent(), "is_sent with protocol {protocol}");
        if protocol == 2 {
            assert!(e.message().contains("command table"), "{}", e.message());
        }
    }
}

#[test]
fn connect_timeout_when_the_server_does_not_accept() {
    let full = FullBacklog::start();
    let c = client_for(&format!("{}?connect_timeout=300", full.url()));
    let (result, took) = timed(|| c.ping());
    expect_err(result, Status::Timeout);
    assert_between(took, 250, 3000, "a full backlog (300 ms connect timeout)");
}

#[test]
fn stopped_server_times_out_and_the_connection_is_discarded() {
    let server = RedisServer::start();
    // No retries: this is about the one connection that timed out mid-reply.
    let c = client_for(&format!("{}?read_timeout=300&max_retries=0", server.url()));
    setup_ok(&c, &["SET", "a", "value-of-a"]);
    setup_ok(&c, &["SET", "b", "value-of-b"]);
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 1);
    let id = client_info_field(&client_info(&c), "id");

    server.sigstop();
    let (result, took) = timed(|| cmd(&c, &["GET", "a"]));
    server.sigcont();
    let e = expect_err(result, Status::Timeout);
    assert!(e.is_sent(), "GET was written before the timeout");
    // One attempt: even widened, short of the 5 s default timeout.
    assert_at_most(took, 2400, "a stopped server (300 ms read timeout)");
    // The connection may still receive GET a's reply: it must be closed, not pooled.
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 0);

    // A fresh connection, and the reply to this command, not the stale one.
    assert_eq!(text(&ok(&c, &["GET", "b"])), "value-of-b");
    assert_eq!(text(&ok(&c, &["GET", "a"])), "value-of-a");
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 1);
    assert_ne!(client_info_field(&client_info(&c), "id"), id);
}

#[test]
fn write_timeout_on_a_stopped_server() {
    let server = RedisServer::start();
    let c = client_for(&format!(
        "{}?read_timeout=300&write_timeout=300",
        server.url()
    ));
    setup_ok(&c, &["PING"]);
    // More than the loopback socket buffers hold, so the write itself blocks.
    let value = vec![b'x'; 32 * 1024 * 1024];
    server.sigstop();
    let (result, took) = timed(|| c.command(&brisk::Args::from_slices(&[b"SET", b"big", &value])));
    server.sigcont();
    let e = expect_err(result, Status::Timeout);
    assert!(e.is_sent(), "part of the request was written");
    // One attempt: even widened, short of the 5 s default timeout.
    assert_at_most(took, 2400, "a blocked write (300 ms write timeout)");
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 0);
    // The server got a truncated request on a closed connection and applied nothing.
    assert!(ok(&c, &["GET", "big"]).is_nil());
}

#[test]
fn closed_port_is_a_connection_error() {
    let port = closed_port();
    let c = client_for(&port.url());
    let (result, took) = timed(|| c.ping());
    let e = expect_err(result, Status::Connection);
    assert!(e.message().contains("refused"), "{}", e.message());
    assert!(!e.is_sent());
    assert_at_most(took, 3000, "a refused connection");
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 0);
}

#[test]
fn garbage_from_the_server_is_a_protocol_error() {
    for garbage in [
        &b"this is not RESP\r\n"[..],
        b"$abc\r\n",
        b"*-5x\r\n",
        b":12three\r\n",
    ] {
        let server = ScriptedServer::replying(garbage);
        for protocol in [3, 2] {
            let c = client_for(&format!("{}?protocol={protocol}", server.url()));
            let e = expect_err(c.ping(), Status::Protocol);
            assert!(!e.message().is_empty());
            // RESP3: garbage in the handshake; RESP2: in the reply to the client's own COMMAND
            // (the command-table fetch). Either way the PING was never written.
            assert!(!e.is_sent(), "is_sent with protocol {protocol}");
            assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 0);
        }
    }
}

#[test]
fn reply_that_stops_halfway_is_a_timeout() {
    let server = ScriptedServer::replying(b"$10\r\nabc");
    let c = client_for(&format!("{}?protocol=2&read_timeout=300", server.url()));
    let (result, took) = timed(|| c.ping());
    expect_err(result, Status::Timeout);
    assert_at_most(
        took,
        3000,
        "a reply that stops halfway (300 ms read timeout)",
    );
    assert_eq!(
        c.stat(brisk::stats::Stat::PoolOpen) as usize,
        0,
        "a half-read connection must be closed"
    );
}

#[test]
fn reply_cut_short_is_a_connection_error() {
    let server = ScriptedServer::replying_then_closing(b"$10\r\nabc");
    let c = client_for(&format!("{}?protocol=2", server.url()));
    expect_err(c.ping(), Status::Connection);
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 0);
}

#[test]
fn reconnects_after_client_kill() {
    let server = RedisServer::start();
    let c = client_for(&server.url());
    ok(&c, &["SET", "k", "v"]);
    let id = client_info_field(&client_info(&c), "id");
    let killed = server.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
    assert_eq!(
        killed, "1",
        "redis-cli skips itself, our one connection goes"
    );

    // The first command may see the dead connection; the next one must work.
    if let Err(e) = cmd(&c, &["GET", "k"]) {
        assert_eq!(e.status(), Status::Connection, "{}", e.message());
    }
    assert_eq!(text(&ok(&c, &["GET", "k"])), "v");
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 1);
    assert_ne!(
        client_info_field(&client_info(&c), "id"),
        id,
        "a new connection"
    );
}

#[test]
fn stale_pooled_connection_is_replaced_before_use() {
    // API.md: a pooled connection is peeked before use, so one the server closed while it was
    // idle is replaced before a request is written to it: no failure at all.
    let server = RedisServer::start();
    let c = client_for(&server.url());
    for round in 0..3 {
        ok(&c, &["PING"]);
        assert_eq!(server.cli(&["CLIENT", "KILL", "TYPE", "normal"]), "1");
        assert_eq!(text(&ok(&c, &["PING"])), "PONG", "round {round}");
    }
}
