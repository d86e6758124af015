//! GraphQL: queries and mutations over HTTP through an [`HttpClient`](crate::http::HttpClient)'s
//! layers, subscriptions over WebSocket with the graphql-transport-ws protocol.
//!
//! - [`GraphQLClient`] POSTs `{"query", "variables", "operationName"}` to one endpoint and
//!   returns a [`GraphQLResponse`]: `data` and `errors` side by side, since a partial
//!   result is still a result. Only a failure to get a GraphQL answer is an `Err`.
//! - Queries are retried on transport failures, mutations never; GraphQL `errors` never
//!   cause a retry when the stack's [`RetryLayer`](crate::http::RetryLayer) classifies with
//!   [`retry_verdict`] (see [`GraphQLClient`] for how).
//! - Queries can be marked cacheable for a response cache layer in the stack
//!   ([`GraphQLClient::cache`], [`GraphQLRequest::cache`]); mutations never are.
//! - [`GraphQLClient::subscribe`] returns a [`Subscription`], a stream of results with an
//!   unsubscribe handle.
//!
//! ```no_run
//! use kernelize_connectors::graphql::{GraphQLClient, SubscriptionOptions};
//! use futures::StreamExt;
//! use serde_json::json;
//!
//! # async fn demo() -> kernelize_core::Result<()> {
//! let client = GraphQLClient::with_defaults("https://api.example.com", "graphql")?
//!     .subscriptions(SubscriptionOptions::new().init_payload(&json!({"authToken": "..."}))?);
//!
//! let answer = client
//!     .execute("query User($id: ID!) { user(id: $id) { name } }", &json!({"id": "42"}))
//!     .await?;
//! for error in &answer.errors {
//!     eprintln!("{error}"); // the message and the path of the field that failed
//! }
//!
//! let mut events = client.subscribe("subscription { orderPlaced { id } }", &()).await?;
//! while let Some(event) = events.next().await {
//!     println!("{:?}", event?.data);
//! }
//! # Ok(()) }
//! ```
//!
//! # Subscriptions: one socket each
//!
//! Each [`Subscription`] opens its own WebSocket, initializes it (`connection_init`, wait
//! for `connection_ack`), subscribes, and is driven by a task of its own that answers the
//! server's pings, sends optional keep-alive pings and ends the socket with the
//! subscription. The protocol allows many operations on one socket; one socket each costs
//! a connection per subscription but keeps failures apart (a close code, a slow consumer
//! or an oversized message ends one subscription, not its neighbours) and needs no
//! reconnection bookkeeping shared between them.
//!
//! # Observability
//!
//! Spans `graphql` and `graphql_subscription` carry the operation's type and name (never
//! its variables, which may hold secrets). Counters: `kernelize_graphql_requests_total`
//! (`operation_type`, `result`: `ok`, `graphql_errors`, `error`),
//! `kernelize_graphql_subscriptions_total` (`operation_type`, `outcome`: `completed`,
//! `unsubscribed`, `failed`, `refused`), `kernelize_graphql_subscription_events_total`;
//! histogram `kernelize_graphql_request_seconds`; gauge
//! `kernelize_graphql_subscriptions_active`. The HTTP layers below add their own.

mod client;
mod document;
mod options;
mod protocol;
mod request;
mod response;
mod retry;
mod subscription;

pub use client::GraphQLClient;
pub use document::OperationType;
pub use options::SubscriptionOptions;
pub use protocol::SUBPROTOCOL;
pub use request::GraphQLRequest;
pub use response::{GraphQLError, GraphQLErrors, GraphQLResponse, Location, PathSegment};
pub use retry::{classify_with, retry_verdict};
pub use subscription::{Subscription, SubscriptionHandle};
