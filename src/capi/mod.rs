//! The C ABI. Each C type has its own module; `boundary` holds the plumbing they share
//! (handle casts, NULL checks, the panic guard and the thread-local error message), `args`
//! turns C's argv into `resp::Args`, `reply_memory` reuses the memory of freed reply handles.

mod args;
mod boundary;
pub mod client;
mod commandf;
pub mod config;
pub mod event;
pub mod pipeline;
pub mod reply;
mod reply_memory;
pub mod retry;
pub mod session;
pub mod status;
pub mod subscriber;
pub mod trace;
pub mod watch;

#[cfg(test)]
mod header_tests {
    /// The committed header must be exactly what cbindgen generates from this code, and every
    /// name in it must carry the brisk prefix.
    #[test]
    fn committed_header_is_current() {
        let generated = include_str!(concat!(env!("OUT_DIR"), "/brisk.h"));
        let committed =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/brisk.h"))
                .expect("include/brisk.h exists");
        assert!(
            generated == committed,
            "include/brisk.h is stale: run `BRISK_UPDATE_HEADER=1 cargo build` and commit it"
        );
    }

    #[test]
    fn every_exported_name_has_the_brisk_prefix() {
        let header = include_str!(concat!(env!("OUT_DIR"), "/brisk.h"));
        for line in header.lines() {
            let name = if let Some(rest) = line.strip_prefix("#define ") {
                rest.split_whitespace().next()
            } else if let Some(rest) = line.strip_prefix("typedef ") {
                match rest.split_once("(*") {
                    // A function pointer type: `typedef void (*name)(...`.
                    Some((_, after)) => after.split(')').next(),
                    // A struct with fields: its name is on the closing line.
                    None if rest.ends_with('{') => None,
                    None => rest.trim_end_matches(';').split_whitespace().last(),
                }
            } else if let Some(rest) = line.strip_prefix("} ") {
                // The closing line of a struct with fields: `} name;`.
                rest.strip_suffix(';')
            } else {
                None
            };
            if let Some(name) = name {
                assert!(
                    name.starts_with("brisk_") || name.starts_with("BRISK_"),
                    "header exports {name:?} without the brisk prefix"
                );
            }
        }
        for line in header.lines().filter(|l| {
            l.contains('(')
                && !l.starts_with(' ')
                && !l.starts_with('*')
                && !l.starts_with('/')
                && !l.starts_with('#')
                && !l.starts_with("typedef")
        }) {
            let before_paren = line.split('(').next().unwrap_or_default();
            let name = before_paren.rsplit([' ', '*']).next().unwrap_or_default();
            assert!(
                name.starts_with("brisk_"),
                "header declares {name:?} without the brisk prefix"
            );
        }
    }
}
