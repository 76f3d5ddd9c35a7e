//! `harness`: see `harness --help`.

#[tokio::main]
async fn main() {
    let code = harness::cli::main().await;
    std::process::exit(code);
}
