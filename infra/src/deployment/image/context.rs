//! What the local images are built from: a fresh build context under the cache holding the
//! files a Dockerfile copies (Debian's static busybox among them, downloaded once), and the
//! `docker build` of it. Each build has its own directory, so builds may run side by side.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ImageError;
use crate::deployment::docker;

pub(super) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ImageError + '_ {
    move |e| ImageError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// A build context: a temporary directory, removed on drop.
pub(super) struct BuildContext {
    dir: tempfile::TempDir,
}

impl BuildContext {
    /// An empty context under `cache`, holding `busybox` (Debian's busybox-static).
    pub(super) fn with_busybox(cache: &Path) -> Result<BuildContext, ImageError> {
        let busybox = busybox(cache)?;
        std::fs::create_dir_all(cache).map_err(io_err(cache))?;
        let dir = tempfile::Builder::new()
            .prefix("image-context-")
            .tempdir_in(cache)
            .map_err(io_err(cache))?;
        let ctx = BuildContext { dir };
        ctx.copy(&busybox, "busybox")?;
        Ok(ctx)
    }

    /// Copies `from` (its contents, when it is a link) to `to` in the context, creating the
    /// directories on the way.
    pub(super) fn copy(&self, from: &Path, to: &str) -> Result<(), ImageError> {
        let dest = self.dir.path().join(to);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        std::fs::copy(from, &dest).map_err(io_err(from))?;
        Ok(())
    }

    /// Creates the directory `to` in the context.
    pub(super) fn mkdir(&self, to: &str) -> Result<(), ImageError> {
        let dir = self.dir.path().join(to);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))
    }

    /// `docker build` of the context with `dockerfile`, tagged `tag`.
    pub(super) fn build(&self, dockerfile: &str, tag: &str) -> Result<(), ImageError> {
        let path = self.dir.path().join("Dockerfile");
        std::fs::write(&path, dockerfile).map_err(io_err(&path))?;
        let ctx = self.dir.path().display().to_string();
        docker::docker_within(
            &["build", "--quiet", "--tag", tag, &ctx],
            Duration::from_secs(300),
        )?;
        Ok(())
    }
}

/// Debian's static busybox, downloaded once into `cache` (no root needed).
fn busybox(cache: &Path) -> Result<PathBuf, ImageError> {
    let home = cache.join("busybox-static");
    let bin = home.join("busybox");
    if bin.is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&home).map_err(io_err(&home))?;
    let work = tempfile::Builder::new()
        .prefix("download-")
        .tempdir_in(&home)
        .map_err(io_err(&home))?;
    let apt = ["apt-get".to_owned()];
    docker::run(
        &apt,
        &["download", "busybox-static"],
        Some(work.path()),
        &[],
        docker::COMMAND_TIMEOUT,
    )
    .map_err(|e| ImageError::Busybox(e.to_string()))?;
    let deb = std::fs::read_dir(work.path())
        .map_err(io_err(work.path()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| ImageError::Busybox("apt-get download left no .deb".into()))?;
    let root = work.path().join("root");
    let dpkg = ["dpkg-deb".to_owned()];
    let (deb_s, root_s) = (deb.display().to_string(), root.display().to_string());
    docker::run(
        &dpkg,
        &["-x", &deb_s, &root_s],
        None,
        &[],
        docker::COMMAND_TIMEOUT,
    )
    .map_err(|e| ImageError::Busybox(e.to_string()))?;
    // bookworm ships /bin/busybox; releases with the merged /usr ship /usr/bin/busybox.
    let extracted = ["bin/busybox", "usr/bin/busybox"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.is_file())
        .ok_or_else(|| ImageError::Busybox("no busybox binary in the package".into()))?;
    // A rename is atomic: a build running alongside sees the whole binary or none.
    std::fs::rename(&extracted, &bin).map_err(io_err(&bin))?;
    Ok(bin)
}
