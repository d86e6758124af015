#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_schema::{DataType, Field, Schema};
use serde_json::{Value, json};

use super::*;
use crate::payload::{MEDIA_CSV, MEDIA_JSON, MEDIA_NDJSON, Payload};

fn read_csv(text: &str) -> Result<Records> {
    Records::from_csv(text.as_bytes(), &CsvOptions::default())
}

fn read_csv_inferring_from(text: &str, infer_rows: usize) -> Result<Records> {
    let options = CsvOptions {
        infer_rows,
        ..CsvOptions::default()
    };
    Records::from_csv(text.as_bytes(), &options)
}

fn write_csv(records: &Records) -> String {
    let mut out = Vec::new();
    records.to_csv(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn write_ndjson(records: &Records) -> String {
    let mut out = Vec::new();
    records.to_ndjson(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn assert_invalid_at(err: &Error, key: &str, number: usize, column: Option<&str>) {
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(
        err.context_value(key),
        Some(number.to_string().as_str()),
        "{err}"
    );
    assert_eq!(err.context_value("column"), column, "{err}");
}

// JSON rows

#[test]
fn json_rows_round_trip_through_records() {
    let rows = vec![
        json!({"id": 1, "name": "ada", "score": 1.5, "active": true}),
        json!({"id": 2, "name": "grace", "score": 2.0, "active": false}),
    ];

    let records = Records::from_json_rows(&rows).unwrap();

    assert_eq!(records.num_rows(), 2);
    let schema = records.schema();
    assert_eq!(
        schema.field_with_name("id").unwrap().data_type(),
        &DataType::Int64
    );
    assert_eq!(
        schema.field_with_name("name").unwrap().data_type(),
        &DataType::Utf8
    );
    assert_eq!(
        schema.field_with_name("score").unwrap().data_type(),
        &DataType::Float64
    );
    assert_eq!(
        schema.field_with_name("active").unwrap().data_type(),
        &DataType::Boolean
    );
    assert_eq!(records.to_json_rows().unwrap(), rows);
}

#[test]
fn json_rows_missing_keys_become_explicit_nulls() {
    let rows = vec![json!({"a": 1, "b": "x"}), json!({"a": 2})];

    let back = Records::from_json_rows(&rows)
        .unwrap()
        .to_json_rows()
        .unwrap();

    assert_eq!(
        back,
        vec![json!({"a": 1, "b": "x"}), json!({"a": 2, "b": null})]
    );
}

#[test]
fn json_rows_with_integers_and_floats_in_one_column_read_as_floats() {
    let rows = vec![json!({"amount": 1}), json!({"amount": 2.5})];

    let records = Records::from_json_rows(&rows).unwrap();

    let amounts = records.batches()[0].column(0).as_primitive::<Float64Type>();
    assert_eq!(amounts.values(), &[1.0, 2.5]);
}

#[test]
fn json_rows_error_names_row_and_column_of_a_string_in_a_numeric_column() {
    let rows = vec![
        json!({"id": 1, "amount": 10}),
        json!({"id": 2, "amount": 20}),
        json!({"id": 3, "amount": "abc"}),
    ];

    let err = Records::from_json_rows(&rows).unwrap_err();

    assert_invalid_at(&err, "row", 3, Some("amount"));
    assert_eq!(
        err.message(),
        r#"row 3, column "amount": expected a number, got "abc""#
    );
}

#[test]
fn json_rows_error_names_the_path_of_a_nested_field() {
    let rows = vec![
        json!({"address": {"zip": 75001}}),
        json!({"address": {"zip": "seventy"}}),
    ];

    let err = Records::from_json_rows(&rows).unwrap_err();

    assert_invalid_at(&err, "row", 2, Some("address.zip"));
}

#[test]
fn json_rows_error_names_an_object_where_a_number_was() {
    let rows = vec![json!({"n": 1}), json!({"n": {"deep": true}})];

    let err = Records::from_json_rows(&rows).unwrap_err();

    assert_invalid_at(&err, "row", 2, Some("n"));
    assert_eq!(
        err.message(),
        r#"row 2, column "n": expected a number, got {"deep":true}"#
    );
}

#[test]
fn json_non_object_row_is_an_error_naming_the_row() {
    let rows = vec![json!({"a": 1}), json!([1, 2])];

    let err = Records::from_json_rows(&rows).unwrap_err();

    assert_invalid_at(&err, "row", 2, None);
    assert_eq!(err.message(), "row 2: expected a JSON object, got an array");
}

#[test]
fn json_rows_with_schema_error_names_row_and_column() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, true),
    ]));
    let rows = vec![
        json!({"id": 1, "amount": 1.5}),
        json!({"id": 2, "amount": "lots"}),
    ];

    let err = Records::from_json_rows_with_schema(&rows, schema).unwrap_err();

    assert_invalid_at(&err, "row", 2, Some("amount"));
    assert_eq!(
        err.message(),
        r#"row 2, column "amount": expected a number, got "lots""#
    );
}

