//! [`RedisStreams`]: Redis Streams with consumer groups — publish (`XADD`), consume
//! (`XREADGROUP`), acknowledge (`XACK`), take over stuck messages (`XAUTOCLAIM`) and read
//! the pending list (`XPENDING`).
//!
//! Delivery is at least once: a consumed message stays in the group's pending list until it
//! is acknowledged; one its consumer never acknowledges (it crashed) is claimed by another
//! consumer with [`RedisStreams::claim_stuck`] once it has been idle long enough.
//!
//! An entry's fields are text. Publishing a JSON object stores each top-level member as a
//! field: strings as they are, every other value as its JSON text (`42`, `true`,
//! `{"a":1}`); `null` as an empty string. Consumed fields come back as text (bytes that are
//! not UTF-8 with U+FFFD in their place).

use std::collections::BTreeMap;
use std::time::Duration;

use ::redis::Value;
use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cache::{check_batch, has_code, unexpected_answer};
use super::client::RedisClient;
use super::config::MAX_BLOCK;

/// One stream entry: its id and its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamMessage {
    /// The entry's id (`1700000000000-0`).
    pub id: String,
    /// Its fields, by name.
    pub fields: BTreeMap<String, String>,
}

/// A stream's length cap for [`RedisStreams::publish`] (`XADD MAXLEN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxLen {
    /// The most entries to keep.
    pub len: u64,
    /// Trim exactly to `len` (`MAXLEN =`) instead of about (`MAXLEN ~`, cheaper: whole
    /// nodes are dropped, so a few more may remain).
    pub exact: bool,
}

/// What [`RedisStreams::consume`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeOptions {
    /// The consumer group.
    pub group: String,
    /// This consumer's name within the group.
    pub consumer: String,
    /// The most messages to read (1 to 10,000).
    pub count: usize,
    /// How long to wait for a message when none is waiting; no wait when `None` or zero
    /// (at most 5 minutes).
    pub block: Option<Duration>,
}

/// What [`RedisStreams::claim_stuck`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClaimedMessages {
    /// The messages now owned by the claiming consumer (their delivery count raised).
    pub messages: Vec<StreamMessage>,
    /// Where the next scan starts; `0-0` when the whole pending list was scanned.
    pub next_cursor: String,
    /// Pending ids whose entries were deleted from the stream; Redis dropped them from the
    /// pending list.
    pub deleted_ids: Vec<String>,
}

/// How many messages one consumer has pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConsumerPending {
    /// The consumer's name.
    pub name: String,
    /// Messages delivered to it and not acknowledged.
    pub pending: u64,
}

/// One pending message (`XPENDING` with a range).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PendingMessage {
    /// The entry's id.
    pub id: String,
    /// The consumer that has it.
    pub consumer: String,
    /// Milliseconds since it was last delivered.
    pub idle_ms: u64,
    /// How many times it was delivered.
    pub deliveries: u64,
}

/// A consumer group's pending list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PendingSummary {
    /// Messages delivered and not acknowledged.
    pub count: u64,
    /// The smallest pending id, when any.
    pub smallest_id: Option<String>,
    /// The greatest pending id, when any.
    pub greatest_id: Option<String>,
    /// Pending counts per consumer.
    pub consumers: Vec<ConsumerPending>,
    /// The pending messages themselves, when a `count` asked for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<PendingMessage>,
}

/// Which pending messages [`RedisStreams::pending`] lists besides the summary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PendingQuery {
    /// List up to this many pending messages (oldest first); none when `None`.
    pub count: Option<usize>,
    /// Only those of this consumer.
    pub consumer: Option<String>,
    /// Only those idle at least this long.
    pub min_idle: Option<Duration>,
}

/// Redis Streams with consumer groups, usable from any Rust code (and behind the plugin's
/// `publish`, `consume`, `ack`, `claim_stuck` and `pending` actions).
///
/// Stream names go through the client's `key_prefix`.
#[derive(Debug, Clone)]
pub struct RedisStreams {
    client: RedisClient,
}

