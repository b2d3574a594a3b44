//! What `POST` and `PATCH /webhooks` take, and their checks: an `http(s)` URL that resolves to
//! an allowed address, known event types, a batch size of 1-100.

use std::time::Duration;

use serde::Deserialize;
use shared::address::DomainName;
use shared::config::WebhookSettings;
use shared::events::EventType;
use shared::webhook::{UrlError, WebhookUrl};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::routes::common::{Domain, Text, text};

/// How long registration waits for the URL's host to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
/// Most event names one endpoint may list.
const MAX_EVENTS: usize = 32;

text!(
    HookUrl,
    "An absolute `http://` or `https://` URL of at most 2048 characters, without a user name or password or blanks.",
    Text {
        max: Some(2048),
        pattern: Some(
            r"^[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x20\x7F/?#@\\]+([/?#][^\x00-\x20\x7F]*)?$"
        ),
        ..Text::default()
    }
);

/// An event type of the registry (docs/EVENTS.md), or `*` for all of them.
pub struct EventName;

impl utoipa::PartialSchema for EventName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        let names = std::iter::once("*").chain(EventType::ALL.iter().map(|t| t.as_str()));
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .enum_values(Some(names))
            .description(Some(
                "An event type of the registry, or `*` for all of them.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for EventName {}

/// `POST /webhooks`. `null` is the same as an absent field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// An absolute `http://` or `https://` URL (at most 2048 characters, no user name or
    /// password) that must not resolve to a loopback, private, link-local or metadata address
    /// unless the server allows it (`MAILAPI_WEBHOOK_ALLOW_PRIVATE`).
    #[schema(value_type = HookUrl, example = "https://hooks.example.com/mail")]
    url: String,
    /// 1-32 registry names (`message.accepted`, `recipient.delivered`...), or `*` for all.
    #[schema(value_type = Vec<EventName>, min_items = 1, max_items = 32)]
    events: Vec<String>,
    /// Only the mail sent from this domain (needs an admin token or `manage_domains` on it).
    /// Absent: the token's own mail, or all mail for an admin token.
    #[serde(default)]
    #[schema(value_type = Option<Domain>)]
    domain: Option<String>,
    /// Default true.
    #[serde(default)]
    enabled: Option<bool>,
    /// Skip intermediate deferrals (`recipient.deferred`). Default false.
    #[serde(default)]
    final_only: Option<bool>,
    /// Events per request, 1-100 (default 1). Above 1 the body is a JSON array.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    batch_size: Option<i64>,
}

/// `PATCH /webhooks/{id}`: only the fields given change. `null` is the same as absent.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[serde(default)]
    #[schema(value_type = Option<HookUrl>)]
    url: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<EventName>>, min_items = 1, max_items = 32)]
    events: Option<Vec<String>>,
    /// `true` also clears `disabled_reason` (after a 410) and closes the breaker.
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    final_only: Option<bool>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    batch_size: Option<i64>,
}

/// Checked input, for both.
pub struct Validated {
    pub url: WebhookUrl,
    pub events: Vec<String>,
    pub domain: Option<DomainName>,
    pub enabled: Option<bool>,
    pub final_only: Option<bool>,
    pub batch_size: Option<i32>,
}

/// Checked `PATCH` input.
pub struct ValidatedUpdate {
    pub url: Option<WebhookUrl>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub final_only: Option<bool>,
    pub batch_size: Option<i32>,
}

impl CreateWebhook {
    pub async fn validate(self, settings: &WebhookSettings) -> ApiResult<Validated> {
        let domain = match self.domain {
            None => None,
            Some(d) => Some(
                DomainName::parse(&d).map_err(|e| ApiError::validation("domain", e.to_string()))?,
            ),
        };
        Ok(Validated {
            url: url(&self.url, settings).await?,
            events: events(self.events)?,
            domain,
            enabled: self.enabled,
            final_only: self.final_only,
            batch_size: self.batch_size.map(batch_size).transpose()?,
        })
    }
}

impl UpdateWebhook {
    pub async fn validate(self, settings: &WebhookSettings) -> ApiResult<ValidatedUpdate> {
        let url = match self.url {
            Some(raw) => Some(url(&raw, settings).await?),
            None => None,
        };
        Ok(ValidatedUpdate {
            url,
            events: self.events.map(events).transpose()?,
            enabled: self.enabled,
            final_only: self.final_only,
            batch_size: self.batch_size.map(batch_size).transpose()?,
        })
    }
}

/// A URL whose host resolves now, to allowed addresses only. The worker checks again before
/// each connection: a DNS answer may change after registration.
async fn url(raw: &str, settings: &WebhookSettings) -> ApiResult<WebhookUrl> {
    let invalid = |e: UrlError| ApiError::validation("url", e.to_string());
    let url = WebhookUrl::parse(raw).map_err(invalid)?;
    let (host, _) = url.host_port();
    match tokio::time::timeout(RESOLVE_TIMEOUT, url.resolve(settings.allow_private)).await {
        Ok(Ok(_)) => Ok(url),
        Ok(Err(e)) => Err(invalid(e)),
        Err(_) => Err(invalid(UrlError::Unresolvable(host))),
    }
}

/// Registry names or `*`, each once, in the order given.
fn events(names: Vec<String>) -> ApiResult<Vec<String>> {
    if names.is_empty() || names.len() > MAX_EVENTS {
        return Err(ApiError::validation(
            "events",
            format!("must list 1 to {MAX_EVENTS} event types"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if name != "*" && EventType::parse(&name).is_none() {
            let shown: String = name.chars().take(64).collect();
            return Err(ApiError::validation(
                "events",
                format!(
                    "`{}` is not an event type (see docs/WEBHOOKS.md)",
                    shown.escape_debug()
                ),
            ));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

fn batch_size(n: i64) -> ApiResult<i32> {
    if (1..=100).contains(&n) {
        Ok(n as i32)
    } else {
        Err(ApiError::validation(
            "batch_size",
            "must be between 1 and 100",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_the_registry_or_a_star() {
        assert_eq!(
            events(vec!["*".into(), "recipient.bounced".into(), "*".into()]).unwrap(),
            vec!["*", "recipient.bounced"]
        );
        for bad in [vec![], vec!["message.sent".to_owned()], vec!["".to_owned()]] {
            assert!(events(bad).is_err());
        }
        assert!(events(vec!["*".to_owned(); 33]).is_err());
    }

    #[test]
    fn batch_sizes_are_1_to_100() {
        assert_eq!(batch_size(1).unwrap(), 1);
        assert_eq!(batch_size(100).unwrap(), 100);
        assert!(batch_size(0).is_err());
        assert!(batch_size(101).is_err());
        assert!(batch_size(-5).is_err());
    }
}
