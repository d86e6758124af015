//! `kernelize-fake VENDOR [--port N]`: runs one fake as a separate process and prints
//! `listening on URL` once it accepts connections; it stops on Ctrl-C or SIGTERM... or when
//! its parent closes stdin.

fn main() {
    eprintln!("no fakes yet");
    std::process::exit(2);
}
