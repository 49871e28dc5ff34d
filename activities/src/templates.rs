//! The messages statflow sends, in Chinese, from minijinja templates.
//!
//! Each template defines three blocks: `subject`, `text` and `html`. The built-in ones are
//! `notice` (any notice a definition names), `deadline_reminder` and `escalation`. An
//! administrator overrides any of them, or the notice of one definition's template name
//! (e.g. `certificate_issued`), by putting `NAME.jinja` in the templates directory; a file
//! there may `{% extends "notice.jinja" %}` and replace only some blocks.

use std::path::PathBuf;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

const BUILT_IN: [(&str, &str); 3] = [
    ("notice.jinja", include_str!("templates/notice.jinja")),
    ("deadline_reminder.jinja", include_str!("templates/deadline_reminder.jinja")),
    ("escalation.jinja", include_str!("templates/escalation.jinja")),
];

/// What a notice named by a definition says happened, when no template of that name exists.
const HEADLINES: [(&str, &str); 34] = [
    ("access_restored", "数据访问权限已恢复"),
    ("access_suspended", "数据访问权限已暂停"),
    ("accountability_referral", "已移送追究责任"),
    ("annual_work_report_due", "请提交年度工作报告"),
    ("annual_work_report_received", "年度工作报告已收到"),
    ("authorization_granted", "授权运营已批准"),
    ("authorization_terminated", "授权运营已终止"),
    ("backflow_agreed", "数据回流已同意"),
    ("backflow_refused", "数据回流未获同意"),
    ("catalogue_published", "目录已发布"),
    ("certificate_issued", "登记凭证已发放"),
    ("data_confirmed", "数据已确认"),
    ("data_corrected", "数据已更正"),
    ("data_provided", "数据已提供"),
    ("evaluation_findings", "评估结果已形成"),
    ("incident_reported", "安全事件已报告"),
    ("open_approved", "开放申请已同意"),
    ("rectification_ordered", "已责令整改"),
    ("rectification_plan_received", "整改方案已收到"),
    ("refused", "申请未予通过"),
    ("rejected", "申请不予受理"),
    ("renewal_window_open", "授权期满前续期申请窗口已开启"),
    ("scenario_data_provided", "场景数据已提供"),
    ("scenario_refused", "场景需求未获批准"),
    ("service_stopped", "数据服务已停止"),
    ("shared", "数据已共享"),
    ("sharing_refused", "共享申请未获同意"),
    ("supplement_received", "补正材料已收到"),
    ("supplement_requested", "请补正材料"),
    ("usage_report_due", "请提交数据使用情况报告"),
    ("usage_reported", "数据使用情况报告已收到"),
    ("violation_not_corrected", "违规行为未按期改正"),
    ("violation_referred", "违规行为已移送处理"),
    ("withdrawal_result", "撤回申请已处理"),
];

/// Where a deadline stands, as a message shows it.
#[derive(Clone, Debug, Serialize)]
pub struct DeadlineView {
    /// e.g. `2026年3月5日(星期四)24:00`.
    pub due: String,
    pub remaining_working_days: Option<i64>,
    pub provisional: bool,
    pub paused: bool,
    pub overdue: bool,
}

/// Everything a template may use.
#[derive(Clone, Debug, Serialize)]
pub struct MessageContext {
    pub procedure: String,
    pub procedure_title: String,
    pub jurisdiction: String,
    pub instance: i64,
    pub step: String,
    pub step_title: String,
    /// One line saying what happened.
    pub headline: String,
    /// The escalation's title (e.g. `超期上报监管方`), for escalations.
    pub title: Option<String>,
    pub level: Option<u32>,
    pub deadline: Option<DeadlineView>,
    pub basis: Option<String>,
    pub link: String,
    /// How the message addresses its readers, e.g. `泰安市大数据局`.
    pub recipient: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
#[error("template {name}: {message}")]
pub struct TemplateError {
    pub name: String,
    pub message: String,
}

/// Subjects and plain text render as written; the HTML part escapes every value it shows.
pub struct Templates {
    plain: Environment<'static>,
    html: Environment<'static>,
}

impl Templates {
    /// The built-in templates, overridden by `NAME.jinja` files in `directory` when given.
    pub fn new(directory: Option<PathBuf>) -> Templates {
        let mut plain = environment(directory.clone());
        plain.set_auto_escape_callback(|_| AutoEscape::None);
        let mut html = environment(directory);
        html.set_auto_escape_callback(|_| AutoEscape::Html);
        Templates { plain, html }
    }
}

fn environment(directory: Option<PathBuf>) -> Environment<'static> {
    let mut environment = Environment::new();
    // A misspelt variable must fail loudly, not send a message with a blank in it.
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    environment.set_loader(move |name| {
        if let Some(directory) = &directory {
            let path = directory.join(name);
            match std::fs::read_to_string(&path) {
                Ok(source) => return Ok(Some(source)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("{}: {error}", path.display()),
                    ))
                }
            }
        }
        Ok(BUILT_IN.iter().find(|(file, _)| *file == name).map(|(_, source)| (*source).to_owned()))
    });
    environment
}

