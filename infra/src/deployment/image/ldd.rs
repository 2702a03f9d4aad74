//! The shared libraries a dynamically linked binary loads, as `ldd` lists them, so an image
//! `FROM scratch` can hold exactly those (the dynamic loader included) at the paths the binary
//! finds them on this machine.

use std::path::{Path, PathBuf};

use super::ImageError;
use crate::deployment::docker;

/// Every file `ldd` lists for `bin`: its libraries and the dynamic loader (the kernel's vDSO is
/// no file); none for a static binary.
pub(super) fn libraries(bin: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let fail = |reason: String| ImageError::Ldd {
        bin: bin.display().to_string(),
        reason,
    };
    let bin_s = bin.display().to_string();
    match docker::run(
        &["ldd".to_owned()],
        &[&bin_s],
        None,
        &[],
        docker::COMMAND_TIMEOUT,
    ) {
        Ok(out) => parse(&out).map_err(fail),
        Err(e) if e.reason.contains("not a dynamic executable") => Ok(Vec::new()),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// The files of `ldd`'s output; an error naming the libraries it could not find.
fn parse(out: &str) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for line in out.lines().map(str::trim) {
        let (name, found) = match line.split_once("=>") {
            Some((name, found)) => (name.trim(), found.trim()),
            None => (line, line),
        };
        if found.starts_with("not found") {
            missing.push(name.to_owned());
            continue;
        }
        // `/lib/x86_64-linux-gnu/libc.so.6 (0x...)`; the vDSO and `statically linked` have no path.
        if let Some(path) = found
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            files.push(PathBuf::from(path));
        }
    }
    if missing.is_empty() {
        Ok(files)
    } else {
        Err(format!("not found: {}", missing.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_libraries_and_the_loader() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd1a3f2000)
\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0c1e4a1000)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f0c1e3c1000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0c1d600000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f0c1e4d4000)
";
        let files: Vec<String> = parse(out)
            .unwrap()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            files,
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libm.so.6",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2",
            ]
        );
    }

    #[test]
    fn a_missing_library_is_an_error() {
        let out = "\tlibssl.so.3 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n";
        assert_eq!(parse(out).unwrap_err(), "not found: libssl.so.3");
        assert!(parse("\tstatically linked\n").unwrap().is_empty());
    }
}
