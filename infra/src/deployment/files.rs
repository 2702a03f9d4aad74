//! Private directories and atomic file writes, for keys, certificates and secrets: a file is
//! written to a temporary file in the same directory (created 0600), synced, then renamed over
//! the old one, so a server reloading at that moment reads the old file or the new one, never
//! half of one.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Creates `dir` (and its parents) and makes it 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Replaces `path` with `contents`, atomically, with permissions `mode` (set before any byte is
/// written). The directory must exist.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().map_or_else(
        || ".tmp".to_owned(),
        |n| format!(".{}.", n.to_string_lossy()),
    );
    let mut tmp = tempfile::Builder::new()
        .prefix(&name)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // The rename itself survives a crash only once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The permission bits of `path` (`0o600`).
pub fn mode_of(path: &Path) -> std::io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_the_file_with_its_mode_and_leave_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("secrets");
        create_private_dir(&sub).unwrap();
        assert_eq!(mode_of(&sub).unwrap(), 0o700);
        let file = sub.join("key.pem");
        write_atomic(&file, b"one", 0o600).unwrap();
        write_atomic(&file, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "two");
        assert_eq!(mode_of(&file).unwrap(), 0o600);
        let names: Vec<_> = std::fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["key.pem"]);
    }
}
