//! Payload conversions beside the raw arrow-json reader and serde_json, on the same data.
//!
//! `cargo bench -p kernelize-benches --bench payload`

// Benchmarks run on fixed, known-good data: a failure there is a bug to see at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::Cursor;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kernelize::Records;
use kernelize::payload::CsvOptions;

/// 20,000 rows of sales-like data as NDJSON, and the same as CSV.
fn sample() -> (Vec<u8>, Vec<u8>) {
    let mut ndjson = String::new();
    let mut csv = String::from("order_id,region,customer,amount,currency,updated_at\n");
    let regions = ["north", "south", "east", "west"];
    for i in 0..20_000u32 {
        let region = regions[(i % 4) as usize];
        let amount = f64::from(i % 9973) * 1.25;
        ndjson.push_str(&format!(
            "{{\"order_id\":{i},\"region\":\"{region}\",\"customer\":\"customer {i}\",\"amount\":{amount},\"currency\":\"EUR\",\"updated_at\":\"2026-11-02T09:15:00Z\"}}\n"
        ));
        csv.push_str(&format!(
            "{i},{region},customer {i},{amount},EUR,2026-11-02T09:15:00Z\n"
        ));
    }
    (ndjson.into_bytes(), csv.into_bytes())
}

fn ndjson(c: &mut Criterion) {
    let (ndjson, _) = sample();
    let mut group = c.benchmark_group("ndjson_to_records");
    group.throughput(Throughput::Bytes(ndjson.len() as u64));
    group.bench_function("kernelize", |b| {
        b.iter(|| Records::from_ndjson(Cursor::new(black_box(&ndjson))).unwrap())
    });
    group.bench_function("arrow_json_raw", |b| {
        b.iter(|| {
            let (schema, _) =
                arrow_json::reader::infer_json_schema(Cursor::new(black_box(&ndjson)), None)
                    .unwrap();
            let reader = arrow_json::ReaderBuilder::new(Arc::new(schema))
                .with_batch_size(8192)
                .build(Cursor::new(&ndjson))
                .unwrap();
            reader.collect::<Result<Vec<_>, _>>().unwrap()
        })
    });
    group.bench_function("serde_json_values", |b| {
        b.iter(|| {
            black_box(&ndjson)
                .split(|c| *c == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice::<serde_json::Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
    });
    group.finish();
}

fn csv(c: &mut Criterion) {
    let (_, csv) = sample();
    let mut group = c.benchmark_group("csv_to_records");
    group.throughput(Throughput::Bytes(csv.len() as u64));
    group.bench_function("kernelize", |b| {
        b.iter(|| Records::from_csv(Cursor::new(black_box(&csv)), &CsvOptions::default()).unwrap())
    });
    group.bench_function("arrow_csv_raw", |b| {
        b.iter(|| {
            let format = arrow_csv::reader::Format::default().with_header(true);
            let (schema, _) = format
                .infer_schema(Cursor::new(black_box(&csv)), Some(1000))
                .unwrap();
            let reader = arrow_csv::ReaderBuilder::new(Arc::new(schema))
                .with_header(true)
                .with_batch_size(8192)
                .build(Cursor::new(&csv))
                .unwrap();
            reader.collect::<Result<Vec<_>, _>>().unwrap()
        })
    });
    group.finish();
}

fn records_to_json_rows(c: &mut Criterion) {
    let (ndjson, _) = sample();
    let records = Records::from_ndjson(Cursor::new(&ndjson)).unwrap();
    let mut group = c.benchmark_group("records_to_json_rows");
    group.throughput(Throughput::Elements(records.num_rows() as u64));
    group.bench_function("kernelize", |b| {
        b.iter(|| black_box(&records).to_json_rows().unwrap())
    });
    group.finish();
}

criterion_group!(benches, ndjson, csv, records_to_json_rows);
criterion_main!(benches);
