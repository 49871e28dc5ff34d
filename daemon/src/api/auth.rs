//! Bearer tokens: a principal (name, role, organizations) per token, of which only the
//! SHA-256 hash is stored.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use sha2::{Digest, Sha256};

use super::problem::Problem;
use super::AppState;
use crate::principal::{Principal, Role};
use crate::store::records::PrincipalRecord;
use crate::store::{Store, StoreError};

pub fn token_hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// 32 random bytes from the operating system, hex-encoded: tokens, session cookies, CSRF
/// tokens.
pub fn random_secret() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A new API token: a random secret behind a recognisable prefix.
fn new_token() -> std::io::Result<String> {
    Ok(format!("sf_{}", random_secret()?))
}

/// Checks who a token or a person is to be: a name (1 to 128 characters), a role, and for
/// staff at least one organization. Errors name the command-line option at fault.
pub fn check_identity(name: &str, role: &str, organizations: &[String]) -> Result<Role, String> {
    let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    let role = Role::parse(role).ok_or_else(|| format!("--role: `{role}` must be one of {}", names.join(", ")))?;
    if name.trim().is_empty() || name.trim() != name || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(
            "--name: a principal's name is 1 to 128 characters, without leading or trailing spaces or control characters".into()
        );
    }
    if role == Role::Staff && organizations.is_empty() {
        return Err("--org: staff need at least one organization".into());
    }
    for organization in organizations {
        crate::organization::check(organization).map_err(|e| format!("--org: {e}"))?;
    }
    Ok(role)
}

/// Creates a principal and returns its token, which is not stored and cannot be shown again;
/// with `expires`, the token works through the end of that day (24:00 Asia/Shanghai) and not
/// after.
pub async fn create_token(
    store: &Store,
    name: &str,
    role: &str,
    organizations: &[String],
    expires: Option<chrono::NaiveDate>,
) -> Result<String, String> {
    let role = check_identity(name, role, organizations)?;
    let now = chrono::Utc::now().timestamp_millis();
    let expires_at = expires.map(|day| crate::store::to_millis(end_of_day(day)));
    // Not refused: a daemon on a virtual clock may stand before it.
    if expires_at.is_some_and(|at| at <= now) {
        eprintln!("note: {} has passed by this machine's clock; the token works only on a daemon whose clock stands before it", expires.expect("given"));
    }
    let token = new_token().map_err(|e| format!("no randomness available: {e}"))?;
    store.create_principal(name, role, organizations, &token_hash(&token), now, expires_at).await.map_err(
        |e| match e {
            StoreError::Exists(_) => format!("--name: a principal named `{name}` already exists"),
            other => other.to_string(),
        },
    )?;
    let detail = serde_json::json!({"role": role, "organizations": organizations, "expires": expires});
    store.audit("cli", "token.create", name, detail).await.map_err(|e| e.to_string())?;
    Ok(token)
}

/// 24:00 of `day` in Asia/Shanghai: the instant a token valid through that day stops.
fn end_of_day(day: chrono::NaiveDate) -> chrono::DateTime<chrono::FixedOffset> {
    statflow_workflows::calendar::start_of_day(day.succ_opt().unwrap_or(day))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let hash = token_hash(bearer_token(parts)?);
        let record =
            state.store.principal_by_token(&hash).await?.ok_or_else(|| unauthorized("the token is not valid"))?;
        principal_of(record, state, None)
    }
}

/// The caller of an endpoint whose every change goes through the engine (a start, an
/// action): its token may come from the tokens the daemon lately found standing, and then
/// the engine confirms it in the transaction that stores the change
/// ([`Principal::unconfirmed_token`]). Every other endpoint takes a [`Principal`], read for
/// the request. Whatever such an endpoint refuses is answered through [`refusal_for`], so a
/// token revoked meanwhile hears only that it is not valid.
pub struct EngineCaller(pub Principal);

impl FromRequestParts<AppState> for EngineCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let hash = token_hash(bearer_token(parts)?);
        if let Some(record) = state.known_tokens.get(&hash) {
            return principal_of(record, state, Some(hash)).map(EngineCaller);
        }
        let record =
            state.store.principal_by_token(&hash).await?.ok_or_else(|| unauthorized("the token is not valid"))?;
        state.known_tokens.remember(&hash, &record);
        principal_of(record, state, None).map(EngineCaller)
    }
}

/// What an [`EngineCaller`]'s endpoint answers when it refuses: a token the engine found gone
/// is forgotten; any other refusal to a caller whose token was remembered rather than read
/// is given only once the token is read and still stands (else: not valid).
pub async fn refusal_for(state: &AppState, caller: &Principal, problem: Problem) -> Problem {
    let Some(hash) = &caller.unconfirmed_token else { return problem };
    if problem.status != StatusCode::UNAUTHORIZED {
        match state.store.principal_by_token(hash).await {
            Ok(Some(_)) => return problem,
            Ok(None) => {}
            Err(error) => return error.into(),
        }
    }
    state.known_tokens.forget(hash);
    unauthorized("the token is not valid")
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail)
}

/// The token of `Authorization: Bearer <token>`.
fn bearer_token(parts: &Parts) -> Result<&str, Problem> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("send `Authorization: Bearer <token>`"))?;
    let token = header
        .strip_prefix("Bearer ")
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    Ok(token.trim())
}

/// The principal a token's record names, unless the token has expired.
fn principal_of(
    record: PrincipalRecord,
    state: &AppState,
    unconfirmed_token: Option<String>,
) -> Result<Principal, Problem> {
    // Expiry follows the daemon's clock (a virtual clock included).
    if let Some(expires_at) = record.expires_at.filter(|at| *at <= crate::store::to_millis(state.engine.now())) {
        let last_day = crate::store::from_millis(expires_at) - chrono::Duration::days(1);
        return Err(unauthorized(&format!("the token expired at the end of {}", last_day.format("%Y-%m-%d"))));
    }
    Ok(Principal {
        name: record.name,
        role: record.role,
        organizations: record.organizations,
        request: super::guard::current_request_id(),
        unconfirmed_token,
    })
}
