//! The console: server-rendered pages in Chinese for staff, administrators, schedulers and
//! regulators, served by `statflow serve` at `/` beside the API under `/v1`. Pages read the
//! same store and ask the same engine facade as the API, with the same checks of role and
//! organization; people sign in with a name and password ([`session`]). Templates and the
//! stylesheet are compiled into the binary, so the console needs no network and no build
//! step of its own.

mod admin;
mod deadline;
mod definitions;
mod diagram;
mod directory;
mod format;
mod forms;
mod inbox;
mod instance;
mod overdue;
pub mod password;
mod people;
mod schedules;
mod search;
mod session;
mod throttle;

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::Environment;
use serde::Serialize;

use crate::api::problem::Problem;
use crate::api::AppState;
pub use session::Viewer;

/// What the pages share: the API's state, the templates, and how cookies are set.
pub struct Console {
    pub app: AppState,
    templates: Environment<'static>,
    throttle: throttle::Throttle,
    /// Cookies carry `Secure` when the console is reached over https (`base_url`).
    secure_cookies: bool,
}

pub type ConsoleState = Arc<Console>;

/// Every template, by name; `.html` names are auto-escaped.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("fields.html", include_str!("templates/fields.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("inbox.html", include_str!("templates/inbox.html")),
    ("instance.html", include_str!("templates/instance.html")),
    ("overdue.html", include_str!("templates/overdue.html")),
    ("calendar.html", include_str!("templates/calendar.html")),
    ("deliveries.html", include_str!("templates/deliveries.html")),
    ("clock.html", include_str!("templates/clock.html")),
    ("search.html", include_str!("templates/search.html")),
    ("start.html", include_str!("templates/start.html")),
    ("people.html", include_str!("templates/people.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("schedules.html", include_str!("templates/schedules.html")),
    ("directory.html", include_str!("templates/directory.html")),
    ("definitions.html", include_str!("templates/definitions.html")),
    ("definition.html", include_str!("templates/definition.html")),
];

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

/// What every console response says about itself: only this site's own scripts, styles and
/// forms; never framed (clickjacking); no sniffing; no referrer leaving the site.
const SECURITY_HEADERS: [(header::HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        // Pages show personal, changing data: never cached.
        headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    }
    response
}

impl Console {
    pub fn new(app: AppState, secure_cookies: bool) -> ConsoleState {
        let mut templates = Environment::new();
        for (name, source) in TEMPLATES {
            templates.add_template(name, source).expect("the console's templates parse");
        }
        Arc::new(Console { app, templates, throttle: throttle::Throttle::default(), secure_cookies })
    }

    /// Renders `template` with `context`; a template that fails to render is a 500 that says
    /// so in the log, never a half page.
    fn render(&self, status: StatusCode, template: &str, context: impl Serialize) -> Response {
        match self.templates.get_template(template).and_then(|t| t.render(context)) {
            Ok(body) => (status, Html(body)).into_response(),
            Err(error) => {
                tracing::error!(%error, template, "a console page did not render");
                (StatusCode::INTERNAL_SERVER_ERROR, Html("<h1>页面生成失败</h1>".to_owned())).into_response()
            }
        }
    }
}

pub fn routes(console: ConsoleState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/inbox") }))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/inbox", get(inbox::page))
        .route("/tasks/{id}/claim", post(inbox::claim))
        .route("/tasks/{id}/release", post(inbox::release))
        .route("/instances/{id}", get(instance::page))
        .route("/instances/{id}/actions/{action}", post(instance::act))
        .route("/search", get(search::page))
        .route("/start", get(search::start_form).post(search::start))
        .route("/definitions", get(definitions::list).post(definitions::load))
        .route("/definitions/{procedure}/{jurisdiction}", get(definitions::show))
        .route("/schedules", get(schedules::page))
        .route("/schedules/{id}/run", post(schedules::run_now))
        .route("/schedules/{id}/{change}", post(schedules::set_enabled))
        .route("/overdue", get(overdue::page))
        .route("/overdue.csv", get(overdue::csv))
        .route("/admin/calendar", get(admin::calendar))
        .route("/admin/calendar/import", post(admin::import_calendar))
        .route("/admin/people", get(people::page).post(people::create))
        .route("/admin/people/password", post(people::set_password))
        .route("/admin/people/{name}/{change}", post(people::set_state))
        .route("/admin/tokens/{name}/revoke", post(people::revoke_token))
        .route("/admin/audit", get(people::audit))
        .route("/admin/directory", get(directory::page))
        .route("/admin/directory/organizations", post(directory::put_organization))
        .route("/admin/directory/contacts", post(directory::put_contact))
        .route("/admin/directory/contacts/{id}/delete", post(directory::delete_contact))
        .route("/admin/deliveries", get(admin::deliveries))
        .route("/admin/clock", get(admin::clock).post(admin::move_clock))
        .route("/admin/deliveries/{which}/retry", post(admin::retry))
        .route("/assets/console.css", get(stylesheet))
        .route("/assets/console.js", get(script))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(console)
}

