//! The messages statflow sends, in Chinese, from minijinja templates.
//!
//! Each template defines three blocks: `subject`, `text` and `html`. The built-in ones are
//! `notice` (any notice a definition names), `deadline_reminder` and `escalation`, rendered
//! with a [`MessageContext`], and `digest` (a staff member's daily digest), rendered with a
//! [`DigestContext`]. An
//! administrator overrides any of them, or the notice of one definition's template name
//! (e.g. `certificate_issued`), by putting `NAME.jinja` in the templates directory; a file
//! there may `{% extends "notice.jinja" %}` and replace only some blocks.

use std::path::PathBuf;

use chrono::{Datelike, NaiveDate};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

const BUILT_IN: [(&str, &str); 4] = [
    ("notice.jinja", include_str!("templates/notice.jinja")),
    ("deadline_reminder.jinja", include_str!("templates/deadline_reminder.jinja")),
    ("escalation.jinja", include_str!("templates/escalation.jinja")),
    ("digest.jinja", include_str!("templates/digest.jinja")),
];

/// What a notice named by a definition says happened, when no template of that name exists.
const HEADLINES: [(&str, &str); 40] = [
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
    ("cooperation_ended", "已终止与违规方的合作"),
    ("cooperation_suspended", "已暂停与违规方的合作"),
    ("certificate_issued", "登记凭证已发放"),
    ("data_confirmed", "数据已确认"),
    ("data_corrected", "数据已更正"),
    ("data_provided", "数据已提供"),
    ("evaluation_findings", "评估结果已形成"),
    ("incident_reported", "安全事件已报告"),
    ("objection_dismissed", "异议经核实不成立"),
    ("objection_upheld", "异议成立,数据已更正"),
    ("procedure_cancelled", "办件已撤销"),
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
    ("task_opened", "您有一项新的待办任务"),
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
    /// Why an administrator did what the message tells of (a cancellation's reason).
    #[serde(default)]
    pub reason: Option<String>,
    pub link: String,
    /// How the message addresses its readers, e.g. `泰安市大数据局`.
    pub recipient: String,
    /// Sources of the procedure not in force when the instance started (a draft, a lapsed
    /// text), each said in every message.
    #[serde(default)]
    pub source_notices: Vec<String>,
}

/// One staff member's daily digest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DigestContext {
    /// The staff member's name, e.g. `张三`.
    pub recipient: String,
    /// The digest's day, e.g. `2026年3月9日(星期一)`.
    pub date: String,
    /// What "due soon" means: due within this many working days.
    pub lookahead_working_days: u32,
    pub total: usize,
    /// The tasks listed, earliest deadline first; each list holds at most a bounded number
    /// (its `…_total` counts them all), so a digest stays a readable message however many
    /// tasks wait.
    pub overdue: Vec<DigestItem>,
    pub due_soon: Vec<DigestItem>,
    pub other: Vec<DigestItem>,
    /// How many tasks each list stands for (absent in digests queued before lists were
    /// bounded: then the lists are whole; see [`DigestContext::complete_totals`]).
    #[serde(default)]
    pub overdue_total: usize,
    #[serde(default)]
    pub due_soon_total: usize,
    #[serde(default)]
    pub other_total: usize,
    /// The task inbox.
    pub inbox: String,
}

impl DigestContext {
    /// Fills in the totals of a digest queued before they were recorded, whose lists are
    /// whole.
    pub fn complete_totals(&mut self) {
        if self.overdue_total + self.due_soon_total + self.other_total == 0 {
            (self.overdue_total, self.due_soon_total, self.other_total) =
                (self.overdue.len(), self.due_soon.len(), self.other.len());
        }
    }
}

/// One open task in a digest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DigestItem {
    pub instance: i64,
    pub procedure_title: String,
    pub task_title: String,
    /// The last day, e.g. `2026年3月11日(星期三)24:00`.
    pub due: Option<String>,
    pub remaining_working_days: Option<i64>,
    pub working_days_overdue: Option<i64>,
    pub provisional: bool,
    /// The reader has claimed this task.
    pub claimed: bool,
    pub link: String,
}

