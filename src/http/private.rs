//! The private directory that holds the webhooks' Unix socket: only this user may enter
//! it, so only the gate reaches tiny_http. It goes in the first of several places that is
//! writable, so a host without a writable temporary directory still serves.

use std::{
    io,
    os::unix::fs::{DirBuilderExt, MetadataExt},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{
    error::{Error, Result},
    http::hop::SOCKET_NAME,
};

/// What the directories' names start with; the process id follows.
const PREFIX: &str = "vonage-echo-";

/// Where the directory may go, in order: the temporary directory (`TMPDIR`), the user's
/// runtime directory, then the usual writable places.
fn places() -> Vec<PathBuf> {
    let mut places = vec![std::env::temp_dir()];
    places.extend(std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from));
    places.extend(["/dev/shm", "/tmp", "/var/tmp"].map(PathBuf::from));
    let mut seen = Vec::new();
    places.retain(|p| {
        !seen.contains(p) && {
            seen.push(p.clone());
            true
        }
    });
    places
}

/// Makes a private directory in the first place that takes one and where `bind` succeeds
/// on the socket's path in it (a path may also be too long for a Unix socket); the error
/// names every place tried.
pub(crate) fn bind_in_private_dir<T>(bind: impl Fn(&Path) -> Result<T>) -> Result<(PathBuf, T)> {
    let mut tried = Vec::new();
    for place in places() {
        sweep_stale(&place);
        let dir = place.join(format!("{PREFIX}{}-{}", std::process::id(), nanos()));
        let made = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        if let Err(e) = made {
            tried.push(format!("{}: {e}", place.display()));
            continue;
        }
        match bind(&dir.join(SOCKET_NAME)) {
            Ok(bound) => return Ok((dir, bound)),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                tried.push(format!("{}: {e}", place.display()));
            }
        }
    }
    Err(Error::io(
        "making a private directory for the webhooks' socket",
        io::Error::other(tried.join("; ")),
    ))
}

fn nanos() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

/// Removes this user's directories left by processes that are gone: the socket lives as
/// long as its process, and nothing runs after a process ends to remove it.
fn sweep_stale(place: &Path) {
    let Ok(me) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(place) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let ours = entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == me);
        if ours && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_that_refuses_is_passed_over() {
        let (dir, path) = bind_in_private_dir(|path| {
            if path.starts_with(std::env::temp_dir()) {
                Err(Error::io("binding", io::Error::other("refused")))
            } else {
                Ok(path.to_owned())
            }
        })
        .unwrap();
        assert!(!dir.starts_with(std::env::temp_dir()));
        assert_eq!(path, dir.join(SOCKET_NAME));
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