async fn script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], SCRIPT)
}

async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], STYLESHEET)
}

/// After a form: back to `path`, with `message` for the page to show in its `param`.
fn redirect_saying(path: &str, param: &str, message: &str) -> Response {
    Redirect::to(&format!("{path}?{param}={}", session::encode_component(message))).into_response()
}

/// Why a page is not shown.
pub enum PageError {
    /// Not signed in: to the sign-in page, coming back here afterwards.
    SignIn { next: String },
    /// A form without the session's CSRF token (or with a stale one).
    Csrf,
    /// What the API would answer, as a page.
    Problem(Problem),
}

impl From<Problem> for PageError {
    fn from(problem: Problem) -> Self {
        PageError::Problem(problem)
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(error: crate::store::StoreError) -> Self {
        PageError::Problem(error.into())
    }
}

impl From<crate::engine::EngineError> for PageError {
    fn from(error: crate::engine::EngineError) -> Self {
        PageError::Problem(error.into())
    }
}

/// An error page: what happened, in Chinese, with the status the API would give.
#[derive(Serialize)]
struct ErrorPage {
    title: &'static str,
    detail: String,
}

impl PageError {
    fn into_page(self, console: &Console, viewer: Option<&Viewer>) -> Response {
        let (status, title, detail) = match self {
            PageError::SignIn { next } => {
                let target = format!("/login?next={}", session::encode_component(&next));
                return Redirect::to(&target).into_response();
            }
            PageError::Csrf => {
                (StatusCode::FORBIDDEN, "表单已失效", "表单缺少有效的安全令牌，请刷新页面后重新提交。".to_owned())
            }
            PageError::Problem(problem) => {
                let title = match problem.status {
                    StatusCode::NOT_FOUND => "未找到",
                    StatusCode::FORBIDDEN => "无权操作",
                    StatusCode::CONFLICT => "无法办理",
                    StatusCode::UNPROCESSABLE_ENTITY => "填写有误",
                    StatusCode::BAD_REQUEST => "请求有误",
                    _ => "系统错误",
                };
                // Server faults are logged, not shown: the page says only that it failed.
                let detail = if problem.status.is_server_error() {
                    tracing::error!(detail = %problem.detail, "a console page failed");
                    "系统暂时无法完成此操作，请稍后再试或联系管理员。".to_owned()
                } else {
                    problem.detail
                };
                (problem.status, title, detail)
            }
        };
        let page = ErrorPage { title, detail };
        console.render(status, "error.html", minijinja::context! { page, viewer => viewer.map(Viewer::header) })
    }
}

/// The page for a path the console does not have (no session needed to learn that).
pub fn not_found_page() -> Response {
    let body = "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>未找到</title>\
                <link rel=\"stylesheet\" href=\"/assets/console.css\"><main class=\"narrow\"><h1>未找到</h1>\
                <p>没有这个页面。<a href=\"/inbox\">返回我的待办</a></p></main></html>";
    (StatusCode::NOT_FOUND, Html(body)).into_response()
}
