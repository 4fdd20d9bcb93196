//! `campaign-ops` entry point: wiring only (see the library for the commands).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match ops::parse(&args) {
        Ok(command) => command,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    if let ops::Command::CheckDeploy { overrides } = &command {
        return match ops::check_deploy_repo(overrides) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(problems) => {
                eprintln!("refused:\n{problems}");
                ExitCode::FAILURE
            }
        };
    }
    let Ok(table) = std::env::var("TABLE_NAME") else {
        eprintln!("{}", ops::USAGE);
        return ExitCode::from(2);
    };
    let config = shared::Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some(table.clone()),
        other => std::env::var(other).ok(),
    });
    let config = match config {
        Ok(config) => config,
        Err(err) => {
            eprintln!("configuration: {err}");
            return ExitCode::from(2);
        }
    };
    let app = shared::App::new(config, shared::store::client_from_env().await);
    match ops::run(&command, &app).await {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("failed: {err}");
            ExitCode::FAILURE
        }
    }
}
