//! Signing in and out, sessions and CSRF. A session is a random cookie (`HttpOnly`,
//! `SameSite=Strict`, `Secure` behind https) whose SHA-256 alone is stored, with a CSRF token
//! every form of the session carries; sessions end at sign-out, after [`SESSION_HOURS`], and
//! when the person is disabled or their password changes. The sign-in form has its own
//! CSRF token, in a cookie that lives only for that form.

use std::time::Instant;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};

use super::{password, Console, ConsoleState, PageError};
use crate::api::auth::{random_secret, token_hash};
use crate::principal::{Principal, Role};

const SESSION_COOKIE: &str = "statflow_session";
const SIGN_IN_COOKIE: &str = "statflow_sign_in";
/// A session lasts a working day and a bit; then its person signs in again.
pub const SESSION_HOURS: i64 = 12;
/// Longer names or passwords are refused before anything is looked up or hashed.
const MAX_NAME: usize = 128;

/// A signed-in person, as every console page sees them.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub principal: Principal,
    pub csrf: String,
    session_hash: String,
    /// The daemon runs a virtual clock (its page is offered to administrators).
    virtual_clock: bool,
}

/// What the page header shows of the person signed in.
#[derive(Serialize)]
pub struct ViewerHeader {
    name: String,
    role: &'static str,
    organizations: Vec<String>,
    csrf: String,
    administrator: bool,
    virtual_clock: bool,
}

impl Viewer {
    pub fn header(&self) -> ViewerHeader {
        ViewerHeader {
            name: self.principal.name.clone(),
            role: role_title(self.principal.role),
            organizations: self.principal.organizations.clone(),
            csrf: self.csrf.clone(),
            administrator: self.principal.is_admin(),
            virtual_clock: self.virtual_clock,
        }
    }

    /// Administration pages are for administrators; anyone else is told so (the pages are
    /// no secret, unlike an instance).
    pub fn require_administrator(&self) -> Result<(), PageError> {
        if self.principal.is_admin() {
            Ok(())
        } else {
            Err(PageError::Problem(crate::api::problem::Problem::forbidden("此页面仅限管理员使用。")))
        }
    }

    /// A form's CSRF token must be this session's (compared in constant time).
    pub fn check_csrf(&self, token: &str) -> Result<(), PageError> {
        if constant_time_eq(token.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(PageError::Csrf)
        }
    }
}

pub fn role_title(role: Role) -> &'static str {
    match role {
        Role::Staff => "经办人员",
        Role::Administrator => "管理员",
        Role::Scheduler => "调度账号",
        Role::Regulator => "监管人员",
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

fn set_cookie(console: &Console, name: &str, value: &str, path: &str, max_age_seconds: i64) -> HeaderValue {
    let secure = if console.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age_seconds}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("cookie values are hex")
}

impl FromRequestParts<ConsoleState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, console: &ConsoleState) -> Result<Self, Self::Rejection> {
        let next = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
        let sign_in = || PageError::SignIn {
            next: if parts.method == axum::http::Method::GET { next.clone() } else { "/inbox".into() },
        };
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(sign_in)?;
        let session_hash = token_hash(token);
        let session = console.app.store.session(&session_hash, now_millis()).await?.ok_or_else(sign_in)?;
        let user = session.user;
        Ok(Viewer {
            principal: Principal {
                name: user.name,
                role: user.role,
                organizations: user.organizations,
                request: crate::api::guard::current_request_id(),
                unconfirmed_token: None,
            },
            csrf: session.csrf,
            session_hash,
            virtual_clock: console.app.engine.has_virtual_clock(),
        })
    }
}

/// Where to go after signing in: a path of this console, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') && path.len() < 1024 => {
            path.to_owned()
        }
        _ => "/inbox".into(),
    }
}

/// Percent-encodes a path for a query parameter.
pub fn encode_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
}

#[derive(Serialize)]
struct SignInPage {
    csrf: String,
    next: String,
    name: String,
    error: Option<String>,
}

fn sign_in_page(console: &Console, status: StatusCode, mut page: SignInPage) -> Response {
    // A fresh token for each form shown; the cookie lives only as long as the form.
    let csrf = match random_secret() {
        Ok(token) => token,
        Err(error) => {
            return PageError::Problem(crate::api::problem::Problem::internal(error.to_string()))
                .into_page(console, None)
        }
    };
    page.csrf = csrf.clone();
    let mut response = console.render(status, "login.html", minijinja::context! { page });
    response.headers_mut().append(header::SET_COOKIE, set_cookie(console, SIGN_IN_COOKIE, &csrf, "/login", 3600));
    response
}

