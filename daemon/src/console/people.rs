//! 用户与令牌: administrators list the people who sign in (creating them, disabling and
//! enabling them, setting a password) and the API tokens (revoking them). Every change is
//! audited under the administrator's name; a disabled person's sessions end at once.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::{Deserialize, Serialize};

use super::session::{role_title, CsrfForm};
use super::{format, password, ConsoleState, PageError, Viewer};
use crate::api::auth::check_identity;
use crate::api::problem::Problem;
use crate::store::people::NewUser;
use crate::store::{from_millis, StoreError};

#[derive(Serialize)]
struct PersonRow {
    name: String,
    role: &'static str,
    organizations: String,
    disabled: bool,
    created: String,
}

#[derive(Serialize)]
struct TokenRow {
    name: String,
    role: &'static str,
    organizations: String,
    created: String,
}

#[derive(Deserialize)]
pub struct PeopleQuery {
    done: Option<String>,
}

pub async fn page(State(console): State<ConsoleState>, viewer: Viewer, Query(query): Query<PeopleQuery>) -> Response {
    people_page(&console, &viewer, query.done, None, StatusCode::OK)
        .await
        .unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

/// How many people, and how many token holders, the page lists.
const LISTED: u64 = 1_000;

async fn people_page(
    console: &ConsoleState,
    viewer: &Viewer,
    done: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    viewer.require_administrator()?;
    // The page lists the first so many of each, by name; the command line lists them all.
    let mut people = console.app.store.users(Some(LISTED + 1)).await?;
    let mut tokens = console.app.store.token_holders(Some(LISTED + 1)).await?;
    let more = people.len() as u64 > LISTED || tokens.len() as u64 > LISTED;
    people.truncate(LISTED as usize);
    tokens.truncate(LISTED as usize);
    let people: Vec<PersonRow> = people
        .into_iter()
        .map(|u| PersonRow {
            role: role_title(u.role),
            organizations: u.organizations.join("、"),
            disabled: u.disabled,
            created: format::date_time(from_millis(u.created_at)),
            name: u.name,
        })
        .collect();
    let tokens: Vec<TokenRow> = tokens
        .into_iter()
        .map(|t| TokenRow {
            role: role_title(t.role),
            organizations: t.organizations.join("、"),
            created: format::date_time(from_millis(t.created_at)),
            name: t.name,
        })
        .collect();
    Ok(console.render(
        status,
        "people.html",
        minijinja::context! { viewer => viewer.header(), active => "people", people, tokens, more, listed => LISTED, done, error },
    ))
}

#[derive(Deserialize)]
pub struct NewPersonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    /// Organization ids separated by commas or spaces.
    #[serde(default)]
    organizations: String,
    #[serde(default)]
    password: String,
}