impl Templates {
    /// The headline of a notice named `template` by a definition.
    pub fn headline(template: &str) -> String {
        HEADLINES
            .iter()
            .find(|(name, _)| *name == template)
            .map_or_else(|| format!("办理情况通知({template})"), |(_, headline)| (*headline).to_owned())
    }

    /// Renders template `name`, or the generic notice when there is no template of that name.
    pub fn render(&self, name: &str, context: &MessageContext) -> Result<Rendered, TemplateError> {
        let error = |e: minijinja::Error| TemplateError { name: name.to_owned(), message: format!("{e:#}") };
        let block = |environment: &Environment<'static>, block: &str| -> Result<String, TemplateError> {
            let template = match environment.get_template(&format!("{name}.jinja")) {
                Ok(template) => template,
                Err(e) if e.kind() == minijinja::ErrorKind::TemplateNotFound => {
                    environment.get_template("notice.jinja").map_err(error)?
                }
                Err(e) => return Err(error(e)),
            };
            template
                .render_captured(context)
                .map_err(error)?
                .with_state_mut(|state| state.render_block(block))
                .map_err(error)
        };
        Ok(Rendered {
            subject: block(&self.plain, "subject")?.trim().to_owned(),
            text: block(&self.plain, "text")?.trim().to_owned() + "\n",
            html: block(&self.html, "html")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> MessageContext {
        MessageContext {
            procedure: "registration".into(),
            procedure_title: "公共数据登记".into(),
            jurisdiction: "taian".into(),
            instance: 7,
            step: "acceptance".into(),
            step_title: "登记受理".into(),
            headline: "办理期限即将届满".into(),
            title: None,
            level: None,
            deadline: Some(DeadlineView {
                due: "2026年3月5日(星期四)24:00".into(),
                remaining_working_days: Some(1),
                provisional: false,
                paused: false,
                overdue: false,
            }),
            basis: Some("《泰安市公共数据开发利用管理办法(试行)》第九条第(二)项".into()),
            link: "http://statflow.example/instances/7".into(),
            recipient: "taian-registry 登记机构".into(),
        }
    }

    #[test]
    fn a_reminder_names_the_step_the_days_left_and_the_legal_basis() {
        let rendered = Templates::new(None).render("deadline_reminder", &context()).unwrap();
        assert_eq!(rendered.subject, "【办理提醒】公共数据登记第7号「登记受理」剩余1个工作日");
        assert!(rendered.text.contains("剩余工作日:1\n"), "{}", rendered.text);
        assert!(rendered.text.contains("依据:《泰安市公共数据开发利用管理办法(试行)》第九条第(二)项"));
        assert!(rendered.text.contains("查看详情:http://statflow.example/instances/7"));
        // minijinja's HTML escaping writes `/` as `&#x2f;`, which browsers read back as `/`.
        assert!(
            rendered.html.contains("<a href=\"http:&#x2f;&#x2f;statflow.example&#x2f;instances&#x2f;7\">"),
            "{}",
            rendered.html
        );
    }

    #[test]
    fn a_provisional_deadline_says_so() {
        let mut context = context();
        context.deadline.as_mut().unwrap().provisional = true;
        let rendered = Templates::new(None).render("deadline_reminder", &context).unwrap();
        assert!(rendered.text.contains("(暂定,相关年度工作日安排尚未公布)"), "{}", rendered.text);
    }

    #[test]
    fn a_notice_without_its_own_template_uses_the_generic_one() {
        let mut context = context();
        context.headline = Templates::headline("certificate_issued");
        context.deadline = None;
        let rendered = Templates::new(None).render("certificate_issued", &context).unwrap();
        assert_eq!(rendered.subject, "【公共数据登记】登记凭证已发放(第7号)");
        assert!(!rendered.text.contains("办理期限"));
    }

    #[test]
    fn html_escapes_what_it_shows() {
        let mut context = context();
        context.step_title = "<script>".into();
        let rendered = Templates::new(None).render("notice", &context).unwrap();
        assert!(rendered.html.contains("&lt;script&gt;") && !rendered.html.contains("<script>"));
    }

    #[test]
    fn an_administrator_overrides_one_block_of_a_built_in_template() {
        let dir = std::env::temp_dir().join(format!("statflow-templates-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("deadline_reminder.jinja"),
            "{% extends \"notice.jinja\" %}{% block subject %}请于{{ deadline.due }}前办结{% endblock %}",
        )
        .unwrap();
        let rendered = Templates::new(Some(dir.clone())).render("deadline_reminder", &context()).unwrap();
        assert_eq!(rendered.subject, "请于2026年3月5日(星期四)24:00前办结");
        assert!(rendered.text.contains("剩余工作日:1"), "the other blocks stay built in");
        std::fs::write(dir.join("escalation.jinja"), "{% block subject %}{{ no_such_field }}{% endblock %}").unwrap();
        let error = Templates::new(Some(dir.clone())).render("escalation", &context()).unwrap_err();
        assert!(error.to_string().starts_with("template escalation:"), "{error}");
        std::fs::remove_dir_all(dir).ok();
    }
}