#[test]
fn json_rows_with_schema_error_names_a_missing_required_value() {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let rows = vec![json!({"id": 1}), json!({"other": 2})];

    let err = Records::from_json_rows_with_schema(&rows, schema).unwrap_err();

    assert_invalid_at(&err, "row", 2, Some("id"));
    assert_eq!(
        err.message(),
        r#"row 2, column "id": expected an integer, got null"#
    );
}

#[test]
fn json_rows_error_in_a_later_batch_names_the_row_in_the_whole_input() {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
    let mut rows: Vec<Value> = (0..BATCH_SIZE + 100).map(|n| json!({ "n": n })).collect();
    rows[BATCH_SIZE + 41] = json!({"n": "oops"});

    let err = Records::from_json_rows_with_schema(&rows, schema).unwrap_err();

    assert_invalid_at(&err, "row", BATCH_SIZE + 42, Some("n"));
}

#[test]
fn json_rows_are_decoded_in_batches_of_8192() {
    let rows: Vec<Value> = (0..BATCH_SIZE + 1).map(|n| json!({ "n": n })).collect();

    let records = Records::from_json_rows(&rows).unwrap();

    assert_eq!(records.batches().len(), 2);
    assert_eq!(records.num_rows(), BATCH_SIZE + 1);
    let last = records.concat().unwrap();
    let values = last.column(0).as_primitive::<Int64Type>();
    assert_eq!(values.value(BATCH_SIZE), BATCH_SIZE as i64);
}

#[test]
fn empty_json_rows_give_no_rows_and_no_columns() {
    let records = Records::from_json_rows(&[]).unwrap();

    assert_eq!(records.num_rows(), 0);
    assert!(records.schema().fields().is_empty());
    assert_eq!(records.to_json_rows().unwrap(), Vec::<Value>::new());
}

// CSV

#[test]
fn csv_round_trips_through_records() {
    let text = "id,name,score,active\n1,ada,1.5,true\n2,\"lovelace, ada\",2.25,false\n";

    let records = read_csv(text).unwrap();

    assert_eq!(records.num_rows(), 2);
    let types: Vec<_> = records
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        [
            DataType::Int64,
            DataType::Utf8,
            DataType::Float64,
            DataType::Boolean
        ]
    );
    assert_eq!(write_csv(&records), text);
}

#[test]
fn csv_to_json_rows_keeps_types_and_nulls() {
    let records = read_csv("id,name\n1,ada\n2,\n").unwrap();

    assert_eq!(
        records.to_json_rows().unwrap(),
        vec![
            json!({"id": 1, "name": "ada"}),
            json!({"id": 2, "name": null})
        ]
    );
}

#[test]
fn csv_error_names_line_and_column() {
    // Inference reads two rows, so "abc" on line 4 is read against an integer column.
    let text = "id,amount\n1,10\n2,20\n3,abc\n4,40\n";

    let err = read_csv_inferring_from(text, 2).unwrap_err();

    assert_invalid_at(&err, "line", 4, Some("amount"));
    assert_eq!(
        err.message(),
        r#"line 4, column "amount": expected an integer, got "abc""#
    );
}

