//! The `OpenApi` root: every annotated handler, the shared schemas, the `X-MAILAPI-TOKEN`
//! scheme, and the error responses every route shares. Route-specific errors (403, 404, 409...)
//! are on each handler's annotation; the ones the middleware can produce for any route of a kind
//! are added here once, so a new handler cannot forget them. Request bodies whose fields depend
//! on each other get those rules (kept beside the code that enforces them) added here too.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::AllOfBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{OpenApi as Doc, RefOr, Response, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi};

use crate::routes::common::ErrorBody;
use crate::routes::{
    docs, domains, events, feed, health, mail, mailbox, metrics, permissions, queue, signup, stats,
    suppressions, tokens, users, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Mail API", description = "Self-hosted transactional mail: send, track, read \
        mailboxes, manage domains, users, tokens and permissions."),
    paths(
        health::health, health::ready, metrics::render,
        stats::dashboard::index, stats::dashboard::app_js, stats::dashboard::style_css,
        docs::redoc, docs::redoc_js, docs::swagger::openapi_json, docs::swagger::docs,
        docs::swagger::docs_index, docs::swagger::docs_asset,
        tokens::me, tokens::list, tokens::create, tokens::revoke,
        mail::send, mail::sent, mail::status, events::events, feed::feed,
        mailbox::folders, mailbox::list_messages, mailbox::get_message,
        mailbox::write::delete_message, mailbox::download_attachment, mailbox::write::set_flags,
        mailbox::write::move_message, mailbox::search,
        domains::pending, domains::approve, domains::dns, domains::verify_dns,
        domains::settings::update,
        users::list, users::create, users::update, users::remove,
        permissions::bulk_grant, permissions::list, permissions::revoke,
        signup::signup,
        suppressions::list, suppressions::add, suppressions::remove,
        stats::delivery::delivery, stats::domain::domain,
        queue::queue,
        webhooks::create, webhooks::list, webhooks::show, webhooks::update, webhooks::remove,
        webhooks::rotate, webhooks::outbox::send_test, webhooks::outbox::attempts,
        webhooks::outbox::dead_letters, webhooks::outbox::replay,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Shared),
    security(("api_key" = [])),
)]
pub struct ApiDoc;

struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut Doc) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-MAILAPI-TOKEN",
                "An API token (admin, domain or user), created with `mailapi-api token create` \
                 or `POST /api/v1/tokens`.",
            ))),
        );
        let rules = [
            ("CreateToken", tokens::CreateToken::rules()),
            ("UpdateUser", users::UpdateUser::rules()),
            ("BodyRequest", crate::send::request::BodyRequest::rules()),
        ];
        for (name, rules) in rules {
            add_rules(components, name, rules);
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                add_shared_errors(path, op);
            }
        }
    }
}

/// Replaces schema `name` with `allOf: [schema, rules...]`, so a request must meet both.
fn add_rules(components: &mut utoipa::openapi::Components, name: &str, rules: Vec<RefOr<Schema>>) {
    let Some(schema) = components.schemas.remove(name) else {
        panic!("no schema {name} to add rules to");
    };
    let mut all = AllOfBuilder::new().item(schema);
    for rule in rules {
        all = all.item(rule);
    }
    components
        .schemas
        .insert(name.to_owned(), RefOr::T(Schema::AllOf(all.build())));
}

/// What the layers around every handler can answer, whatever the handler does.
fn add_shared_errors(path: &str, op: &mut Operation) {
    let api = path.starts_with("/api/v1/");
    let authenticated = api && path != "/api/v1/auth/signup";
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error(description));
    };
    if authenticated {
        add(
            "401",
            "NO_API_TOKEN, INVALID_TOKEN or TOKEN_EXPIRED: the X-MAILAPI-TOKEN header",
        );
        add(
            "429",
            "RATE_LIMITED: this token's request rate (see Retry-After)",
        );
    }
    if api {
        add(
            "500",
            "INTERNAL_ERROR (the cause is logged, never returned)",
        );
        add(
            "503",
            "SERVICE_UNAVAILABLE: the database is unreachable (Retry-After: 5); or OVERLOADED: \
             this process has too many requests under way, or for a send the backlog of due \
             messages is over its threshold (Retry-After from the measured drain rate)",
        );
        if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
            add("400", "VALIDATION_ERROR: a path or query parameter");
        }
    }
    if op.request_body.is_some() {
        add(
            "400",
            "INVALID_JSON, INVALID_BODY or VALIDATION_ERROR: the body",
        );
        add(
            "408",
            "REQUEST_TIMEOUT: the body did not arrive within MAILAPI_BODY_TIMEOUT_SECS",
        );
        add(
            "413",
            "PAYLOAD_TOO_LARGE: the body exceeds the configured limit",
        );
        add(
            "415",
            "UNSUPPORTED_MEDIA_TYPE: the body is not application/json",
        );
    }
}

fn error(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}
