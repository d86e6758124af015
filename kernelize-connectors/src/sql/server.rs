//! What the networked SQL connectors (PostgreSQL, MySQL) share about the server their
//! settings name: the host a permission is checked for, the label messages use, and the
//! URL shown without its password.

use kernelize_core::{Permission, PermissionGuard, Result};

/// Where the settings connect: what messages and permission checks name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Server {
    /// The host the permission is checked for (`localhost` for a Unix socket).
    pub(crate) host: String,
    /// `host:port/database`, for messages.
    pub(crate) label: String,
}

impl Server {
    /// Checks that `guard` grants network access to the host; the denial says what to
    /// grant and is permanent.
    pub(crate) fn check(&self, guard: &PermissionGuard) -> Result<()> {
        let permission = Permission::Network {
            host: self.host.clone(),
        };
        crate::network::check_network(
            &permission,
            &self.host,
            &self.host,
            guard,
            &self.label,
            "host",
        )
    }
}

/// `url` with any password replaced by `***`; unparseable text is replaced whole.
pub(crate) fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have a password, which this one has.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(unparseable URL)".to_string(),
    }
}
