//! `GET /v1/admin/tokens` and `DELETE /v1/admin/tokens/{name}`: who holds an API token, until
//! when, and revoking one (administrators). Tokens themselves are never shown again: only
//! their hashes are stored, and they are made with `statflow token create`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{PathParams, Problem};
use super::AppState;
use crate::principal::Principal;
use crate::store::{from_millis, to_millis};

/// The most holders listed.
const LISTED: u64 = 10_000;

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

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenView>,
}

pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<TokenList>, Problem> {
    if !principal.is_admin() {
        return Err(Problem::forbidden("only administrators see who holds tokens"));
    }
    let now = to_millis(state.engine.now());
    let items = state
        .store
        .token_holders(Some(LISTED))
        .await?
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
    Ok(Json(TokenList { items }))
}

pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(name): PathParams<String>,
) -> Result<StatusCode, Problem> {
    if !principal.is_admin() {
        return Err(Problem::forbidden("only administrators revoke tokens"));
    }
    if !state.store.revoke_token(&name).await? {
        return Err(Problem::not_found(format!("no token of `{name}`")));
    }
    state.store.audit(&principal.name, "token.revoke", &name, serde_json::json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}
