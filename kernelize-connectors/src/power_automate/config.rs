//! Settings of the `power-automate-connector` plugin, and [`FlowUrl`], a trigger URL whose
//! query holds the credential.

use kernelize_core::Result;
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::saas::{CredentialUrl, HttpOptions, PollSettings, UrlKind, parse_url, without_query};

/// The scope of a token for calling flows.
pub const FLOW_SCOPE: &str = "https://service.flow.microsoft.com//.default";

/// The Microsoft Entra token endpoint of `tenant`.
pub fn entra_token_url(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
}

/// Power Automate's flow URLs (HTTP triggers, approval status URLs): with "Anyone" access
/// their query carries the SAS signature (`sig`), so only scheme, host and path are shown.
#[derive(Debug)]
pub struct FlowTrigger;

impl UrlKind for FlowTrigger {
    const NAME: &'static str = "FlowUrl";
    const SETTING: &'static str = "flow_url";
    const NOUN: &'static str = "flow";
    const HINT: &'static str = ": copy the flow's HTTP POST URL";

    fn shown(url: &Url) -> String {
        without_query(url)
    }
}

/// A flow's HTTP trigger URL (or an approval status URL). With "Anyone" access its query
/// carries the SAS signature (`sig`), which is the credential, so the URL is kept as a
/// secret: `Debug`, serialization, logs and errors show scheme, host and path only.
pub type FlowUrl = CredentialUrl<FlowTrigger>;

impl FlowUrl {
    /// Whether the URL carries a SAS signature (`sig`).
    pub fn is_signed(&self) -> bool {
        self.url()
            .is_ok_and(|u| u.query_pairs().any(|(k, _)| k == "sig"))
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
