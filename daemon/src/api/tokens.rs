//! `GET /v1/admin/tokens` (paged) and `DELETE /v1/admin/tokens/{name}`: who holds an API
//! token, until when, and revoking one (administrators). Tokens themselves are never shown again: only
//! their hashes are stored, and they are made with `statflow token create`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use utoipa::ToSchema;

use super::page::Page;
use super::problem::{Params, PathParams, Problem};
use super::views::Paged;
use super::AppState;
use crate::principal::Principal;
use crate::store::{from_millis, to_millis};

/// A token's holder.
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    pub name: String,
    #[schema(value_type = String, example = "staff")]
    pub role: String,
    pub organizations: Vec<String>,
    pub created_at: DateTime<FixedOffset>,
    /// When the token stops working; never when absent.
    pub expires_at: Option<DateTime<FixedOffset>>,
    /// Whether it has stopped, by the daemon's clock.
    pub expired: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    page: Option<String>,
    per_page: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Params(query): Params<ListQuery>,
) -> Result<Json<Paged<TokenView>>, Problem> {
    if !principal.is_admin() {
        return Err(Problem::forbidden("only administrators see who holds tokens"));
    }
    let page = Page::parse(query.page.as_deref(), query.per_page.as_deref())?;
    let now = to_millis(state.engine.now());
    let (holders, total) = state.store.token_holders_page(page.slice()).await?;
    let items = holders
        .into_iter()
        .map(|holder| TokenView {
            role: holder.role.as_str().to_owned(),
            created_at: from_millis(holder.created_at),
            expires_at: holder.expires_at.map(from_millis),
            expired: holder.expires_at.is_some_and(|at| at <= now),
            name: holder.name,
            organizations: holder.organizations,
        })
        .collect();
    Ok(Json(page.body(items, total)))
}

pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(name): PathParams<String>,
) -> Result<StatusCode, Problem> {
    if !principal.is_admin() {
        return Err(Problem::forbidden("only administrators revoke tokens"));
    }
    if !state.store.revoke_token(&name, &principal.name).await? {
        return Err(Problem::not_found(format!("no token of `{name}`")));
    }
    Ok(StatusCode::NO_CONTENT)
}
