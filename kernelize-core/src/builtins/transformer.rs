//! `data-transformer`: reshapes and checks records — select, rename, cast, fill defaults,
//! validate against a JSON Schema, normalize.
//!
//! Every action takes records and returns records, so the actions chain in any order. Row
//! numbers in error messages count from 1 across all batches of the input, and errors carry
//! `row` and `column` context pairs, so a bad value in a large file can be found.
//!
//! Actions that visit every value (`cast`, `fill_defaults`, `validate`, `normalize`) run on
//! tokio's blocking pool and check the call's cancellation and deadline between batches.
//!
//! Timestamps produced here are `Timestamp(Microsecond, "+00:00")`: UTC written as a fixed
//! offset, because arrow resolves named zones such as `"UTC"` only with its `chrono-tz`
//! feature, and without it a column labelled `"UTC"` could not be written as CSV or JSON.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, RecordBatchOptions,
    Scalar, StringArray, TimestampMicrosecondArray, UInt64Array,
};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_cast::{CastOptions, can_cast_types, cast_with_options};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use schemars::{JsonSchema, Schema as JsonSchemaDoc, SchemaGenerator};
use semver::Version;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::builtins::off_runtime;
use crate::config::schema_violations;
use crate::error::{Error, ErrorKind, Result};
use crate::payload::{Payload, Records};
use crate::plugin::{
    Action, ActionContext, ActionRouter, Call, Category, Handler, Plugin, PluginMetadata,
};

/// Plugin id of the data transformer.
pub const ID: &str = "data-transformer";

/// Time zone of the timestamps this plugin produces: UTC, written as a fixed offset.
pub const UTC_TIMEZONE: &str = "+00:00";

/// Per-call config of `select`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectConfig {
    /// The columns to keep, in the order they should appear; each must exist, once.
    pub columns: Vec<String>,
}

/// Per-call config of `rename`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameConfig {
    /// Old name → new name. Each old name must exist; the names after renaming must be
    /// unique (swapping two names is allowed).
    pub columns: BTreeMap<String, String>,
}

/// Per-call config of `cast`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CastConfig {
    /// Column name → the type to convert it to. A value that does not convert fails the
    /// call, naming its row and column.
    pub columns: BTreeMap<String, CastType>,
}

/// A type `cast` converts a column to.
///
/// Written as a string: `string`, `int64` (or `integer`), `float64` (or `float`, `number`),
/// `boolean`, `date`, `timestamp` (UTC, microseconds) or `decimal(precision, scale)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CastType {
    /// UTF-8 text.
    String,
    /// 64-bit signed integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// `true` or `false`.
    Boolean,
    /// A calendar date (days since the epoch).
    Date,
    /// A UTC instant with microsecond precision.
    Timestamp,
    /// A 128-bit decimal with at most 38 digits, `scale` of them after the point.
    Decimal {
        /// Total number of digits (1 to 38).
        precision: u8,
        /// Digits after the decimal point (at most `precision`).
        scale: i8,
    },
}

const CAST_TYPE_NAMES: [&str; 9] = [
    "string",
    "int64",
    "integer",
    "float64",
    "float",
    "number",
    "boolean",
    "date",
    "timestamp",
];

impl CastType {
    /// The Arrow type values are converted to.
    pub fn data_type(self) -> DataType {
        match self {
            CastType::String => DataType::Utf8,
            CastType::Int64 => DataType::Int64,
            CastType::Float64 => DataType::Float64,
            CastType::Boolean => DataType::Boolean,
            CastType::Date => DataType::Date32,
            CastType::Timestamp => utc_micros(),
            CastType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
        }
    }
}

impl fmt::Display for CastType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CastType::String => f.write_str("string"),
            CastType::Int64 => f.write_str("int64"),
            CastType::Float64 => f.write_str("float64"),
            CastType::Boolean => f.write_str("boolean"),
            CastType::Date => f.write_str("date"),
            CastType::Timestamp => f.write_str("timestamp"),
            CastType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
        }
    }
}

impl FromStr for CastType {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let name = text.trim().to_ascii_lowercase();
        Ok(match name.as_str() {
            "string" => CastType::String,
            "int64" | "integer" => CastType::Int64,
            "float64" | "float" | "number" => CastType::Float64,
            "boolean" => CastType::Boolean,
            "date" => CastType::Date,
            "timestamp" => CastType::Timestamp,
            _ => {
                return parse_decimal(&name).ok_or_else(|| {
                    format!(
                        "unknown type `{text}`; known types: {}, decimal(precision,scale)",
                        CAST_TYPE_NAMES.join(", ")
                    )
                });
            }
        })
    }
}

/// Parses `decimal(p,s)` with 1 ≤ p ≤ 38 and s ≤ p.
fn parse_decimal(name: &str) -> Option<CastType> {
    let inner = name.strip_prefix("decimal(")?.strip_suffix(')')?;
    let (precision, scale) = inner.split_once(',')?;
    let precision: u8 = precision.trim().parse().ok()?;
    let scale: i8 = scale.trim().parse().ok()?;
    let fits = (1..=arrow_schema::DECIMAL128_MAX_PRECISION).contains(&precision)
        && i16::from(scale) <= i16::from(precision);
    fits.then_some(CastType::Decimal { precision, scale })
}

impl TryFrom<String> for CastType {
    type Error = String;

    fn try_from(text: String) -> std::result::Result<Self, String> {
        text.parse()
    }
}

impl From<CastType> for String {
    fn from(t: CastType) -> String {
        t.to_string()
    }
}

impl JsonSchema for CastType {
    fn schema_name() -> Cow<'static, str> {
        "CastType".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> JsonSchemaDoc {
        let schema = serde_json::json!({
            "description": "Type to convert to: one of the names, or decimal(precision,scale).",
            "anyOf": [
                {"type": "string", "enum": CAST_TYPE_NAMES},
                {"type": "string", "pattern": r"^\s*decimal\(\s*\d+\s*,\s*-?\d+\s*\)\s*$"}
            ]
        });
        match schema {
            Value::Object(map) => JsonSchemaDoc::from(map),
            _ => JsonSchemaDoc::from(true),
        }
    }
}

