//! Settings of the `power-automate-connector` plugin, and [`FlowUrl`], a trigger URL whose
//! query holds the credential.

use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

use crate::saas::{HttpOptions, PollSettings, parse_url};

/// The scope of a token for calling flows.
pub const FLOW_SCOPE: &str = "https://service.flow.microsoft.com//.default";

/// The Microsoft Entra token endpoint of `tenant`.
pub fn entra_token_url(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
}

/// A flow's HTTP trigger URL (or an approval status URL). With "Anyone" access its query
/// carries the SAS signature (`sig`), which is the credential, so the URL is kept as a
/// secret: `Debug`, serialization, logs and errors show scheme, host and path only.
#[derive(Clone)]
pub struct FlowUrl {
    secret: SecretString,
}

impl FlowUrl {
    /// Checks `text` (an `http(s)` URL with a host); the error names `setting`, never the
    /// URL.
    pub fn parse(setting: &str, text: &str) -> Result<Self> {
        let url = Url::parse(text).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("`{setting}` is not a valid URL ({e})"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "`{setting}` must be an http(s) URL with a host: copy the flow's HTTP POST URL"
                ),
            ));
        }
        Ok(Self {
            secret: SecretString::from(text.to_string()),
        })
    }

    /// The URL, to send to.
    pub fn url(&self) -> Result<Url> {
        Url::parse(self.secret.expose_secret())
            .map_err(|e| Error::new(ErrorKind::ConfigInvalid, format!("bad flow URL ({e})")))
    }

    /// Whether the URL carries a SAS signature (`sig`).
    pub fn is_signed(&self) -> bool {
        self.url()
            .is_ok_and(|u| u.query_pairs().any(|(k, _)| k == "sig"))
    }

    /// `scheme://host/path` without the query.
    pub fn redacted(&self) -> String {
        match self.url() {
            Ok(url) => without_query(&url),
            Err(_) => "(a bad URL)".into(),
        }
    }
}

/// `url` without its query and fragment, as text.
pub(crate) fn without_query(url: &Url) -> String {
    let mut out = url.clone();
    out.set_query(None);
    out.set_fragment(None);
    let _ = out.set_password(None);
    out.to_string()
}

/// `url` without path, query or credentials: what a network grant is checked against.
pub(crate) fn origin(url: &Url) -> Url {
    let mut out = url.clone();
    out.set_path("/");
    out.set_query(None);
    out.set_fragment(None);
    let _ = out.set_username("");
    let _ = out.set_password(None);
    out
}

impl std::fmt::Debug for FlowUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlowUrl({})", self.redacted())
    }
}

impl Serialize for FlowUrl {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for FlowUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        FlowUrl::parse("flow_url", &text).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

fn default_scope() -> String {
    FLOW_SCOPE.into()
}

/// Microsoft Entra client credentials, for flows whose trigger accepts only callers of
/// the tenant (their URL has no `sig`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntraSettings {
    /// The directory (tenant) id.
    pub tenant_id: String,
    /// The application (client) id of the app registration.
    pub client_id: String,
    /// Its client secret (`${secret:FLOW_CLIENT_SECRET}`).
    #[schemars(with = "String")]
    pub client_secret: SecretString,
    /// The token endpoint; `https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token`
    /// when absent (sovereign clouds and tests override it).
    #[serde(default)]
    pub token_url: Option<String>,
    /// The scope asked for.
    #[serde(default = "default_scope")]
    pub scope: String,
}

impl EntraSettings {
    /// The token endpoint to use.
    pub fn token_url(&self) -> Result<Url> {
        match &self.token_url {
            Some(url) => parse_url("entra.token_url", url),
            None => parse_url("entra.token_url", &entra_token_url(&self.tenant_id)),
        }
    }
}

/// Settings of the `power-automate-connector` plugin.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PowerAutomateSettings {
    /// The flow `trigger_flow` and `request_approval` call when their config names none:
    /// the trigger's "HTTP POST URL", as `${secret:FLOW_URL}` (its `sig` is the credential).
    /// Pointing it elsewhere (a proxy, a test server) is the base-URL override.
    #[schemars(with = "Option<String>")]
    pub flow_url: Option<FlowUrl>,
    /// Entra client credentials for tenant-only flows (a bearer token instead of `sig`).
    pub entra: Option<EntraSettings>,
    /// How `request_approval` polls the status URL (approvals take hours: raise
    /// `max_wait`, 1 h by default, as needed).
    pub poll: PollSettings,
    /// Retry, timeouts, client-side rate limit and concurrency.
    pub http: HttpOptions,
}