#[test]
fn csv_error_counts_the_lines_inside_quoted_fields() {
    let text = "id,note,amount\n1,\"two\nline note\",10\n2,plain,20\n3,x,abc\n";

    let err = read_csv_inferring_from(text, 2).unwrap_err();

    assert_invalid_at(&err, "line", 5, Some("amount"));
}

#[test]
fn csv_error_counts_blank_lines_and_crlf_endings() {
    let text = "id,amount\r\n1,10\r\n\r\n2,20\r\n3,abc\r\n";

    let err = read_csv_inferring_from(text, 2).unwrap_err();

    assert_invalid_at(&err, "line", 5, Some("amount"));
}

#[test]
fn csv_row_with_too_many_fields_names_its_line() {
    let text = "id,name\n1,ada\n2,grace\n3,edsger,dijkstra\n";

    let err = read_csv(text).unwrap_err();

    assert_invalid_at(&err, "line", 4, None);
    assert_eq!(err.message(), "line 4: expected 2 fields, got 3");
}

#[test]
fn csv_row_with_too_few_fields_names_its_line() {
    let text = "id,name,city\n1,ada,london\n2,grace\n";

    let err = read_csv(text).unwrap_err();

    assert_invalid_at(&err, "line", 3, None);
    assert_eq!(err.message(), "line 3: expected 3 fields, got 2");
}

#[test]
fn csv_without_header_counts_the_first_row_as_line_1() {
    let options = CsvOptions {
        has_header: false,
        infer_rows: 1,
        ..CsvOptions::default()
    };

    let err = Records::from_csv(
        "1;2\n3;x\n".as_bytes(),
        &CsvOptions {
            delimiter: b';',
            ..options
        },
    )
    .unwrap_err();

    assert_invalid_at(&err, "line", 2, Some("column_2"));
}

#[test]
fn csv_with_given_schema_names_line_and_column_of_a_value_that_does_not_parse() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("day", DataType::Date32, true),
        Field::new("amount", DataType::Float64, true),
    ]));
    let options = CsvOptions {
        schema: Some(schema.clone()),
        ..CsvOptions::default()
    };
    let text = "day,amount\n2024-01-01,1.5\n2024-13-45,2\n";

    let err = Records::from_csv(text.as_bytes(), &options).unwrap_err();

    assert_invalid_at(&err, "line", 3, Some("day"));
    assert_eq!(
        err.message(),
        r#"line 3, column "day": expected a date (YYYY-MM-DD), got "2024-13-45""#
    );
}

#[test]
fn csv_with_given_schema_names_an_empty_required_value() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let options = CsvOptions {
        schema: Some(schema),
        ..CsvOptions::default()
    };

    let err = Records::from_csv("id,name\n1,a\n,b\n".as_bytes(), &options).unwrap_err();

    assert_invalid_at(&err, "line", 3, Some("id"));
    assert_eq!(
        err.message(),
        r#"line 3, column "id": expected an integer, got an empty value"#
    );
}

#[test]
fn csv_error_in_a_later_batch_names_its_line_in_the_whole_file() {
    let mut text = String::from("n\n");
    for n in 0..BATCH_SIZE + 100 {
        text.push_str(&format!("{n}\n"));
    }
    text.push_str("oops\n");

    let err = read_csv(&text).unwrap_err();

    assert_invalid_at(&err, "line", BATCH_SIZE + 102, Some("n"));
}

#[test]
fn csv_column_empty_in_the_inferred_rows_reads_later_values_as_strings() {
    let text = "id,note\n1,\n2,\n3,late\n";

    let records = read_csv_inferring_from(text, 2).unwrap();

    assert_eq!(records.schema().field(1).data_type(), &DataType::Utf8);
    assert_eq!(
        records.to_json_rows().unwrap()[2],
        json!({"id": 3, "note": "late"})
    );
}