/// Per-call config of `fill_defaults`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FillDefaultsConfig {
    /// Column name → the value that replaces its nulls (a string, number or boolean that
    /// fits the column's type).
    pub values: BTreeMap<String, Value>,
}

/// What `validate` does with rows that do not match the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalid {
    /// Remove them from the output (the default).
    #[default]
    Drop,
    /// Keep every row and add a column with each invalid row's errors (null when valid).
    Flag,
    /// Fail the call at the first invalid row.
    Fail,
}

/// Per-call config of `validate`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateConfig {
    /// The JSON Schema every row, seen as a JSON object, must match.
    pub schema: Value,
    /// What to do with rows that do not match: `drop` (default), `flag` or `fail`.
    #[serde(default)]
    pub on_invalid: OnInvalid,
    /// Name of the column `flag` adds with the errors (default `_errors`); it must not exist.
    #[serde(default = "default_flag_column")]
    pub flag_column: String,
}

fn default_flag_column() -> String {
    "_errors".to_string()
}

/// Per-call config of `normalize`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    /// Trim leading and trailing whitespace from every string column (default true).
    #[serde(default = "default_true")]
    pub trim: bool,
    /// String columns to convert to lower case.
    #[serde(default)]
    pub lowercase: Vec<String>,
    /// Column → format: parses string columns into UTC timestamps (microseconds). With a
    /// null format, RFC 3339 and forms like `2024-01-31 12:00:00` (read as UTC) or
    /// `2024-01-31` are accepted; otherwise the value is a chrono format such as
    /// `%d/%m/%Y %H:%M`. Empty values become null.
    #[serde(default)]
    pub timestamps: BTreeMap<String, Option<String>>,
    /// Name of the schema the output is meant for; recorded, not used for conversion.
    #[serde(default)]
    pub target_schema: Option<String>,
}

fn default_true() -> bool {
    true
}

/// `select`: keeps the named columns, in that order.
#[derive(Debug)]
pub struct Select;

impl Action for Select {
    const NAME: &'static str = "select";
    const DESCRIPTION: &'static str = "Keep the named columns, in the order given.";
    type Config = SelectConfig;
    type Input = Records;
    type Output = Records;
}

/// `rename`: renames columns.
#[derive(Debug)]
pub struct Rename;

impl Action for Rename {
    const NAME: &'static str = "rename";
    const DESCRIPTION: &'static str = "Rename columns (old name to new name).";
    type Config = RenameConfig;
    type Input = Records;
    type Output = Records;
}

/// `cast`: converts columns to other types, failing on the first value that does not convert.
#[derive(Debug)]
pub struct Cast;

impl Action for Cast {
    const NAME: &'static str = "cast";
    const DESCRIPTION: &'static str =
        "Convert columns to other types; a value that does not convert fails, naming its row.";
    type Config = CastConfig;
    type Input = Records;
    type Output = Records;
}

/// `fill_defaults`: replaces nulls in columns with given values.
#[derive(Debug)]
pub struct FillDefaults;

impl Action for FillDefaults {
    const NAME: &'static str = "fill_defaults";
    const DESCRIPTION: &'static str = "Replace nulls in the named columns with default values.";
    type Config = FillDefaultsConfig;
    type Input = Records;
    type Output = Records;
}

/// `validate`: checks every row against a JSON Schema, then drops, flags or fails.
#[derive(Debug)]
pub struct Validate;

impl Action for Validate {
    const NAME: &'static str = "validate";
    const DESCRIPTION: &'static str =
        "Check each row against a JSON Schema; drop, flag or fail on rows that do not match.";
    type Config = ValidateConfig;
    type Input = Records;
    type Output = Records;
}

/// `normalize`: trims strings, lower-cases columns and parses timestamps.
#[derive(Debug)]
pub struct Normalize;

impl Action for Normalize {
    const NAME: &'static str = "normalize";
    const DESCRIPTION: &'static str =
        "Trim string columns, lower-case chosen columns, and parse timestamp columns to UTC.";
    type Config = NormalizeConfig;
    type Input = Records;
    type Output = Records;
}

static ROUTER: LazyLock<ActionRouter<DataTransformer>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<Select>()
        .action::<Rename>()
        .action::<Cast>()
        .action::<FillDefaults>()
        .action::<Validate>()
        .action::<Normalize>()
});

/// The `data-transformer` plugin. It has no settings and no state.
#[derive(Debug, Clone, Default)]
pub struct DataTransformer;

impl DataTransformer {
    /// A transformer, ready once initialized.
    pub fn new() -> Self {
        DataTransformer
    }
}

#[async_trait]
impl Plugin for DataTransformer {
    fn metadata(&self) -> PluginMetadata {
        PluginMetadata::new(
            ID,
            "Data transformer",
            Version::new(0, 1, 0),
            Category::DataProcessor,
        )
        .description(
            "Select, rename, cast, fill defaults, validate against a JSON Schema and \
                 normalize records.",
        )
        .author("Kernelize")
        .actions(ROUTER.descriptors())
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        ROUTER.dispatch(self, call).await
    }
}

#[async_trait]
impl Handler<Select> for DataTransformer {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: SelectConfig,
        input: Records,
    ) -> Result<Records> {
        select(&config, &input)
    }
}

#[async_trait]
impl Handler<Rename> for DataTransformer {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: RenameConfig,
        input: Records,
    ) -> Result<Records> {
        rename(&config, &input)
    }
}

#[async_trait]
impl Handler<Cast> for DataTransformer {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: CastConfig,
        input: Records,
    ) -> Result<Records> {
        off_runtime(move || cast(&ctx, &config, &input)).await
    }
}

#[async_trait]
impl Handler<FillDefaults> for DataTransformer {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: FillDefaultsConfig,
        input: Records,
    ) -> Result<Records> {
        off_runtime(move || fill_defaults(&ctx, &config, &input)).await
    }
}

