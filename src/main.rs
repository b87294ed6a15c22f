//! The `pgwarden` binary: a thin shell over the library (see `cli`).

fn main() -> std::process::ExitCode {
    pgwarden::cli::main()
}
