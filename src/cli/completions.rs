//! `stella completions SHELL`: a shell completion script for the whole command tree.

use clap::CommandFactory;

use crate::cli::output::write_out_bytes;
use crate::cli::Cli;

#[derive(Debug, clap::Args)]
pub(crate) struct Completions {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

impl Completions {
    pub(crate) fn run(&self) {
        let mut command = Cli::command();
        // Generated into memory first: clap_complete panics when its writer fails, as
        // stdout does once the reader of a pipe has gone.
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut command, "stella", &mut script);
        write_out_bytes(&script);
    }
}