#[async_trait]
impl Handler<Validate> for DataTransformer {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: ValidateConfig,
        input: Records,
    ) -> Result<Records> {
        off_runtime(move || validate(&ctx, &config, &input)).await
    }
}

#[async_trait]
impl Handler<Normalize> for DataTransformer {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: NormalizeConfig,
        input: Records,
    ) -> Result<Records> {
        off_runtime(move || normalize(&ctx, &config, &input)).await
    }
}

// ---------------------------------------------------------------------------------------
// select, rename

fn select(config: &SelectConfig, input: &Records) -> Result<Records> {
    let schema = input.schema();
    if config.columns.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "select needs at least one column",
        ));
    }
    let mut seen = BTreeSet::new();
    let mut indices = Vec::with_capacity(config.columns.len());
    for name in &config.columns {
        if !seen.insert(name.as_str()) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("column \"{name}\" is selected twice"),
            )
            .with_context("column", name));
        }
        indices.push(column_index(schema, name)?);
    }
    let projected = Arc::new(schema.project(&indices).map_err(arrow_error)?);
    let batches = input
        .batches()
        .iter()
        .map(|b| {
            let columns = indices.iter().map(|&i| b.column(i).clone()).collect();
            rebuild(&projected, columns, b.num_rows())
        })
        .collect::<Result<_>>()?;
    Records::new(projected, batches)
}

fn rename(config: &RenameConfig, input: &Records) -> Result<Records> {
    let schema = input.schema();
    for old in config.columns.keys() {
        column_index(schema, old)?;
    }
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let mut fields = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let old = field.name().as_str();
        let new = config.columns.get(old).map_or(old, String::as_str);
        if let Some(other) = seen.insert(new, old) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "renaming would give two columns the name \"{new}\" (from \"{other}\" and \
                     \"{old}\")"
                ),
            )
            .with_context("column", new));
        }
        fields.push(field.as_ref().clone().with_name(new));
    }
    let renamed = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let batches = input
        .batches()
        .iter()
        .map(|b| rebuild(&renamed, b.columns().to_vec(), b.num_rows()))
        .collect::<Result<_>>()?;
    Records::new(renamed, batches)
}

// ---------------------------------------------------------------------------------------
// cast

fn cast(ctx: &ActionContext, config: &CastConfig, input: &Records) -> Result<Records> {
    let schema = input.schema();
    let mut targets = BTreeMap::new();
    for (name, to) in &config.columns {
        let i = column_index(schema, name)?;
        let from = schema.field(i).data_type();
        let to_type = to.data_type();
        if !can_cast_types(from, &to_type) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("column \"{name}\" of type {from} cannot be cast to {to}"),
            )
            .with_context("column", name));
        }
        targets.insert(i, (*to, to_type));
    }
    let out_schema = with_types(schema, targets.iter().map(|(&i, (_, t))| (i, t.clone())));
    let mut first_row = 0;
    let mut batches = Vec::with_capacity(input.batches().len());
    for batch in input.batches() {
        ctx.check_alive()?;
        let mut columns = batch.columns().to_vec();
        for (&i, (to, to_type)) in &targets {
            let name = schema.field(i).name();
            columns[i] = cast_column(&columns[i], *to, to_type, name, first_row)?;
        }
        batches.push(rebuild(&out_schema, columns, batch.num_rows())?);
        first_row += batch.num_rows();
    }
    Records::new(out_schema, batches)
}

fn strict() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    }
}

/// Casts one column; on failure, finds the first value that does not convert and names it.
fn cast_column(
    column: &ArrayRef,
    to: CastType,
    to_type: &DataType,
    name: &str,
    first_row: usize,
) -> Result<ArrayRef> {
    let whole = match cast_with_options(column, to_type, &strict()) {
        Ok(cast) => return Ok(cast),
        Err(e) => e,
    };
    // The kernel reports what failed but not where: cast value by value to find the row.
    let failing = (0..column.len())
        .filter(|&i| column.is_valid(i))
        .find(|&i| cast_with_options(&column.slice(i, 1), to_type, &strict()).is_err());
    match failing {
        Some(i) => Err(row_error(
            first_row + i + 1,
            name,
            format!("cannot cast {} to {to}", quoted_value(column, i)),
        )
        .set_source(whole)),
        None => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("column \"{name}\": cannot cast to {to}: {whole}"),
        )
        .with_context("column", name)
        .set_source(whole)),
    }
}

// ---------------------------------------------------------------------------------------
// fill_defaults

fn fill_defaults(
    ctx: &ActionContext,
    config: &FillDefaultsConfig,
    input: &Records,
) -> Result<Records> {
    let schema = input.schema();
    let mut defaults = BTreeMap::new();
    for (name, value) in &config.values {
        let i = column_index(schema, name)?;
        defaults.insert(i, default_scalar(name, value, schema.field(i).data_type())?);
    }
    let mut batches = Vec::with_capacity(input.batches().len());
    for batch in input.batches() {
        ctx.check_alive()?;
        let mut columns = batch.columns().to_vec();
        for (&i, default) in &defaults {
            columns[i] = fill_nulls(&columns[i], default)?;
        }
        batches.push(rebuild(schema, columns, batch.num_rows())?);
    }
    Records::new(schema.clone(), batches)
}

/// The default `value` as a one-element array of the column's type.
fn default_scalar(name: &str, value: &Value, to: &DataType) -> Result<ArrayRef> {
    let misfit = |why: String| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("default {value} for column \"{name}\" does not fit its type {to}: {why}"),
        )
        .with_context("column", name)
    };
    let source: ArrayRef = match value {
        Value::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
        Value::String(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Arc::new(Int64Array::from(vec![i]))
            } else if let Some(u) = n.as_u64() {
                Arc::new(UInt64Array::from(vec![u]))
            } else if to.is_integer() {
                // Casting would silently truncate 1.5 to 1.
                return Err(misfit("not a whole number".to_string()));
            } else {
                Arc::new(Float64Array::from(vec![n.as_f64().unwrap_or(f64::NAN)]))
            }
        }
        Value::Null | Value::Array(_) | Value::Object(_) => {
            return Err(misfit(
                "a default must be a string, number or boolean".to_string(),
            ));
        }
    };
    if value.is_boolean() && !matches!(to, DataType::Boolean) && !is_string_type(to) {
        return Err(misfit(
            "a boolean fits only boolean and string columns".to_string(),
        ));
    }
    cast_with_options(&source, to, &strict()).map_err(|e| misfit(e.to_string()))
}

