//! The `posbridge` command; everything it does lives in the library (`posbridge::cli`).

fn main() -> std::process::ExitCode {
    posbridge::cli::main()
}