pub async fn create(State(console): State<ConsoleState>, viewer: Viewer, Form(form): Form<NewPersonForm>) -> Response {
    let result = async {
        viewer.require_administrator()?;
        viewer.check_csrf(&form.csrf)?;
        let organizations: Vec<String> = form
            .organizations
            .split([',', '，', ' ', '、'])
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect();
        let refused =
            |message: String| people_page(&console, &viewer, None, Some(message), StatusCode::UNPROCESSABLE_ENTITY);
        let role = match check_identity(form.name.trim(), &form.role, &organizations) {
            Ok(role) => role,
            Err(message) => return refused(message).await,
        };
        if let Err(message) = password::check(&form.password) {
            return refused(format!("--password: {message}")).await;
        }
        let hash = password::hash(&form.password).map_err(Problem::internal)?;
        let name = form.name.trim();
        let user = NewUser { name, role, organizations: &organizations, password_hash: &hash };
        match console.app.store.create_user(user, chrono::Utc::now().timestamp_millis()).await {
            Ok(_) => {}
            Err(StoreError::Exists(_)) => return refused(format!("名称「{name}」已被用户或令牌使用。")).await,
            Err(error) => return Err(error.into()),
        }
        let detail = serde_json::json!({"role": role, "organizations": organizations});
        console.app.store.audit(&viewer.principal.name, "user.create", name, detail).await?;
        let done = format!("已创建用户 {name}。");
        Ok::<_, PageError>(super::redirect_saying("/admin/people", "done", &done))
    };
    result.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

/// Disables or enables a person (`change` is `disable` or `enable`); one cannot disable oneself.
pub async fn set_state(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Path((name, change)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let result = async {
        viewer.require_administrator()?;
        viewer.check_csrf(&form.csrf)?;
        let disable = match change.as_str() {
            "disable" => true,
            "enable" => false,
            _ => return Err(Problem::not_found("没有这项操作。").into()),
        };
        if disable && name == viewer.principal.name {
            return Err(Problem::new(StatusCode::CONFLICT, "Conflict", "不能停用自己的账号。").into());
        }
        let now = chrono::Utc::now().timestamp_millis();
        if !console.app.store.set_disabled(&name, disable, now).await? {
            return Err(Problem::not_found("没有这个用户。").into());
        }
        let action = if disable { "user.disable" } else { "user.enable" };
        console.app.store.audit(&viewer.principal.name, action, &name, serde_json::json!({})).await?;
        let done =
            if disable { format!("已停用 {name}，其会话已结束。") } else { format!("已启用 {name}。") };
        Ok::<_, PageError>(super::redirect_saying("/admin/people", "done", &done))
    };
    result.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

pub async fn revoke_token(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let result = async {
        viewer.require_administrator()?;
        viewer.check_csrf(&form.csrf)?;
        if !console.app.store.revoke_token(&name, &viewer.principal.name).await? {
            return Err(Problem::not_found("没有这个令牌。").into());
        }
        let done = format!("已吊销 {name} 的令牌。");
        Ok::<_, PageError>(super::redirect_saying("/admin/people", "done", &done))
    };
    result.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

#[derive(Serialize)]
struct AuditRow {
    at: String,
    principal: String,
    action: String,
    target: String,
    detail: String,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    principal: String,
    #[serde(default)]
    action: String,
    page: Option<String>,
}

/// 审计日志: administrative acts, newest first, by actor and kind of act.
pub async fn audit(State(console): State<ConsoleState>, viewer: Viewer, Query(query): Query<AuditQuery>) -> Response {
    let shown = async {
        viewer.require_administrator()?;
        let page = crate::api::page::Page::parse(query.page.as_deref(), Some("50"))?;
        let principal = Some(query.principal.trim()).filter(|p| !p.is_empty());
        let action = Some(query.action.trim()).filter(|a| !a.is_empty());
        let (entries, total) = console.app.store.audit_log(principal, action, None, page.slice()).await?;
        let rows: Vec<AuditRow> = entries
            .into_iter()
            .map(|e| AuditRow {
                at: format::date_time(from_millis(e.at)),
                principal: e.principal,
                action: e.action,
                target: e.target,
                detail: e.detail,
            })
            .collect();
        let pages = total.pages(page.size);
        Ok::<_, PageError>(console.render(
            StatusCode::OK,
            "audit.html",
            minijinja::context! {
                viewer => viewer.header(), active => "audit", rows, total, page => page.number, pages,
                principal => query.principal, action => query.action,
            },
        ))
    };
    shown.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// Sets a person's password (their sessions end), as `statflow user passwd` does.
pub async fn set_password(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Form(form): Form<PasswordForm>,
) -> Response {
    let result = async {
        viewer.require_administrator()?;
        viewer.check_csrf(&form.csrf)?;
        if let Err(message) = password::check(&form.password) {
            return people_page(
                &console,
                &viewer,
                None,
                Some(format!("--password: {message}")),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        let hash = password::hash(&form.password).map_err(Problem::internal)?;
        let name = form.name.trim();
        if !console.app.store.set_password(name, &hash, chrono::Utc::now().timestamp_millis()).await? {
            return Err(Problem::not_found("没有这个用户。").into());
        }
        console.app.store.audit(&viewer.principal.name, "user.passwd", name, serde_json::json!({})).await?;
        let done = format!("已重设 {name} 的密码，其会话已结束。");
        Ok::<_, PageError>(super::redirect_saying("/admin/people", "done", &done))
    };
    result.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}