pub async fn login_form(State(console): State<ConsoleState>, Query(query): Query<SignInQuery>) -> Response {
    let page =
        SignInPage { csrf: String::new(), next: safe_next(query.next.as_deref()), name: String::new(), error: None };
    sign_in_page(&console, StatusCode::OK, page)
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

pub async fn login(State(console): State<ConsoleState>, headers: HeaderMap, Form(form): Form<SignInForm>) -> Response {
    let next = safe_next(form.next.as_deref());
    let again = |status: StatusCode, error: &str| {
        let page = SignInPage {
            csrf: String::new(),
            next: next.clone(),
            name: form.name.clone(),
            error: Some(error.to_owned()),
        };
        sign_in_page(&console, status, page)
    };
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        return again(StatusCode::FORBIDDEN, "登录表单已失效，请重新输入。");
    }
    let name = form.name.trim();
    if name.is_empty() || form.password.is_empty() {
        return again(StatusCode::UNPROCESSABLE_ENTITY, "请输入用户名和密码。");
    }
    if name.len() > MAX_NAME || form.password.len() > password::MAX_LENGTH {
        return again(StatusCode::UNPROCESSABLE_ENTITY, "用户名或密码过长。");
    }
    if let Some(wait) = console.throttle.wait(name, Instant::now()) {
        let message = format!("登录失败次数过多，请在 {} 秒后再试。", wait.as_secs().max(1));
        return again(StatusCode::TOO_MANY_REQUESTS, &message);
    }
    let user = match console.app.store.user(name).await {
        Ok(user) => user,
        Err(error) => return PageError::from(error).into_page(&console, None),
    };
    // An unknown name is checked against a decoy hash, so it takes as long as a wrong password.
    let stored = user.as_ref().map_or(password::decoy(), |u| u.password_hash.as_str());
    let matches = password::verify(&form.password, stored);
    let Some(user) = user.filter(|u| matches && !u.disabled) else {
        console.throttle.failed(name, Instant::now());
        tracing::info!(name, "a sign-in was refused");
        return again(StatusCode::UNAUTHORIZED, "用户名或密码不正确。");
    };
    console.throttle.succeeded(name);
    let (token, csrf) = match (random_secret(), random_secret()) {
        (Ok(token), Ok(csrf)) => (token, csrf),
        (Err(error), _) | (_, Err(error)) => {
            return PageError::Problem(crate::api::problem::Problem::internal(error.to_string()))
                .into_page(&console, None)
        }
    };
    let now = now_millis();
    let expires = now + SESSION_HOURS * 3_600_000;
    if let Err(error) = console.app.store.create_session(user.id, &token_hash(&token), &csrf, now, expires).await {
        return PageError::from(error).into_page(&console, None);
    }
    tracing::info!(name = %user.name, "signed in");
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, set_cookie(&console, SESSION_COOKIE, &token, "/", SESSION_HOURS * 3600));
    headers.append(header::SET_COOKIE, set_cookie(&console, SIGN_IN_COOKIE, "", "/login", 0));
    response
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn logout(State(console): State<ConsoleState>, viewer: Viewer, Form(form): Form<CsrfForm>) -> Response {
    if let Err(error) = viewer.check_csrf(&form.csrf) {
        return error.into_page(&console, Some(&viewer));
    }
    if let Err(error) = console.app.store.end_session(&viewer.session_hash).await {
        return PageError::from(error).into_page(&console, Some(&viewer));
    }
    tracing::info!(name = %viewer.principal.name, "signed out");
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(&console, SESSION_COOKIE, "", "/", 0));
    response
}

/// A rejected extraction (not signed in) becomes the sign-in redirect.
impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn { next } => {
                Redirect::to(&format!("/login?next={}", encode_component(&next))).into_response()
            }
            // Only extraction fails without the console at hand; the session lookup's failures
            // are answered plainly.
            PageError::Csrf => (StatusCode::FORBIDDEN, "表单已失效").into_response(),
            PageError::Problem(problem) => {
                tracing::error!(detail = %problem.detail, "a console request failed");
                (problem.status, "系统暂时无法完成此操作").into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_console_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/instances/7")), "/instances/7");
        assert_eq!(safe_next(Some("//evil.example/")), "/inbox");
        assert_eq!(safe_next(Some("https://evil.example/")), "/inbox");
        assert_eq!(safe_next(Some("/\\evil.example")), "/inbox");
        assert_eq!(safe_next(None), "/inbox");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; statflow_session=abc; b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, SIGN_IN_COOKIE), None);
    }
}