fn fill_nulls(column: &ArrayRef, default: &ArrayRef) -> Result<ArrayRef> {
    let Some(nulls) = column.logical_nulls() else {
        return Ok(column.clone());
    };
    let is_null = BooleanArray::new(!nulls.inner(), None);
    arrow_select::zip::zip(&is_null, &Scalar::new(default.clone()), column).map_err(arrow_error)
}

// ---------------------------------------------------------------------------------------
// validate

fn validate(ctx: &ActionContext, config: &ValidateConfig, input: &Records) -> Result<Records> {
    let validator = jsonschema::validator_for(&config.schema).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("the schema given to validate is not a valid JSON Schema: {e}"),
        )
    })?;
    let schema = match config.on_invalid {
        OnInvalid::Flag => with_flag_column(input.schema(), &config.flag_column)?,
        OnInvalid::Drop | OnInvalid::Fail => input.schema().clone(),
    };
    let mut first_row = 0;
    let mut dropped = 0;
    let mut batches = Vec::with_capacity(input.batches().len());
    for batch in input.batches() {
        ctx.check_alive()?;
        let rows = Records::from_batch(batch.clone()).to_json_rows()?;
        let problems: Vec<Option<String>> = rows
            .iter()
            .map(|row| row_problems(&validator, row))
            .collect();
        match config.on_invalid {
            OnInvalid::Fail => {
                if let Some((i, why)) = problems
                    .iter()
                    .enumerate()
                    .find_map(|(i, p)| p.as_ref().map(|p| (i, p)))
                {
                    let row = first_row + i + 1;
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("row {row} does not match the schema: {why}"),
                    )
                    .with_context("row", row));
                }
                batches.push(batch.clone());
            }
            OnInvalid::Drop => {
                let keep: BooleanArray = problems.iter().map(|p| Some(p.is_none())).collect();
                dropped += keep.false_count();
                let kept =
                    arrow_select::filter::filter_record_batch(batch, &keep).map_err(arrow_error)?;
                batches.push(kept);
            }
            OnInvalid::Flag => {
                let mut columns = batch.columns().to_vec();
                columns.push(Arc::new(StringArray::from(problems)));
                batches.push(rebuild(&schema, columns, batch.num_rows())?);
            }
        }
        first_row += batch.num_rows();
    }
    if dropped > 0 {
        tracing::debug!(
            dropped,
            "validate dropped rows that do not match the schema"
        );
    }
    Records::new(schema, batches)
}

/// Every way `row` fails the schema, joined, or `None` when it matches.
fn row_problems(validator: &jsonschema::Validator, row: &Value) -> Option<String> {
    let problems = schema_violations(validator, row);
    (!problems.is_empty()).then(|| problems.join("; "))
}

fn with_flag_column(schema: &SchemaRef, flag_column: &str) -> Result<SchemaRef> {
    if schema.index_of(flag_column).is_ok() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "the flag column \"{flag_column}\" already exists; choose another `flag_column`"
            ),
        )
        .with_context("column", flag_column));
    }
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(flag_column, DataType::Utf8, true));
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )))
}

// ---------------------------------------------------------------------------------------
// normalize

fn normalize(ctx: &ActionContext, config: &NormalizeConfig, input: &Records) -> Result<Records> {
    if let Some(target) = &config.target_schema {
        tracing::debug!(target_schema = %target, "normalizing records");
    }
    let schema = input.schema();
    let mut lowercase = BTreeSet::new();
    for name in &config.lowercase {
        let i = column_index(schema, name)?;
        require_string(name, schema.field(i).data_type(), "lowercase")?;
        lowercase.insert(i);
    }
    let mut timestamps = BTreeMap::new();
    for (name, format) in &config.timestamps {
        let i = column_index(schema, name)?;
        let from = schema.field(i).data_type();
        if !matches!(
            from,
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
        ) {
            require_string(name, from, "timestamps")?;
        }
        if let Some(format) = format {
            check_timestamp_format(name, format)?;
        }
        timestamps.insert(i, format.as_deref());
    }
    let out_schema = with_types(schema, timestamps.keys().map(|&i| (i, utc_micros())));
    let mut first_row = 0;
    let mut batches = Vec::with_capacity(input.batches().len());
    for batch in input.batches() {
        ctx.check_alive()?;
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (i, column) in batch.columns().iter().enumerate() {
            let name = schema.field(i).name();
            let mut column = column.clone();
            if config.trim && is_string_type(column.data_type()) {
                column = map_strings(&column, str::trim)?;
            }
            if lowercase.contains(&i) {
                column = map_strings(&column, str::to_lowercase)?;
            }
            if let Some(format) = timestamps.get(&i) {
                column = parse_timestamps(&column, name, *format, first_row)?;
            }
            columns.push(column);
        }
        batches.push(rebuild(&out_schema, columns, batch.num_rows())?);
        first_row += batch.num_rows();
    }
    Records::new(out_schema, batches)
}

fn require_string(name: &str, data_type: &DataType, option: &str) -> Result<()> {
    if is_string_type(data_type) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!("`{option}` needs a string column, but \"{name}\" is of type {data_type}"),
    )
    .with_context("column", name))
}

fn check_timestamp_format(name: &str, format: &str) -> Result<()> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("invalid timestamp format `{format}` for column \"{name}\""),
        )
        .with_context("column", name));
    }
    Ok(())
}