#[test]
fn empty_csv_gives_no_rows() {
    let records = read_csv("").unwrap();

    assert_eq!(records.num_rows(), 0);
    assert!(records.schema().fields().is_empty());
    assert_eq!(write_csv(&records), "");
}

#[test]
fn csv_with_only_a_header_gives_its_columns_and_no_rows() {
    let records = read_csv("id,name\n").unwrap();

    assert_eq!(records.num_rows(), 0);
    assert_eq!(records.schema().fields().len(), 2);
    assert_eq!(write_csv(&records), "id,name\n");
}

// NDJSON

#[test]
fn ndjson_round_trips_through_records() {
    let text =
        "{\"id\":1,\"name\":\"ada\",\"score\":1.5}\n{\"id\":2,\"name\":null,\"score\":2.0}\n";

    let records = Records::from_ndjson(text.as_bytes()).unwrap();

    assert_eq!(records.num_rows(), 2);
    assert_eq!(write_ndjson(&records), text);
}

#[test]
fn ndjson_skips_blank_lines() {
    let text = "{\"a\":1}\n\n   \n{\"a\":2}\n";

    let records = Records::from_ndjson(text.as_bytes()).unwrap();

    assert_eq!(records.num_rows(), 2);
}

#[test]
fn ndjson_invalid_line_is_an_error_naming_the_line() {
    let text = "{\"a\":1}\n{\"a\":2}\n{\"a\": 3,,}\n";

    let err = Records::from_ndjson(text.as_bytes()).unwrap_err();

    assert_invalid_at(&err, "line", 3, None);
    assert!(err.message().starts_with("line 3: invalid JSON: "), "{err}");
}

#[test]
fn ndjson_non_object_line_is_an_error_naming_the_line() {
    let err = Records::from_ndjson("{\"a\":1}\n42\n".as_bytes()).unwrap_err();

    assert_invalid_at(&err, "line", 2, None);
    assert_eq!(
        err.message(),
        "line 2: expected a JSON object, got a number"
    );
}

#[test]
fn ndjson_type_conflict_names_the_line_counting_blank_lines() {
    let text = "{\"id\":1,\"amount\":10}\n\n{\"id\":2,\"amount\":\"abc\"}\n";

    let err = Records::from_ndjson(text.as_bytes()).unwrap_err();

    assert_invalid_at(&err, "line", 3, Some("amount"));
    assert_eq!(
        err.message(),
        r#"line 3, column "amount": expected a number, got "abc""#
    );
}

#[test]
fn empty_ndjson_gives_no_rows() {
    let records = Records::from_ndjson("\n\n".as_bytes()).unwrap();

    assert_eq!(records.num_rows(), 0);
    assert_eq!(write_ndjson(&records), "");
}

// Parquet

#[cfg(feature = "parquet")]
#[test]
fn parquet_round_trips_through_records() {
    let rows = vec![
        json!({"id": 1, "name": "ada", "score": 1.5}),
        json!({"id": 2, "name": null, "score": 2.0}),
    ];
    let records = Records::from_json_rows(&rows).unwrap();
    let mut file = Vec::new();

    records.to_parquet(&mut file).unwrap();
    let back = Records::from_parquet(bytes::Bytes::from(file)).unwrap();

    assert_eq!(back.schema().fields(), records.schema().fields());
    assert_eq!(back.to_json_rows().unwrap(), rows);
}

#[cfg(feature = "parquet")]
#[test]
fn parquet_that_is_not_parquet_is_corrupt_data() {
    let err = Records::from_parquet(bytes::Bytes::from_static(b"id,name\n1,ada\n")).unwrap_err();

    assert_eq!(err.kind(), ErrorKind::CorruptData, "{err}");
}