impl RedisStreams {
    /// Streams on an open client.
    pub fn new(client: RedisClient) -> Self {
        RedisStreams { client }
    }

    /// The client underneath.
    pub fn client(&self) -> &RedisClient {
        &self.client
    }

    /// Appends one entry per item of `entries` (at most 10,000, each with at least one
    /// field) to `stream`, in order, and returns their ids. The entries go in one pipeline;
    /// when it fails part-way, the entries before the failure are in the stream.
    pub async fn publish(
        &self,
        stream: &str,
        entries: &[Vec<(String, String)>],
        maxlen: Option<MaxLen>,
    ) -> Result<Vec<String>> {
        if entries.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "nothing to publish: give `fields`, or an input of JSON objects or records",
            ));
        }
        check_batch("entries", entries.len())?;
        let name = self.client.key(stream);
        let mut pipe = ::redis::pipe();
        for (i, fields) in entries.iter().enumerate() {
            if fields.is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("entry {i} has no fields; a stream entry needs at least one"),
                ));
            }
            let cmd = pipe.cmd("XADD").arg(&name);
            if let Some(cap) = maxlen {
                cmd.arg("MAXLEN")
                    .arg(if cap.exact { "=" } else { "~" })
                    .arg(cap.len);
            }
            cmd.arg("*");
            for (field, value) in fields {
                cmd.arg(field).arg(value);
            }
        }
        let answers = self
            .client
            .run_pipeline(&pipe, &format!("publish to stream `{stream}`"))
            .await?;
        answers.iter().map(|a| text_of(a, "XADD")).collect()
    }

    /// Creates consumer group `group` on `stream` starting at `start` (`0` for the whole
    /// stream, `$` for new entries only), creating the stream when missing
    /// (`XGROUP CREATE ... MKSTREAM`). Returns `false` when the group already existed.
    pub async fn create_group(&self, stream: &str, group: &str, start: &str) -> Result<bool> {
        let mut cmd = ::redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(self.client.key(stream))
            .arg(group)
            .arg(start)
            .arg("MKSTREAM");
        match self
            .client
            .run(
                &cmd,
                &format!("create group `{group}` on stream `{stream}`"),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if has_code(&e, "BUSYGROUP") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads up to `count` messages never delivered to the group (`XREADGROUP ... >`),
    /// waiting up to `block` for the first. They stay pending until [`RedisStreams::ack`].
    pub async fn consume(
        &self,
        stream: &str,
        options: &ConsumeOptions,
    ) -> Result<Vec<StreamMessage>> {
        check_count(options.count)?;
        let block = options.block.filter(|b| !b.is_zero());
        if block.is_some_and(|b| b > MAX_BLOCK) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "`block_ms` is at most {} (5 minutes)",
                    MAX_BLOCK.as_millis()
                ),
            ));
        }
        let mut cmd = ::redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&options.group)
            .arg(&options.consumer)
            .arg("COUNT")
            .arg(options.count);
        if let Some(block) = block {
            cmd.arg("BLOCK")
                .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1));
        }
        cmd.arg("STREAMS").arg(self.client.key(stream)).arg(">");
        let doing = format!(
            "read stream `{stream}` as consumer `{}` of group `{}`",
            options.consumer, options.group
        );
        let answer = match block {
            Some(block) => self.client.run_blocking(&cmd, block, &doing).await?,
            None => self.client.run(&cmd, &doing).await?,
        };
        read_group_reply(answer)
    }

    /// Acknowledges `ids` (at most 10,000) in `group`; returns how many were pending.
    pub async fn ack<I: AsRef<str>>(&self, stream: &str, group: &str, ids: &[I]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        check_batch("ids", ids.len())?;
        let mut cmd = ::redis::cmd("XACK");
        cmd.arg(self.client.key(stream)).arg(group);
        for id in ids {
            cmd.arg(id.as_ref());
        }
        match self
            .client
            .run(&cmd, &format!("acknowledge messages of stream `{stream}`"))
            .await?
        {
            Value::Int(n) => Ok(u64::try_from(n).unwrap_or(0)),
            other => Err(unexpected_answer("XACK", &other)),
        }
    }

    /// Moves up to `count` messages pending in `group` for at least `min_idle` to
    /// `consumer` (`XAUTOCLAIM`), scanning the pending list from `start` (`0-0` for the
    /// beginning), and returns them with the cursor of the next scan.
    pub async fn claim_stuck(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
        start: &str,
    ) -> Result<ClaimedMessages> {
        check_count(count)?;
        let mut cmd = ::redis::cmd("XAUTOCLAIM");
        cmd.arg(self.client.key(stream))
            .arg(group)
            .arg(consumer)
            .arg(u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX))
            .arg(start)
            .arg("COUNT")
            .arg(count);
        let answer = self
            .client
            .run(
                &cmd,
                &format!("claim stuck messages of stream `{stream}` in group `{group}`"),
            )
            .await?;
        let Value::Array(parts) = answer else {
            return Err(unexpected_answer("XAUTOCLAIM", &answer));
        };
        let mut parts = parts.into_iter();
        let next_cursor = match parts.next() {
            Some(v) => text_of(&v, "XAUTOCLAIM cursor")?,
            None => return Err(unexpected_answer("XAUTOCLAIM", "an empty answer")),
        };
        let messages = match parts.next() {
            Some(entries) => entries_of(entries)?,
            None => Vec::new(),
        };
        let deleted_ids = match parts.next() {
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|v| text_of(v, "XAUTOCLAIM deleted id"))
                .collect::<Result<_>>()?,
            _ => Vec::new(),
        };
        Ok(ClaimedMessages {
            messages,
            next_cursor,
            deleted_ids,
        })
    }

    /// The pending list of `group`: the summary, and the messages `query` asks for.
    pub async fn pending(
        &self,
        stream: &str,
        group: &str,
        query: &PendingQuery,
    ) -> Result<PendingSummary> {
        let name = self.client.key(stream);
        let doing = format!("read the pending list of group `{group}` on stream `{stream}`");
        let mut cmd = ::redis::cmd("XPENDING");
        cmd.arg(&name).arg(group);
        let mut summary = summary_of(self.client.run(&cmd, &doing).await?)?;
        let Some(count) = query.count else {
            if query.consumer.is_some() || query.min_idle.is_some() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "`consumer` and `min_idle_ms` filter the listed messages; give `count` too",
                ));
            }
            return Ok(summary);
        };
        check_count(count)?;
        let mut cmd = ::redis::cmd("XPENDING");
        cmd.arg(&name).arg(group);
        if let Some(idle) = query.min_idle {
            cmd.arg("IDLE")
                .arg(u64::try_from(idle.as_millis()).unwrap_or(u64::MAX));
        }
        cmd.arg("-").arg("+").arg(count);
        if let Some(consumer) = &query.consumer {
            cmd.arg(consumer);
        }
        let Value::Array(rows) = self.client.run(&cmd, &doing).await? else {
            return Err(unexpected_answer("XPENDING", "a non-array answer"));
        };
        for row in rows {
            let Value::Array(cols) = row else {
                return Err(unexpected_answer("XPENDING row", &row));
            };
            let [id, consumer, idle, deliveries] = cols.as_slice() else {
                return Err(unexpected_answer("XPENDING row", &cols));
            };
            summary.messages.push(PendingMessage {
                id: text_of(id, "XPENDING id")?,
                consumer: text_of(consumer, "XPENDING consumer")?,
                idle_ms: number_of(idle, "XPENDING idle")?,
                deliveries: number_of(deliveries, "XPENDING deliveries")?,
            });
        }
        Ok(summary)
    }
}

