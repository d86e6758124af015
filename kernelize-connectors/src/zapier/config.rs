//! Settings of the `zapier-connector` plugin, and [`HookUrl`], a URL that is its own
//! credential.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use url::Url;

use crate::saas::{CredentialUrl, HttpOptions, UrlKind, without_path};

/// Zapier's catch-hook host (`https://hooks.zapier.com/hooks/catch/{account}/{hook}/`).
pub const HOOKS_HOST: &str = "https://hooks.zapier.com";

/// Zapier's webhook URLs (catch hooks, REST Hook targets): their path is the credential, so
/// only `https://hooks.zapier.com/…` is shown.
#[derive(Debug)]
pub struct ZapierHook;

impl UrlKind for ZapierHook {
    const NAME: &'static str = "HookUrl";
    const SETTING: &'static str = "hook_url";
    const NOUN: &'static str = "hook";
    const HINT: &'static str = ", such as https://hooks.zapier.com/hooks/catch/ACCOUNT/HOOK/";

    fn shown(url: &Url) -> String {
        without_path(url)
    }
}

/// A webhook URL whose path is the credential (a Zapier catch hook, a REST Hook target).
///
/// It never shows itself whole: `Debug`, serialization and [`CredentialUrl::redacted`]
/// give the scheme and host only, and errors about it never quote the path.
pub type HookUrl = CredentialUrl<ZapierHook>;

/// Settings of the `zapier-connector` plugin.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ZapierSettings {
    /// The catch hook `trigger` sends to when its config names none:
    /// `https://hooks.zapier.com/hooks/catch/{account}/{hook}/` (or its `/silent/` form), as
    /// `${secret:ZAPIER_HOOK_URL}` — the URL is the credential. Pointing it elsewhere (a
    /// proxy, a test server) is the base-URL override.
    #[schemars(with = "Option<String>")]
    pub hook_url: Option<HookUrl>,
    /// The JSON file that keeps REST Hook subscriptions across calls and processes; the
    /// REST Hook actions (`subscribe`, `unsubscribe`, `list_subscriptions`, `notify`) need
    /// it, and a `file_write` grant for it.
    pub subscriptions_file: Option<PathBuf>,
    /// Retry, timeouts, client-side rate limit and concurrency.
    pub http: HttpOptions,
}