/// A day as messages write it: `2026年3月5日(星期四)`.
pub fn date_label(day: NaiveDate) -> String {
    const WEEKDAYS: [&str; 7] = ["一", "二", "三", "四", "五", "六", "日"];
    let weekday = WEEKDAYS[day.weekday().num_days_from_monday() as usize];
    format!("{}年{}月{}日(星期{weekday})", day.year(), day.month(), day.day())
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

    /// Renders template `name` with `context` (a [`MessageContext`] or a [`DigestContext`]),
    /// or the generic notice when there is no template of that name.
    pub fn render(&self, name: &str, context: &impl Serialize) -> Result<Rendered, TemplateError> {
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
            reason: None,
            link: "http://statflow.example/instances/7".into(),
            recipient: "taian-registry 登记机构".into(),
            source_notices: vec![],
        }
    }

    #[test]
    fn a_message_of_a_procedure_resting_on_a_draft_says_so() {
        let mut context = context();
        context.source_notices =
            vec!["依据文件《吴忠市公共数据管理办法(暂行)(征求意见稿)》为征求意见稿,尚未生效".into()];
        for template in ["notice", "escalation", "deadline_reminder"] {
            let rendered = Templates::new(None).render(template, &context).unwrap();
            assert!(
                rendered
                    .text
                    .contains("注意:依据文件《吴忠市公共数据管理办法(暂行)(征求意见稿)》为征求意见稿,尚未生效\n"),
                "{template}: {}",
                rendered.text
            );
            assert!(rendered.html.contains("<th align=\"left\">注意</th>"), "{template}");
        }
        assert!(!Templates::new(None).render("notice", &self::tests::context()).unwrap().text.contains("注意"));
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
    fn a_notice_says_the_reason_an_administrator_gave_and_only_then() {
        let mut context = context();
        context.headline = Templates::headline("procedure_cancelled");
        let without = Templates::new(None).render("procedure_cancelled", &context).unwrap();
        assert!(!without.text.contains("原因"), "{}", without.text);
        context.reason = Some("登记主体撤回申请 <重复>".into());
        let rendered = Templates::new(None).render("procedure_cancelled", &context).unwrap();
        assert!(rendered.text.contains("原因:登记主体撤回申请 <重复>\n"), "{}", rendered.text);
        assert!(
            rendered.html.contains("<th align=\"left\">原因</th><td>登记主体撤回申请 &lt;重复&gt;</td>"),
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

    fn digest_item(instance: i64, due: Option<&str>, remaining: Option<i64>, overdue: Option<i64>) -> DigestItem {
        DigestItem {
            instance,
            procedure_title: "公共数据登记".into(),
            task_title: "登记受理".into(),
            due: due.map(str::to_owned),
            remaining_working_days: remaining,
            working_days_overdue: overdue,
            provisional: false,
            claimed: instance == 9,
            link: format!("http://statflow.example/v1/instances/{instance}"),
        }
    }

    #[test]
    fn a_digest_lists_overdue_then_due_soon_then_the_rest() {
        let digest = DigestContext {
            recipient: "张三(泰安市数据资源登记中心)".into(),
            date: date_label(NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()),
            lookahead_working_days: 2,
            total: 3,
            overdue: vec![digest_item(7, Some("2026年3月5日(星期四)24:00"), None, Some(2))],
            due_soon: vec![digest_item(9, Some("2026年3月10日(星期二)24:00"), Some(1), None)],
            other: vec![digest_item(11, None, None, None)],
            overdue_total: 1,
            due_soon_total: 1,
            other_total: 1,
            inbox: "http://statflow.example/v1/tasks".into(),
        };
        let rendered = Templates::new(None).render("digest", &digest).unwrap();
        assert_eq!(rendered.subject, "【每日待办】2026年3月9日(星期一):待办3件,2个工作日内到期1件,已超期1件");
        let text = &rendered.text;
        let overdue = text.find("一、已超过办理期限(1件)").expect(text);
        let soon = text.find("二、2个工作日内到期(1件)").expect(text);
        let other = text.find("其他待办(1件)").expect(text);
        assert!(overdue < soon && soon < other, "{text}");
        assert!(text.contains("第7号「登记受理」 期限:2026年3月5日(星期四)24:00 已超期2个工作日"), "{text}");
        assert!(
            text.contains("第9号「登记受理」 期限:2026年3月10日(星期二)24:00 剩余1个工作日 〔已由本人认领〕"),
            "{text}"
        );
        assert!(text.contains("http://statflow.example/v1/instances/11"), "{text}");
        assert!(rendered.html.contains("<h3>2个工作日内到期(1件)</h3>"), "{}", rendered.html);
        assert!(
            rendered.html.contains("<td>登记受理(已由本人认领)</td>"),
            "macros are not escaped twice: {}",
            rendered.html
        );
    }

    #[test]
    fn a_digest_of_more_tasks_than_it_lists_counts_the_rest_and_points_to_the_inbox() {
        let mut digest = DigestContext {
            recipient: "张三".into(),
            date: "2026年3月9日(星期一)".into(),
            lookahead_working_days: 2,
            total: 1_000_003,
            overdue: vec![digest_item(7, Some("2026年3月5日(星期四)24:00"), None, Some(2))],
            due_soon: vec![digest_item(9, Some("2026年3月10日(星期二)24:00"), Some(1), None)],
            other: vec![digest_item(11, None, None, None)],
            overdue_total: 1_000_001,
            due_soon_total: 1,
            other_total: 1,
            inbox: "http://statflow.example/inbox".into(),
        };
        let rendered = Templates::new(None).render("digest", &digest).unwrap();
        assert_eq!(
            rendered.subject,
            "【每日待办】2026年3月9日(星期一):待办1000003件,2个工作日内到期1件,已超期1000001件"
        );
        assert!(rendered.text.contains("一、已超过办理期限(1000001件)"), "{}", rendered.text);
        assert!(rendered.text.contains("另有1000000件未列出,请到待办箱查看。"), "{}", rendered.text);
        assert_eq!(rendered.text.matches("未列出").count(), 1, "only the overdue list is cut: {}", rendered.text);
        assert!(rendered.html.contains("<h3>已超过办理期限(1000001件)</h3>"), "{}", rendered.html);
        assert!(rendered.html.contains("<p>另有1000000件未列出,请到待办箱查看。</p>"), "{}", rendered.html);

        // A digest queued before the totals were recorded has whole lists.
        (digest.overdue_total, digest.due_soon_total, digest.other_total) = (0, 0, 0);
        digest.complete_totals();
        assert_eq!((digest.overdue_total, digest.due_soon_total, digest.other_total), (1, 1, 1));
    }

    #[test]
    fn a_digest_without_overdue_work_numbers_its_sections_from_one() {
        let digest = DigestContext {
            recipient: "李四".into(),
            date: "2026年3月9日(星期一)".into(),
            lookahead_working_days: 2,
            total: 1,
            overdue: Vec::new(),
            due_soon: vec![digest_item(9, Some("2026年3月10日(星期二)24:00"), Some(1), None)],
            other: Vec::new(),
            overdue_total: 0,
            due_soon_total: 1,
            other_total: 0,
            inbox: "http://statflow.example/v1/tasks".into(),
        };
        let rendered = Templates::new(None).render("digest", &digest).unwrap();
        assert_eq!(rendered.subject, "【每日待办】2026年3月9日(星期一):待办1件,2个工作日内到期1件");
        assert!(rendered.text.contains("一、2个工作日内到期(1件)"), "{}", rendered.text);
        assert!(!rendered.text.contains("其他待办"));
    }
}