/// Applies `f` to every non-null value of a string column, keeping the column's type.
fn map_strings<'a, S: AsRef<str>>(
    column: &'a ArrayRef,
    f: impl Fn(&'a str) -> S,
) -> Result<ArrayRef> {
    let Some(values) = string_values(column) else {
        return Ok(column.clone());
    };
    let mapped: ArrayRef = Arc::new(
        values
            .into_iter()
            .map(|v| v.map(&f))
            .collect::<StringArray>(),
    );
    if column.data_type() == &DataType::Utf8 {
        Ok(mapped)
    } else {
        arrow_cast::cast(&mapped, column.data_type()).map_err(arrow_error)
    }
}

fn parse_timestamps(
    column: &ArrayRef,
    name: &str,
    format: Option<&str>,
    first_row: usize,
) -> Result<ArrayRef> {
    let Some(values) = string_values(column) else {
        // Already a date or timestamp (checked before): only the unit and zone change.
        return cast_with_options(column, &utc_micros(), &strict()).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("column \"{name}\": cannot convert to a UTC timestamp: {e}"),
            )
            .with_context("column", name)
        });
    };
    let mut micros = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let text = value.map(str::trim).filter(|s| !s.is_empty());
        let parsed = match text {
            None => None,
            Some(text) => Some(parse_timestamp(text, format).ok_or_else(|| {
                let how = format.map_or(String::new(), |f| format!(" with format `{f}`"));
                row_error(
                    first_row + i + 1,
                    name,
                    format!("cannot parse {text:?} as a timestamp{how}"),
                )
            })?),
        };
        micros.push(parsed);
    }
    Ok(Arc::new(
        TimestampMicrosecondArray::from(micros).with_timezone(UTC_TIMEZONE),
    ))
}

/// Microseconds since the epoch of a timestamp written as text; values without an offset
/// are read as UTC, and a date alone as its midnight.
fn parse_timestamp(text: &str, format: Option<&str>) -> Option<i64> {
    let Some(format) = format else {
        return arrow_cast::parse::string_to_datetime(&Utc, text)
            .ok()
            .map(|t| t.timestamp_micros());
    };
    if let Ok(t) = DateTime::parse_from_str(text, format) {
        return Some(t.timestamp_micros());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
        return Some(t.and_utc().timestamp_micros());
    }
    NaiveDate::parse_from_str(text, format)
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

// ---------------------------------------------------------------------------------------
// shared helpers

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC_TIMEZONE.into()))
}

fn is_string_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// The values of a string column, or `None` when the column does not hold strings.
fn string_values(column: &dyn Array) -> Option<Vec<Option<&str>>> {
    match column.data_type() {
        DataType::Utf8 => Some(column.as_string::<i32>().iter().collect()),
        DataType::LargeUtf8 => Some(column.as_string::<i64>().iter().collect()),
        DataType::Utf8View => Some(column.as_string_view().iter().collect()),
        _ => None,
    }
}

/// The index of column `name`, or an error listing the columns there are.
fn column_index(schema: &Schema, name: &str) -> Result<usize> {
    schema.index_of(name).map_err(|_| {
        let available: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Error::new(
            ErrorKind::InvalidInput,
            format!(
                "unknown column \"{name}\"; available columns: {}",
                available.join(", ")
            ),
        )
        .with_context("column", name)
    })
}

/// `schema` with the given columns changed to new types.
fn with_types(schema: &SchemaRef, changes: impl Iterator<Item = (usize, DataType)>) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (i, data_type) in changes {
        if let Some(field) = fields.get_mut(i) {
            *field = field.clone().with_data_type(data_type);
        }
    }
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// A batch of `columns` under `schema`; the row count is explicit so batches of no columns
/// keep their rows.
fn rebuild(schema: &SchemaRef, columns: Vec<ArrayRef>, num_rows: usize) -> Result<RecordBatch> {
    let options = RecordBatchOptions::new().with_row_count(Some(num_rows));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options).map_err(arrow_error)
}

/// Value `i` of `column` as people would write it: strings quoted, the rest as displayed.
fn quoted_value(column: &dyn Array, i: usize) -> String {
    if let Some(values) = string_values(column) {
        return format!("{:?}", values.get(i).copied().flatten().unwrap_or_default());
    }
    match ArrayFormatter::try_new(column, &FormatOptions::default()) {
        Ok(formatter) => formatter.value(i).to_string(),
        Err(_) => format!("the value of type {}", column.data_type()),
    }
}

fn row_error(row: usize, column: &str, detail: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("row {row}, column \"{column}\": {detail}"),
    )
    .with_context("row", row)
    .with_context("column", column)
}

