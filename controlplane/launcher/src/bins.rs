//! Finding the binaries a node runs (`weft-dataplane`, `weft-controld`).
//!
//! The order, most explicit first:
//!
//! 1. the command-line override (`--dataplane-bin`, `--controld-bin`);
//! 2. the directory in `$WEFT_BIN_DIR`;
//! 3. the directory of the launcher's own executable (`std::env::current_exe()`), which is where
//!    `cargo build` and an install put all of Weft's binaries side by side.
//!
//! `$PATH` is never searched: a node should run the data and control planes of the same build as
//! its launcher, not whatever an unrelated directory holds. A file that is found but is not an
//! executable regular file is an error, not a reason to look further.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::LaunchError;

/// The environment variable naming a directory that holds the node's binaries.
pub const BIN_DIR_ENV: &str = "WEFT_BIN_DIR";

/// The places the launcher looks for a binary, besides an explicit override.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BinSearch {
    /// The value of `$WEFT_BIN_DIR`, if it is set and not empty.
    pub env_dir: Option<PathBuf>,
    /// The directory of the launcher's own executable, if the system says what it is.
    pub exe_dir: Option<PathBuf>,
}

impl BinSearch {
    /// The search of this process: `$WEFT_BIN_DIR` and the directory of `current_exe()`.
    pub fn from_env() -> BinSearch {
        BinSearch {
            env_dir: std::env::var_os(BIN_DIR_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            exe_dir: std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf)),
        }
    }

    /// Finds binary `name`. `flag` names the override option in messages; `given` is its value.
    pub fn find(
        &self,
        name: &'static str,
        flag: &'static str,
        given: Option<&Path>,
    ) -> Result<PathBuf, LaunchError> {
        if let Some(path) = given {
            return match check(path) {
                Ok(()) => Ok(path.to_path_buf()),
                Err(why) => Err(LaunchError::MissingBinary {
                    name,
                    looked: format!("{flag} {}: {why}", path.display()),
                }),
            };
        }
        let mut looked = Vec::new();
        let places = [
            (&self.env_dir, format!("${BIN_DIR_ENV}")),
            (&self.exe_dir, "the launcher's directory".to_owned()),
        ];
        for (dir, label) in places {
            let Some(dir) = dir else { continue };
            let path = dir.join(name);
            match check(&path) {
                Ok(()) => return Ok(path),
                // A file that is there but unusable is reported, not skipped over.
                Err(why) if path.exists() => {
                    return Err(LaunchError::MissingBinary {
                        name,
                        looked: format!("{} ({label}): {why}", path.display()),
                    });
                }
                Err(_) => looked.push(format!("{} ({label})", path.display())),
            }
        }
        let mut text = if looked.is_empty() {
            "no directory to look in".to_owned()
        } else {
            format!("not found at {}", looked.join(" or "))
        };
        text.push_str(&format!(
            "; build it (cargo build -p {name}), or give {flag} PATH or ${BIN_DIR_ENV}"
        ));
        Err(LaunchError::MissingBinary { name, looked: text })
    }
}

/// `Ok` if `path` is a regular file with an execute bit; otherwise why not.
fn check(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err("not executable".to_owned());
    }
    Ok(())
}

/// The command line of a child as text, for log lines.
pub(crate) fn show_command(bin: &Path, args: &[OsString]) -> String {
    let mut s = bin.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weft-bins-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn make(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn override_then_env_then_own_directory() {
        let env = temp_dir("env");
        let own = temp_dir("own");
        let other = temp_dir("other");
        make(&env, "weft-dataplane", 0o755);
        make(&own, "weft-dataplane", 0o755);
        make(&own, "weft-controld", 0o755);
        let forced = make(&other, "dp", 0o755);
        let search = BinSearch {
            env_dir: Some(env.clone()),
            exe_dir: Some(own.clone()),
        };
        let f = |name, given: Option<&Path>| search.find(name, "--x-bin", given).unwrap();
        assert_eq!(f("weft-dataplane", Some(&forced)), forced);
        assert_eq!(f("weft-dataplane", None), env.join("weft-dataplane"));
        // Not in $WEFT_BIN_DIR: falls back to the launcher's own directory.
        assert_eq!(f("weft-controld", None), own.join("weft-controld"));
        for d in [env, own, other] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn missing_and_unusable_binaries_are_named() {
        let dir = temp_dir("missing");
        make(&dir, "weft-controld", 0o644);
        let search = BinSearch {
            env_dir: None,
            exe_dir: Some(dir.clone()),
        };
        let e = search
            .find("weft-dataplane", "--dataplane-bin", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot find weft-dataplane: not found at "),
            "{e}"
        );
        assert!(e.contains("--dataplane-bin PATH"), "{e}");
        let e = search
            .find("weft-controld", "--controld-bin", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("(the launcher's directory): not executable"),
            "{e}"
        );
        let e = search
            .find("weft-controld", "--controld-bin", Some(&dir))
            .unwrap_err()
            .to_string();
        assert!(e.ends_with(": not a regular file"), "{e}");
        assert!(e.contains("--controld-bin "), "{e}");
        let e = BinSearch::default()
            .find("weft-controld", "--controld-bin", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no directory to look in"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
