//! Bearer tokens: a principal (name, role, organizations) per token, of which only the
//! SHA-256 hash is stored. Staff act within their organizations; administrators anywhere;
//! regulators read everything; schedulers start instances.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use sha2::{Digest, Sha256};
use statflow_workflows::definition::Definition;
use statflow_workflows::engine::{Actor, InstanceState};

use super::problem::Problem;
use crate::engine::embedded::Runtime;
use crate::store::entities::principals;
use crate::store::Store;

pub const ROLES: [&str; 4] = ["staff", "administrator", "scheduler", "regulator"];

#[derive(Clone, Debug)]
pub struct Principal {
    pub name: String,
    pub role: String,
    pub organizations: Vec<String>,
}

pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 random bytes from the operating system, hex-encoded, behind a recognisable prefix.
fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!("sf_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// Creates a principal and returns its token, which is not stored and cannot be shown again.
pub async fn create_token(store: &Store, name: &str, role: &str, organizations: &[String]) -> Result<String, String> {
    if !ROLES.contains(&role) {
        return Err(format!("--role: `{role}` must be one of {}", ROLES.join(", ")));
    }
    if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err("--name: a principal's name is 1 to 128 characters, not blank, without control characters".into());
    }
    if role == "staff" && organizations.is_empty() {
        return Err("--org: staff need at least one organization".into());
    }
    for organization in organizations {
        crate::organization::check(organization).map_err(|e| format!("--org: {e}"))?;
    }
    let token = new_token().map_err(|e| format!("no randomness available: {e}"))?;
    principals::ActiveModel {
        name: Set(name.to_owned()),
        role: Set(role.to_owned()),
        organizations: Set(serde_json::to_string(organizations).expect("serializes")),
        token_hash: Set(token_hash(&token)),
        created_at: Set(chrono::Utc::now().timestamp_millis()),
        ..Default::default()
    }
    .insert(&store.db)
    .await
    .map_err(|e| {
        if e.to_string().to_lowercase().contains("unique") {
            format!("--name: a principal named `{name}` already exists")
        } else {
            e.to_string()
        }
    })?;
    let detail = serde_json::json!({"role": role, "organizations": organizations});
    store.audit("cli", "token.create", name, detail).await.map_err(|e| e.to_string())?;
    Ok(token)
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == "administrator"
    }

    /// Whether this principal may see an instance involving `organizations` (`,a,b,`).
    pub fn may_see(&self, organizations: &str) -> bool {
        match self.role.as_str() {
            "administrator" | "regulator" | "scheduler" => true,
            _ => self.organizations.iter().any(|o| organizations.contains(&format!(",{o},"))),
        }
    }

    /// The actor this principal is in an instance: every role the instance gives to one of
    /// the principal's organizations.
    pub fn actor(&self, definition: &Definition, state: &InstanceState) -> Actor {
        let roles = definition
            .procedure
            .roles
            .iter()
            .filter(|(_, role)| {
                role.organization
                    .as_ref()
                    .and_then(|field| state.data.get(field.get_ref().as_str()))
                    .and_then(|v| v.as_str())
                    .is_some_and(|org| self.organizations.iter().any(|o| o == org))
            })
            .map(|(name, _)| name.get_ref().clone())
            .collect();
        Actor {
            id: self.name.clone(),
            roles,
            organizations: self.organizations.clone(),
            administrator: self.is_admin(),
        }
    }
}

impl FromRequestParts<Arc<Runtime>> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, runtime: &Arc<Runtime>) -> Result<Self, Self::Rejection> {
        let unauthorized = |detail: &str| Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized("send `Authorization: Bearer <token>`"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let row = principals::Entity::find()
            .filter(principals::Column::TokenHash.eq(token_hash(token.trim())))
            .one(&runtime.store.db)
            .await
            .map_err(|e| Problem::from(crate::store::StoreError::Db(e)))?
            .ok_or_else(|| unauthorized("the token is not valid"))?;
        Ok(Principal {
            name: row.name,
            role: row.role,
            organizations: serde_json::from_str(&row.organizations).unwrap_or_default(),
        })
    }
}
