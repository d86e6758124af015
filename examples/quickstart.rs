//! Reads the sample sales file, cleans it with `data-transformer`, keeps valid rows, and
//! announces the result with `log-notifier`.
//!
//! Run with `cargo run -p kernelize-examples --example quickstart`.

use std::path::Path;

use kernelize::payload::CsvOptions;
use kernelize::{Call, Payload, Records};
use serde_json::json;

#[tokio::main]
async fn main() -> kernelize::Result<()> {
    let manager = kernelize::manager()?;
    manager.activate("data-transformer").await?;
    manager.activate("log-notifier").await?;

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sales.csv");
    let file = std::fs::File::open(&path)?;
    let sales = Records::from_csv(file, &CsvOptions::default())?;

    let normalized = manager
        .call(
            "data-transformer",
            Call::new("normalize", Payload::Records(sales)).with_config(json!({
                "lowercase": ["region", "currency"],
                "timestamps": {"updated_at": null}
            })),
        )
        .await?;
    let valid = manager
        .call(
            "data-transformer",
            Call::new("validate", normalized).with_config(json!({
                "schema": {"required": ["amount"], "properties": {"amount": {"type": "number"}}},
                "on_invalid": "drop"
            })),
        )
        .await?
        .into_records()?;

    for row in valid.to_json_rows()? {
        println!("{row}");
    }
    manager
        .call(
            "log-notifier",
            Call::new("send_message", Payload::Empty).with_config(json!({
                "channel": "#data-pipeline",
                "text": format!("{} clean sales rows", valid.num_rows())
            })),
        )
        .await?;
    manager.deactivate_all().await;
    Ok(())
}
