//! `cargo xtask`: the project's automation, replacing shell scripts.
//!
//! One module per command, each with `run(self, sh)`; flags live in `flags.rs`.

mod doctor;
mod down;
mod flags;
mod health;
mod project;
mod render;
mod status;
mod test;
mod up;

use clap::Parser;

fn main() {
    let flags = flags::Xtask::parse();
    let sh = match xshell::Shell::new() {
        Ok(sh) => sh,
        Err(e) => fail(&anyhow::Error::new(e).context("create a shell")),
    };
    sh.change_dir(project::project_root());
    let result = match flags.command {
        flags::Command::Doctor(cmd) => cmd.run(&sh),
        flags::Command::Up(cmd) => cmd.run(&sh),
        flags::Command::Down(cmd) => cmd.run(&sh),
        flags::Command::Status(cmd) => cmd.run(&sh),
        flags::Command::Health(cmd) => cmd.run(&sh),
        flags::Command::Render(cmd) => cmd.run(&sh),
        flags::Command::Test(cmd) => cmd.run(&sh),
    };
    if let Err(e) = result {
        fail(&e);
    }
}

fn fail(e: &anyhow::Error) -> ! {
    eprintln!("error: {e:#}");
    let interrupted = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<sea_infra::process::UpError>(),
            Some(sea_infra::process::UpError::Interrupted)
        )
    });
    // 130: the shell's convention for "ended by Ctrl-C".
    std::process::exit(if interrupted { 130 } else { 1 });
}
