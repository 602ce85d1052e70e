use clap::Parser;
use neuroplex_relay::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("NEUROPLEX_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Token(args) => print_line("token", neuroplex_relay::serve::print_token(&args)),
        Command::Keygen(args) => print_line("keygen", neuroplex_relay::group::keygen(&args.out)),
        Command::Serve(args) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("neuroplex-relay: cannot start the runtime: {e}");
                    return std::process::ExitCode::from(1);
                }
            };
            match runtime.block_on(neuroplex_relay::serve::serve(*args)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("neuroplex-relay serve: {e}");
                    std::process::ExitCode::from(2)
                }
            }
        }
    }
}

/// A subcommand whose result is one line on stdout (exit 0), or an error
/// on stderr (exit 2).
fn print_line(
    command: &str,
    result: Result<String, impl std::fmt::Display>,
) -> std::process::ExitCode {
    match result {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("neuroplex-relay {command}: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
