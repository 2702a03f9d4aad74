//! `cargo xtask render`: regenerate the committed configs from the topology model.

use anyhow::{bail, Context};
use sea_infra::render;
use xshell::Shell;

use crate::flags::Render;
use crate::project;

impl Render {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let root = project::project_root();
        if self.check {
            let stale = render::stale_committed_files(&root);
            if !stale.is_empty() {
                bail!(
                    "stale rendered files: {}; run `cargo xtask render` and commit the result",
                    stale.join(", ")
                );
            }
            eprintln!("rendered files are up to date");
            return Ok(());
        }
        for file in render::committed_files() {
            let path = root.join(&file.path);
            sh.write_file(&path, &file.contents)
                .with_context(|| format!("write {}", path.display()))?;
            eprintln!("wrote {}", file.path);
        }
        Ok(())
    }
}
