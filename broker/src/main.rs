//! `missive` — the broker binary. See `missive_broker::cli`.

fn main() -> anyhow::Result<()> {
    missive_broker::cli::run()
}
