//! The connection-URL parser (`brisk::config::url::apply`, what `Config::set_url` runs): no
//! panic on any text; a rejected URL leaves the config as it was, with an INVALID_ARGUMENT error
//! that does not depend on (so cannot quote) the password.
#![no_main]

use brisk::Status;
use brisk::config::{Config, url};
use libfuzzer_sys::fuzz_target;

/// Everything in a config, the password included (its `Debug` hides it).
fn everything(cfg: &Config) -> String {
    format!("{cfg:?} {:?}", cfg.password.as_ref().map(|p| p.expose()))
}

/// Where the password is as the writer of `url` meant it: after the first ':' of what lies
/// between "://" and the last '@'. (The parser reads a password with an unencoded '/' or '?'
/// differently, which is exactly when it must take care not to quote it.)
fn meant_password(url: &str) -> Option<std::ops::Range<usize>> {
    let userinfo_start = url.find("://")? + 3;
    let userinfo_end = url.rfind('@')?;
    let colon = url.get(userinfo_start..userinfo_end)?.find(':')?;
    Some(userinfo_start + colon + 1..userinfo_end)
}

/// `url` with another password of the same shape: the letters g-z (not hex digits, so percent
/// escapes stay as they were) shifted by one, everything else kept, so the URL is read the
/// same way.
fn other_password(url: &str, password: std::ops::Range<usize>) -> String {
    let shift = |c: char| match c {
        'z' => 'g',
        'Z' => 'G',
        'g'..='y' | 'G'..='Y' => char::from(c as u8 + 1),
        c => c,
    };
    let mut other = url[..password.start].to_owned();
    other.extend(url[password.clone()].chars().map(shift));
    other.push_str(&url[password.end..]);
    other
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut cfg = Config::default();
    let before = everything(&cfg);
    let Err(e) = url::apply(&mut cfg, text) else {
        let _ = cfg.validate();
        return;
    };
    assert_eq!(e.status(), Status::InvalidArgument, "{}", e.message());
    assert_eq!(
        everything(&cfg),
        before,
        "a rejected URL changed the config"
    );
    if let Some(password) = meant_password(text) {
        let other = other_password(text, password);
        // Shifting letters can make a step that passed fail earlier (an option name in the
        // password becomes unknown); that error is about text before the '@', so it is
        // redacted. Two unredacted errors are about the same text after the '@'.
        let redacted = |message: &str| message.contains("not quoted, as it may hold part of");
        if let Err(e2) = url::apply(&mut Config::default(), &other)
            && !redacted(e.message())
            && !redacted(e2.message())
        {
            assert_eq!(
                e.message(),
                e2.message(),
                "the error depends on the password ({text:?} and {other:?})"
            );
        }
    }
});
