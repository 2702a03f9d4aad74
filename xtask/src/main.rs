//! `cargo xtask`: the project's automation, replacing shell scripts.
//!
//! One module per command, each with `run(self, sh)`; flags live in `flags.rs`.

mod bench;
mod certs;
mod chaos;
mod doctor;
mod down;
mod drill;
mod flags;
mod health;
mod image;
mod interrupt;
mod project;
mod provision;
mod reload;
mod render;
mod secrets;
mod status;
mod target;
mod test;
mod up;
mod verify;

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
        flags::Command::MeshUp(cmd) => cmd.run(&sh),
        flags::Command::Down(cmd) => cmd.run(&sh),
        flags::Command::Status(cmd) => cmd.run(&sh),
        flags::Command::Health(cmd) => cmd.run(&sh),
        flags::Command::Provision(cmd) => cmd.run(&sh),
        flags::Command::Bench(cmd) => cmd.run(&sh),
        flags::Command::Drill(cmd) => cmd.run(&sh),
        flags::Command::Chaos(cmd) => cmd.run(&sh),
        flags::Command::Verify(cmd) => cmd.run(&sh),
        flags::Command::Render(cmd) => cmd.run(&sh),
        flags::Command::Image(cmd) => cmd.run(&sh),
        flags::Command::Certs(cmd) => cmd.run(&sh),
        flags::Command::Secrets(cmd) => cmd.run(&sh),
        flags::Command::Reload(cmd) => cmd.run(&sh),
        flags::Command::Test(cmd) => cmd.run(&sh),
    };
    if let Err(e) = result {
        fail(&e);
    }
}

/// An error that ends the command with a specific exit code.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

fn fail(e: &anyhow::Error) -> ! {
    eprintln!("error: {e:#}");
    let code = e
        .chain()
        .find_map(|c| {
            if let Some(exit) = c.downcast_ref::<Exit>() {
                Some(exit.code)
            } else if c.is::<sea_infra::env::ConfigErrors>() {
                Some(sea_infra::env::EXIT_CONFIG)
            } else if c.is::<interrupt::Interrupted>()
                || matches!(
                    c.downcast_ref(),
                    Some(sea_infra::deployment::UpError::Interrupted)
                )
            {
                Some(interrupt::exit_code())
            } else {
                None
            }
        })
        .unwrap_or(1);
    std::process::exit(code);
}
