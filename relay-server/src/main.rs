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
        Command::Token(args) => match neuroplex_relay::serve::print_token(&args) {
            Ok(token) => {
                println!("{token}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("neuroplex-relay token: {e}");
                std::process::ExitCode::from(2)
            }
        },
        Command::Keygen(args) => match neuroplex_relay::group::keygen(&args.out) {
            Ok(public) => {
                println!("{public}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("neuroplex-relay keygen: {e}");
                std::process::ExitCode::from(2)
            }
        },
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
