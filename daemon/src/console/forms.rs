//! Forms generated from a definition's fields (the same fields its `data_schema` describes):
//! one input per field of the right kind, posted values turned into the JSON the engine
//! takes, and every problem worded in Chinese next to its field.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Map, Value};
use statflow_workflows::definition::model::{Field, Name};
use statflow_workflows::engine::data::{self, FieldProblem, Problem};

/// A posted value longer than this is refused at its field (the body limit bounds the rest).
const MAX_VALUE: usize = 10_000;

/// One input of a form, with what was entered and what is wrong with it.
#[derive(Debug, Serialize)]
pub struct FormField {
    pub name: String,
    pub label: String,
    /// `text`, `textarea`, `number`, `date`, `checkbox` or `select`.
    pub input: &'static str,
    pub required: bool,
    pub options: Vec<String>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub value: String,
    pub error: Option<String>,
}

/// The inputs for `fields`, filled with `entered` and annotated with `problems`.
pub fn fields(
    fields: &BTreeMap<Name, Field>,
    entered: &HashMap<String, String>,
    problems: &[FieldProblem],
) -> Vec<FormField> {
    fields
        .iter()
        .map(|(name, field)| {
            let name = name.get_ref().clone();
            let spec = field.spec();
            let input = match spec.kind.as_str() {
                "integer" => "number",
                "date" => "date",
                "boolean" => "checkbox",
                "enum" => "select",
                "text" => "textarea",
                _ => "text",
            };
            let error = problems.iter().find(|p| p.field == name).map(chinese);
            FormField {
                label: if spec.title.is_empty() { name.clone() } else { spec.title.clone() },
                value: entered.get(&name).cloned().unwrap_or_default(),
                input,
                required: spec.required,
                options: spec.values.clone(),
                min: spec.min,
                max: spec.max,
                error,
                name,
            }
        })
        .collect()
}

/// The JSON object for posted `entered` values, typed by `fields`, or every problem found.
/// Form fields the definition does not declare (such as the CSRF token) are not data.
pub fn parse(fields: &BTreeMap<Name, Field>, entered: &HashMap<String, String>) -> Result<Value, Vec<FieldProblem>> {
    let mut map = Map::new();
    let mut problems = Vec::new();
    for (name, field) in fields {
        let name = name.get_ref();
        let spec = field.spec();
        let raw = entered.get(name).map(|v| v.trim()).unwrap_or_default();
        if raw.len() > MAX_VALUE {
            problems.push(FieldProblem { field: name.clone(), problem: Problem::NotText });
            continue;
        }
        let value = match spec.kind.as_str() {
            "boolean" => Value::Bool(matches!(raw, "on" | "true" | "1")),
            _ if raw.is_empty() => continue,
            "integer" => match raw.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    problems.push(FieldProblem { field: name.clone(), problem: Problem::NotInteger });
                    continue;
                }
            },
            _ => Value::String(raw.to_owned()),
        };
        map.insert(name.clone(), value);
    }
    let data = Value::Object(map);
    let found_here: Vec<String> = problems.iter().map(|p| p.field.clone()).collect();
    problems.extend(data::problems(fields, &data).into_iter().filter(|p| !found_here.contains(&p.field)));
    if problems.is_empty() {
        Ok(data)
    } else {
        Err(problems)
    }
}

/// A field's problem in Chinese.
pub fn chinese(problem: &FieldProblem) -> String {
    match &problem.problem {
        Problem::NotAnObject | Problem::Unknown { .. } => "此项不属于本表单".into(),
        Problem::Required => "此项为必填项".into(),
        Problem::NotText => "请填写有效的文字内容（不超过 10000 字）".into(),
        Problem::NotInteger => "请填写整数".into(),
        Problem::OutOfRange { min, max, .. } => match (min, max) {
            (Some(min), Some(max)) => format!("请填写 {min} 至 {max} 之间的整数"),
            (Some(min), None) => format!("请填写不小于 {min} 的整数"),
            (None, Some(max)) => format!("请填写不大于 {max} 的整数"),
            (None, None) => "请填写整数".into(),
        },
        Problem::NotDate => "请按 年-月-日 填写日期".into(),
        Problem::NotBoolean => "请选择是或否".into(),
        Problem::NotOneOf { values } => format!("请从以下选项中选择：{}", values.join("、")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields_of(toml_text: &str) -> BTreeMap<Name, Field> {
        toml::from_str(toml_text).expect("fields parse")
    }

    #[test]
    fn posted_values_become_typed_data_and_every_problem_is_named_in_chinese() {
        let fields = fields_of(
            r#"
            opinion = { type = "text", title = "审查意见" }
            days = { type = "integer", min = 1, max = 20, title = "天数" }
            urgent = { type = "boolean", required = false }
            "#,
        );
        let entered: HashMap<String, String> =
            [("days", "30"), ("csrf", "x")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let problems = parse(&fields, &entered).unwrap_err();
        let by_field: HashMap<&str, String> = problems.iter().map(|p| (p.field.as_str(), chinese(p))).collect();
        assert_eq!(by_field["opinion"], "此项为必填项");
        assert_eq!(by_field["days"], "请填写 1 至 20 之间的整数");
        assert_eq!(by_field.len(), 2, "{by_field:?}");

        let entered: HashMap<String, String> = [("opinion", " 同意 "), ("days", "5"), ("urgent", "on")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let data = parse(&fields, &entered).unwrap();
        assert_eq!(data, serde_json::json!({"opinion": "同意", "days": 5, "urgent": true}));

        let form = super::fields(&fields, &entered, &[]);
        let inputs: Vec<(&str, &str)> = form.iter().map(|f| (f.name.as_str(), f.input)).collect();
        assert_eq!(inputs, [("days", "number"), ("opinion", "textarea"), ("urgent", "checkbox")]);
        assert_eq!(form[1].label, "审查意见");
    }
}