fn check_count(count: usize) -> Result<()> {
    if count == 0 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "`count` must be at least 1",
        ));
    }
    check_batch("messages asked for (`count`)", count)
}

/// The text of a bulk or simple string.
fn text_of(value: &Value, what: &str) -> Result<String> {
    match value {
        Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::VerbatimString { text, .. } => Ok(text.clone()),
        Value::Int(n) => Ok(n.to_string()),
        other => Err(unexpected_answer(what, other)),
    }
}

fn number_of(value: &Value, what: &str) -> Result<u64> {
    match value {
        Value::Int(n) => Ok(u64::try_from(*n).unwrap_or(0)),
        other => text_of(other, what)?
            .parse()
            .map_err(|_| unexpected_answer(what, other)),
    }
}

/// `[[id, [field, value, ...]], ...]` as messages; entries deleted since delivery (whose
/// fields are nil) are left out.
fn entries_of(value: Value) -> Result<Vec<StreamMessage>> {
    let entries = match value {
        Value::Array(e) => e,
        Value::Nil => return Ok(Vec::new()),
        other => return Err(unexpected_answer("stream entries", &other)),
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(parts) = entry else {
            return Err(unexpected_answer("stream entry", &entry));
        };
        let mut parts = parts.into_iter();
        let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
            continue;
        };
        let id = text_of(&id, "stream entry id")?;
        let pairs: Vec<Value> = match fields {
            Value::Array(items) => items,
            Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            Value::Nil => continue,
            other => return Err(unexpected_answer("stream entry fields", &other)),
        };
        let mut fields = BTreeMap::new();
        let mut it = pairs.iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            fields.insert(text_of(k, "field name")?, text_of(v, "field value")?);
        }
        out.push(StreamMessage { id, fields });
    }
    Ok(out)
}