fn arrow_error(e: ArrowError) -> Error {
    Error::new(ErrorKind::Unexpected, format!("arrow: {e}")).set_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::InitContext;
    use arrow_array::TimestampMicrosecondArray;
    use serde_json::json;
    use tokio_util::sync::CancellationToken;

    fn strings(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    fn ints(values: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(values.to_vec()))
    }

    /// Records of several batches with the same nullable columns.
    fn records_in_batches(names: &[&str], batches: Vec<Vec<ArrayRef>>) -> Records {
        let fields: Vec<Field> = names
            .iter()
            .zip(&batches[0])
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let batches = batches
            .into_iter()
            .map(|columns| RecordBatch::try_new(schema.clone(), columns).unwrap())
            .collect();
        Records::new(schema, batches).unwrap()
    }

    fn records(columns: Vec<(&str, ArrayRef)>) -> Records {
        let (names, arrays): (Vec<&str>, Vec<ArrayRef>) = columns.into_iter().unzip();
        records_in_batches(&names, vec![arrays])
    }

    /// id, name, amount (as text), over two batches of two rows.
    fn sales() -> Records {
        records_in_batches(
            &["id", "name", "amount"],
            vec![
                vec![
                    ints(&[Some(1), Some(2)]),
                    strings(&[Some("Ada"), Some("Bo")]),
                    strings(&[Some("10.5"), Some("3")]),
                ],
                vec![
                    ints(&[Some(3), Some(4)]),
                    strings(&[Some("Cy"), None]),
                    strings(&[Some("7"), Some("abc")]),
                ],
            ],
        )
    }

    fn column_names(r: &Records) -> Vec<String> {
        r.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// A column's values as displayed by arrow, nulls as `None`, across batches.
    fn shown(r: &Records, column: &str) -> Vec<Option<String>> {
        let i = r.schema().index_of(column).unwrap();
        r.batches()
            .iter()
            .flat_map(|b| {
                let array = b.column(i).clone();
                let formatter = ArrayFormatter::try_new(&array, &FormatOptions::default()).unwrap();
                (0..array.len())
                    .map(|row| {
                        array
                            .is_valid(row)
                            .then(|| formatter.value(row).to_string())
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn some(values: &[&str]) -> Vec<Option<String>> {
        values.iter().map(|v| Some(v.to_string())).collect()
    }

    async fn run(action: &str, config: Value, input: Records) -> Result<Records> {
        let mut plugin = DataTransformer::new();
        plugin.initialize(InitContext::plain(json!({}))).await?;
        plugin
            .execute(Call::new(action, Payload::Records(input)).with_config(config))
            .await?
            .into_records()
    }

    // --- metadata

    #[test]
    fn metadata_lists_every_action_taking_and_returning_records() {
        let meta = DataTransformer::new().metadata();
        assert_eq!(meta.id, "data-transformer");
        assert_eq!(meta.category, Category::DataProcessor);
        assert_eq!(meta.version, Version::new(0, 1, 0));
        let names: Vec<&str> = meta.actions.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cast",
                "fill_defaults",
                "normalize",
                "rename",
                "select",
                "validate"
            ]
        );
        for action in &meta.actions {
            assert_eq!(action.input.kind, "records", "{}", action.name);
            assert_eq!(action.output.kind, "records", "{}", action.name);
        }
    }

    #[test]
    fn cast_type_schema_accepts_aliases_and_decimals() {
        let schema = crate::plugin::schema_value::<CastConfig>();
        let validator = jsonschema::validator_for(&schema).unwrap();
        for name in ["integer", "number", "float", "timestamp", "decimal(10,2)"] {
            assert!(
                validator.is_valid(&json!({"columns": {"a": name}})),
                "{name}"
            );
        }
        assert!(!validator.is_valid(&json!({"columns": {"a": "uuid"}})));
    }

    // --- select

    #[tokio::test]
    async fn select_keeps_the_named_columns_in_the_given_order() {
        let out = run("select", json!({"columns": ["amount", "id"]}), sales())
            .await
            .unwrap();
        assert_eq!(column_names(&out), ["amount", "id"]);
        assert_eq!(out.num_rows(), 4);
        assert_eq!(shown(&out, "id"), some(&["1", "2", "3", "4"]));
    }

    #[tokio::test]
    async fn select_of_an_unknown_column_names_it_and_lists_the_available_ones() {
        let err = run("select", json!({"columns": ["id", "price"]}), sales())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.context_value("column"), Some("price"));
        assert!(err.message().contains("\"price\""), "{err}");
        assert!(
            err.message()
                .contains("available columns: id, name, amount"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn select_rejects_unknown_config_keys() {
        let err = run("select", json!({"columns": ["id"], "colums": []}), sales())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    // --- rename

    #[tokio::test]
    async fn rename_changes_names_and_keeps_values_and_order() {
        let out = run("rename", json!({"columns": {"name": "customer"}}), sales())
            .await
            .unwrap();
        assert_eq!(column_names(&out), ["id", "customer", "amount"]);
        assert_eq!(shown(&out, "customer")[0].as_deref(), Some("Ada"));
    }

    #[tokio::test]
    async fn rename_of_an_unknown_column_is_an_error() {
        let err = run("rename", json!({"columns": {"nom": "name2"}}), sales())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.context_value("column"), Some("nom"));
    }

    #[tokio::test]
    async fn rename_onto_an_existing_column_is_an_error() {
        let err = run("rename", json!({"columns": {"name": "amount"}}), sales())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.context_value("column"), Some("amount"));
    }

    #[tokio::test]
    async fn rename_may_swap_two_names() {
        let out = run(
            "rename",
            json!({"columns": {"name": "amount", "amount": "name"}}),
            sales(),
        )
        .await
        .unwrap();
        assert_eq!(column_names(&out), ["id", "amount", "name"]);
        assert_eq!(shown(&out, "name")[0].as_deref(), Some("10.5"));
    }

    // --- cast

    #[tokio::test]
    async fn cast_converts_text_to_numbers_booleans_dates_and_timestamps() {
        let input = records(vec![
            ("n", strings(&[Some("42"), None])),
            ("x", strings(&[Some("1.25"), Some("2")])),
            ("ok", strings(&[Some("true"), Some("false")])),
            ("day", strings(&[Some("2024-01-31"), Some("2024-02-29")])),
            (
                "at",
                strings(&[Some("2024-01-31T12:00:00Z"), Some("2024-01-31 13:30:00")]),
            ),
            ("price", strings(&[Some("9.99"), Some("10")])),
        ]);
        let config = json!({"columns": {
            "n": "integer", "x": "number", "ok": "boolean", "day": "date",
            "at": "timestamp", "price": "decimal(10,2)"
        }});
        let out = run("cast", config, input).await.unwrap();
        let types: Vec<DataType> = out
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            [
                DataType::Int64,
                DataType::Float64,
                DataType::Boolean,
                DataType::Date32,
                utc_micros(),
                DataType::Decimal128(10, 2),
            ]
        );
        assert_eq!(shown(&out, "n"), [Some("42".to_string()), None]);
        assert_eq!(
            shown(&out, "at"),
            some(&["2024-01-31T12:00:00Z", "2024-01-31T13:30:00Z"])
        );
        assert_eq!(shown(&out, "price"), some(&["9.99", "10.00"]));
    }

    #[tokio::test]
    async fn cast_failure_names_the_row_across_batches_the_column_and_the_value() {
        let err = run("cast", json!({"columns": {"amount": "float"}}), sales())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            err.message(),
            "row 4, column \"amount\": cannot cast \"abc\" to float64"
        );
        assert_eq!(err.context_value("row"), Some("4"));
        assert_eq!(err.context_value("column"), Some("amount"));
    }

    #[tokio::test]
    async fn cast_to_an_unknown_type_is_rejected_listing_the_known_ones() {
        let err = run("cast", json!({"columns": {"amount": "money"}}), sales())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            err.message().contains("known types: string, int64"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn cast_of_an_unknown_column_is_an_error() {
        let err = run("cast", json!({"columns": {"total": "int64"}}), sales())
            .await
            .unwrap_err();
        assert_eq!(err.context_value("column"), Some("total"));
    }

    #[tokio::test]
    async fn cancelled_cast_stops_before_the_next_batch() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let mut plugin = DataTransformer::new();
        plugin
            .initialize(InitContext::plain(json!({})))
            .await
            .unwrap();
        let call = Call::new("cast", Payload::Records(sales()))
            .with_config(json!({"columns": {"id": "string"}}))
            .with_cancel(cancel);
        let err = plugin.execute(call).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled);
    }

    // --- fill_defaults

    #[tokio::test]
    async fn fill_defaults_replaces_nulls_with_the_value_in_the_column_type() {
        let input = records(vec![
            ("qty", ints(&[Some(1), None, Some(3)])),
            ("city", strings(&[None, Some("Oslo"), None])),
        ]);
        let config = json!({"values": {"qty": 0, "city": "unknown"}});
        let out = run("fill_defaults", config, input).await.unwrap();
        assert_eq!(out.schema().field(0).data_type(), &DataType::Int64);
        assert_eq!(shown(&out, "qty"), some(&["1", "0", "3"]));
        assert_eq!(shown(&out, "city"), some(&["unknown", "Oslo", "unknown"]));
    }

    #[tokio::test]
    async fn fill_defaults_with_a_value_that_does_not_fit_the_column_is_an_error() {
        let input = records(vec![("qty", ints(&[Some(1), None]))]);
        for value in [json!("many"), json!(1.5), json!(true), json!([1])] {
            let err = run(
                "fill_defaults",
                json!({"values": {"qty": value}}),
                input.clone(),
            )
            .await
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{value}");
            assert_eq!(err.context_value("column"), Some("qty"), "{value}");
        }
    }

    #[tokio::test]
    async fn fill_defaults_of_an_unknown_column_is_an_error() {
        let err = run("fill_defaults", json!({"values": {"zip": "0000"}}), sales())
            .await
            .unwrap_err();
        assert_eq!(err.context_value("column"), Some("zip"));
    }

    // --- validate

    fn positive_amounts() -> Records {
        records_in_batches(
            &["id", "amount"],
            vec![
                vec![ints(&[Some(1), Some(2)]), ints(&[Some(10), Some(-5)])],
                vec![ints(&[Some(3), Some(4)]), ints(&[Some(7), Some(-1)])],
            ],
        )
    }

    fn amount_schema() -> Value {
        json!({
            "type": "object",
            "properties": {"amount": {"type": "integer", "minimum": 0}},
            "required": ["amount"]
        })
    }

    #[tokio::test]
    async fn validate_drop_removes_the_rows_that_do_not_match() {
        let config = json!({"schema": amount_schema(), "on_invalid": "drop"});
        let out = run("validate", config, positive_amounts()).await.unwrap();
        assert_eq!(shown(&out, "id"), some(&["1", "3"]));
        assert_eq!(column_names(&out), ["id", "amount"]);
    }

    #[tokio::test]
    async fn validate_drops_by_default() {
        let out = run(
            "validate",
            json!({"schema": amount_schema()}),
            positive_amounts(),
        )
        .await
        .unwrap();
        assert_eq!(out.num_rows(), 2);
    }

    #[tokio::test]
    async fn validate_flag_keeps_every_row_and_adds_the_errors_null_when_valid() {
        let config = json!({"schema": amount_schema(), "on_invalid": "flag"});
        let out = run("validate", config, positive_amounts()).await.unwrap();
        assert_eq!(column_names(&out), ["id", "amount", "_errors"]);
        let flags = shown(&out, "_errors");
        assert_eq!(flags.len(), 4);
        assert_eq!(flags[0], None);
        assert_eq!(flags[2], None);
        let second = flags[1].as_deref().unwrap();
        assert!(second.starts_with("at /amount: "), "{second}");
        assert!(second.contains("minimum"), "{second}");
        assert!(flags[3].is_some());
    }

    #[tokio::test]
    async fn validate_flag_uses_the_configured_column_and_refuses_an_existing_one() {
        let config = json!({"schema": amount_schema(), "on_invalid": "flag", "flag_column": "why"});
        let out = run("validate", config, positive_amounts()).await.unwrap();
        assert_eq!(column_names(&out), ["id", "amount", "why"]);

        let config = json!({"schema": amount_schema(), "on_invalid": "flag", "flag_column": "id"});
        let err = run("validate", config, positive_amounts())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.context_value("column"), Some("id"));
    }

    #[tokio::test]
    async fn validate_fail_names_the_first_failing_row_and_why() {
        let config = json!({"schema": amount_schema(), "on_invalid": "fail"});
        let err = run("validate", config, positive_amounts())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.context_value("row"), Some("2"));
        assert!(
            err.message()
                .starts_with("row 2 does not match the schema: at /amount"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn validate_fail_passes_records_that_all_match() {
        let config = json!({"schema": {"type": "object"}, "on_invalid": "fail"});
        let out = run("validate", config, positive_amounts()).await.unwrap();
        assert_eq!(out.num_rows(), 4);
    }

    #[tokio::test]
    async fn validate_with_an_invalid_schema_is_an_error() {
        let config = json!({"schema": {"type": "no-such-type"}});
        let err = run("validate", config, positive_amounts())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("not a valid JSON Schema"), "{err}");
    }

    // --- normalize

    #[tokio::test]
    async fn normalize_trims_every_string_column_by_default() {
        let input = records(vec![
            ("name", strings(&[Some("  Ada "), None, Some("\tBo\n")])),
            (
                "city",
                strings(&[Some(" Oslo"), Some("Rome "), Some("Lima")]),
            ),
            ("id", ints(&[Some(1), Some(2), Some(3)])),
        ]);
        let out = run("normalize", Value::Null, input).await.unwrap();
        assert_eq!(
            shown(&out, "name"),
            [Some("Ada".into()), None, Some("Bo".into())]
        );
        assert_eq!(shown(&out, "city"), some(&["Oslo", "Rome", "Lima"]));
        assert_eq!(shown(&out, "id"), some(&["1", "2", "3"]));
    }

    #[tokio::test]
    async fn normalize_leaves_whitespace_when_trim_is_off() {
        let input = records(vec![("name", strings(&[Some(" Ada ")]))]);
        let out = run("normalize", json!({"trim": false}), input)
            .await
            .unwrap();
        assert_eq!(shown(&out, "name"), some(&[" Ada "]));
    }

    #[tokio::test]
    async fn normalize_lowercases_only_the_named_columns() {
        let input = records(vec![
            ("email", strings(&[Some(" Ada@Example.COM ")])),
            ("name", strings(&[Some("Ada")])),
        ]);
        let out = run("normalize", json!({"lowercase": ["email"]}), input)
            .await
            .unwrap();
        assert_eq!(shown(&out, "email"), some(&["ada@example.com"]));
        assert_eq!(shown(&out, "name"), some(&["Ada"]));
    }

    #[tokio::test]
    async fn normalize_lowercase_of_a_number_column_is_an_error() {
        let input = records(vec![("id", ints(&[Some(1)]))]);
        let err = run("normalize", json!({"lowercase": ["id"]}), input)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.context_value("column"), Some("id"));
    }

    #[tokio::test]
    async fn normalize_parses_rfc3339_naive_and_date_only_timestamps_as_utc() {
        let input = records(vec![(
            "at",
            strings(&[
                Some("2024-01-31T12:00:00+02:00"),
                Some(" 2024-01-31 12:00:00 "),
                Some("2024-01-31"),
                Some(""),
                None,
            ]),
        )]);
        let out = run("normalize", json!({"timestamps": {"at": null}}), input)
            .await
            .unwrap();
        assert_eq!(out.schema().field(0).data_type(), &utc_micros());
        let at = out.batches()[0]
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let noon = 1_706_702_400_000_000;
        assert_eq!(at.value(0), noon - 2 * 3_600_000_000);
        assert_eq!(at.value(1), noon);
        assert_eq!(at.value(2), noon - 12 * 3_600_000_000);
        assert!(at.is_null(3) && at.is_null(4));
        assert_eq!(
            shown(&out, "at")[1].as_deref(),
            Some("2024-01-31T12:00:00Z")
        );
    }

    #[tokio::test]
    async fn normalized_timestamps_can_be_written_as_json_and_csv() {
        let input = records(vec![("at", strings(&[Some("2024-01-31 12:00:00")]))]);
        let out = run("normalize", json!({"timestamps": {"at": null}}), input)
            .await
            .unwrap();
        assert_eq!(
            out.to_json_rows().unwrap(),
            [json!({"at": "2024-01-31T12:00:00Z"})]
        );
        let mut csv = Vec::new();
        out.to_csv(&mut csv).unwrap();
        assert!(
            String::from_utf8(csv)
                .unwrap()
                .contains("2024-01-31T12:00:00")
        );
    }

    #[tokio::test]
    async fn normalize_parses_timestamps_with_a_chrono_format() {
        let input = records(vec![
            ("at", strings(&[Some("31/01/2024 12:00")])),
            ("day", strings(&[Some("31.01.2024")])),
        ]);
        let config = json!({"timestamps": {"at": "%d/%m/%Y %H:%M", "day": "%d.%m.%Y"}});
        let out = run("normalize", config, input).await.unwrap();
        assert_eq!(shown(&out, "at"), some(&["2024-01-31T12:00:00Z"]));
        assert_eq!(shown(&out, "day"), some(&["2024-01-31T00:00:00Z"]));
    }

    #[tokio::test]
    async fn normalize_unparseable_timestamp_names_the_row_and_column() {
        let input = records_in_batches(
            &["at"],
            vec![
                vec![strings(&[Some("2024-01-31")])],
                vec![strings(&[Some("2024-02-01"), Some("yesterday")])],
            ],
        );
        let err = run("normalize", json!({"timestamps": {"at": null}}), input)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            err.message(),
            "row 3, column \"at\": cannot parse \"yesterday\" as a timestamp"
        );
        assert_eq!(err.context_value("row"), Some("3"));
        assert_eq!(err.context_value("column"), Some("at"));
    }

    #[tokio::test]
    async fn normalize_rejects_an_invalid_timestamp_format() {
        let input = records(vec![("at", strings(&[Some("2024")]))]);
        let err = run("normalize", json!({"timestamps": {"at": "%Q"}}), input)
            .await
            .unwrap_err();
        assert_eq!(err.context_value("column"), Some("at"));
    }

    #[tokio::test]
    async fn normalize_accepts_target_schema_from_existing_workflows() {
        let input = records(vec![("name", strings(&[Some(" Ada ")]))]);
        let config = json!({"target_schema": "analytics.sales_normalized"});
        let out = run("normalize", config, input).await.unwrap();
        assert_eq!(shown(&out, "name"), some(&["Ada"]));
    }

    #[tokio::test]
    async fn normalize_rejects_unknown_config_keys() {
        let input = records(vec![("name", strings(&[Some("Ada")]))]);
        let err = run("normalize", json!({"lowercse": ["name"]}), input)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}