#[cfg(feature = "parquet")]
#[test]
fn truncated_and_damaged_parquet_is_corrupt_data_not_a_panic() {
    let rows: Vec<Value> = (0..100)
        .map(|n| json!({"n": n, "s": format!("v{n}")}))
        .collect();
    let mut file = Vec::new();
    Records::from_json_rows(&rows)
        .unwrap()
        .to_parquet(&mut file)
        .unwrap();

    let truncated = bytes::Bytes::copy_from_slice(&file[..file.len() / 2]);
    let err = Records::from_parquet(truncated).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CorruptData, "{err}");

    // Overwrite the column data (after the magic bytes) but keep the footer intact.
    let mut damaged = file.clone();
    for b in &mut damaged[4..file.len() / 2] {
        *b = 0xA5;
    }
    let err = Records::from_parquet(bytes::Bytes::from(damaged)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CorruptData, "{err}");
}

// Records

#[test]
fn records_concat_and_into_batches_keep_every_row() {
    let a = Records::from_json_rows(&[json!({"n": 1})]).unwrap();
    let b = Records::from_json_rows(&[json!({"n": 2})]).unwrap();
    let mut batches = a.into_batches();
    batches.extend(b.into_batches());

    let records = Records::new(batches[0].schema(), batches).unwrap();

    assert_eq!(records.concat().unwrap().num_rows(), 2);
}

#[test]
fn empty_records_write_a_csv_header_only() {
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));

    let records = Records::empty(schema);

    assert_eq!(write_csv(&records), "a\n");
    assert_eq!(records.concat().unwrap().num_rows(), 0);
}

// Payload conversions by media type

#[test]
fn csv_bytes_payload_converts_to_records_and_json() {
    let payload = Payload::bytes("id,name\n1,ada\n", MEDIA_CSV);

    assert_eq!(payload.clone().into_records().unwrap().num_rows(), 1);
    assert_eq!(
        payload.into_json().unwrap(),
        json!([{"id": 1, "name": "ada"}])
    );
}

#[test]
fn ndjson_bytes_payload_converts_to_records_and_json() {
    let payload = Payload::bytes("{\"id\":1}\n{\"id\":2}\n", MEDIA_NDJSON);

    assert_eq!(payload.clone().into_records().unwrap().num_rows(), 2);
    assert_eq!(payload.into_json().unwrap(), json!([{"id": 1}, {"id": 2}]));
}

#[test]
fn json_bytes_payload_converts_to_records_and_json() {
    let payload = Payload::bytes(r#"[{"id":1},{"id":2}]"#, MEDIA_JSON);

    assert_eq!(payload.clone().into_records().unwrap().num_rows(), 2);
    assert_eq!(payload.into_json().unwrap(), json!([{"id": 1}, {"id": 2}]));
}

#[test]
fn csv_bytes_payload_with_a_bad_row_names_its_line() {
    let payload = Payload::bytes("id,name\n1,ada\n2\n", MEDIA_CSV);

    let err = payload.into_records().unwrap_err();

    assert_invalid_at(&err, "line", 3, None);
}

#[test]
fn json_object_payload_is_one_row() {
    let records = Payload::json(json!({"id": 7})).into_records().unwrap();

    assert_eq!(records.num_rows(), 1);
}

#[test]
fn records_payload_converts_to_json_rows_and_ndjson_bytes() {
    let records = Records::from_json_rows(&[json!({"id": 1})]).unwrap();

    assert_eq!(
        Payload::Records(records.clone()).into_json().unwrap(),
        json!([{"id": 1}])
    );
    let blob = Payload::Records(records).into_blob().unwrap();
    assert_eq!(blob.media_type, MEDIA_NDJSON);
    assert_eq!(&blob.data[..], b"{\"id\":1}\n");
}

#[cfg(feature = "parquet")]
#[test]
fn parquet_bytes_payload_converts_to_records() {
    let records = Records::from_json_rows(&[json!({"id": 1})]).unwrap();
    let mut file = Vec::new();
    records.to_parquet(&mut file).unwrap();

    let payload = Payload::bytes(file, crate::payload::MEDIA_PARQUET);

    assert_eq!(payload.into_records().unwrap().num_rows(), 1);
}