/// `XREADGROUP`'s answer for one stream: nil when nothing came, else
/// `[[stream, entries]]` (or a map of stream to entries).
fn read_group_reply(answer: Value) -> Result<Vec<StreamMessage>> {
    match answer {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => {
            let mut out = Vec::new();
            for s in streams {
                let Value::Array(parts) = s else {
                    return Err(unexpected_answer("XREADGROUP stream", &s));
                };
                if let Some(entries) = parts.into_iter().nth(1) {
                    out.extend(entries_of(entries)?);
                }
            }
            Ok(out)
        }
        Value::Map(streams) => {
            let mut out = Vec::new();
            for (_, entries) in streams {
                out.extend(entries_of(entries)?);
            }
            Ok(out)
        }
        other => Err(unexpected_answer("XREADGROUP", &other)),
    }
}

/// `XPENDING`'s summary: `[count, smallest, greatest, [[consumer, count], ...]]`.
fn summary_of(answer: Value) -> Result<PendingSummary> {
    let Value::Array(parts) = answer else {
        return Err(unexpected_answer("XPENDING", &answer));
    };
    let [count, smallest, greatest, consumers] = parts.as_slice() else {
        return Err(unexpected_answer("XPENDING", &parts));
    };
    let optional = |v: &Value, what| match v {
        Value::Nil => Ok(None),
        other => text_of(other, what).map(Some),
    };
    let consumers = match consumers {
        Value::Nil => Vec::new(),
        Value::Array(rows) => rows
            .iter()
            .map(|row| match row {
                Value::Array(pair) if pair.len() == 2 => Ok(ConsumerPending {
                    name: text_of(&pair[0], "XPENDING consumer")?,
                    pending: number_of(&pair[1], "XPENDING consumer count")?,
                }),
                other => Err(unexpected_answer("XPENDING consumer", other)),
            })
            .collect::<Result<_>>()?,
        other => return Err(unexpected_answer("XPENDING consumers", other)),
    };
    Ok(PendingSummary {
        count: number_of(count, "XPENDING count")?,
        smallest_id: optional(smallest, "XPENDING smallest id")?,
        greatest_id: optional(greatest, "XPENDING greatest id")?,
        consumers,
        messages: Vec::new(),
    })
}
