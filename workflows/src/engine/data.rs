//! Checks start input and action data against a definition's fields, naming the field at
//! fault, and describes the fields as JSON Schema for clients that build forms.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use super::types::Refusal;
use crate::definition::model::{Field, Name};

/// What is wrong with one field of start input or action data. Each reader words it in its
/// own language (the API in English through [`Problem::message`], the console in Chinese).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The data is not an object of fields at all.
    NotAnObject,
    /// A field the definition does not declare; `expected` lists those it does.
    Unknown {
        expected: Vec<String>,
    },
    Required,
    NotText,
    NotInteger,
    OutOfRange {
        value: i64,
        min: Option<i64>,
        max: Option<i64>,
    },
    NotDate,
    NotBoolean,
    NotOneOf {
        values: Vec<String>,
    },
}

/// A problem and the field it is in (empty for [`Problem::NotAnObject`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub problem: Problem,
}

impl FieldProblem {
    /// The problem in English, naming the field.
    pub fn message(&self) -> String {
        let name = &self.field;
        match &self.problem {
            Problem::NotAnObject => "the data must be a JSON object of fields".into(),
            Problem::Unknown { expected } => {
                let expected = if expected.is_empty() { "no fields".to_owned() } else { expected.join(", ") };
                format!("unknown field `{name}`; expected {expected}")
            }
            Problem::Required => format!("field `{name}` is required"),
            Problem::NotText => format!("field `{name}` must be a non-empty string"),
            Problem::NotInteger => format!("field `{name}` must be an integer"),
            Problem::OutOfRange { value, min, max } => format!(
                "field `{name}` is {value}, but must be between {} and {}",
                min.unwrap_or(i64::MIN),
                max.unwrap_or(i64::MAX)
            ),
            Problem::NotDate => format!("field `{name}` must be a date written YYYY-MM-DD"),
            Problem::NotBoolean => format!("field `{name}` must be true or false"),
            Problem::NotOneOf { values } => format!("field `{name}` must be one of {}", values.join(", ")),
        }
    }
}

/// Returns the data as a map once every field is present (when required), known and of its
/// type; otherwise the first problem found.
pub fn check(fields: &BTreeMap<Name, Field>, data: &Value) -> Result<Map<String, Value>, Refusal> {
    match problems(fields, data).into_iter().next() {
        Some(problem) => Err(Refusal::field(&problem.field, problem.message())),
        None => Ok(match data {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        }),
    }
}

/// Every problem of `data` against `fields`, unknown fields first, then the declared ones in
/// their order: a form shows them all at once.
pub fn problems(fields: &BTreeMap<Name, Field>, data: &Value) -> Vec<FieldProblem> {
    let empty = Map::new();
    let map = match data {
        Value::Null => &empty,
        Value::Object(map) => map,
        _ => return vec![FieldProblem { field: String::new(), problem: Problem::NotAnObject }],
    };
    let mut found = Vec::new();
    for key in map.keys() {
        if fields.get(key.as_str()).is_none() {
            let expected = fields.keys().map(|k| k.get_ref().clone()).collect();
            found.push(FieldProblem { field: key.clone(), problem: Problem::Unknown { expected } });
        }
    }
    for (name, field) in fields {
        let name = name.get_ref();
        let spec = field.spec();
        let problem = match map.get(name).filter(|v| !v.is_null()) {
            None if spec.required => Some(Problem::Required),
            None => None,
            Some(value) => value_problem(&spec, value),
        };
        if let Some(problem) = problem {
            found.push(FieldProblem { field: name.clone(), problem });
        }
    }
    found
}

fn value_problem(spec: &crate::definition::model::FieldSpec, value: &Value) -> Option<Problem> {
    match spec.kind.as_str() {
        "string" | "text" => match value.as_str() {
            Some(s) if !s.trim().is_empty() => None,
            Some(_) if !spec.required => None,
            _ => Some(Problem::NotText),
        },
        "integer" => match value.as_i64() {
            None => Some(Problem::NotInteger),
            Some(n) if spec.min.is_some_and(|min| n < min) || spec.max.is_some_and(|max| n > max) => {
                Some(Problem::OutOfRange { value: n, min: spec.min, max: spec.max })
            }
            Some(_) => None,
        },
        "date" if value.as_str().and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()).is_none() => {
            Some(Problem::NotDate)
        }
        "boolean" if !value.is_boolean() => Some(Problem::NotBoolean),
        "enum" if !value.as_str().is_some_and(|s| spec.values.iter().any(|v| v == s)) => {
            Some(Problem::NotOneOf { values: spec.values.clone() })
        }
        _ => None,
    }
}

/// The JSON Schema of a set of fields.
pub fn json_schema(fields: &BTreeMap<Name, Field>) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, field) in fields {
        let spec = field.spec();
        let mut schema = match spec.kind.as_str() {
            "integer" => json!({"type": "integer"}),
            "date" => json!({"type": "string", "format": "date"}),
            "boolean" => json!({"type": "boolean"}),
            "enum" => json!({"type": "string", "enum": spec.values}),
            "text" => json!({"type": "string", "minLength": 1, "x-multiline": true}),
            _ => json!({"type": "string", "minLength": 1}),
        };
        if let Some(min) = spec.min {
            schema["minimum"] = json!(min);
        }
        if let Some(max) = spec.max {
            schema["maximum"] = json!(max);
        }
        if !spec.title.is_empty() {
            schema["title"] = json!(spec.title);
        }
        if spec.confidential {
            schema["x-confidential"] = json!(true);
        }
        if spec.required {
            required.push(name.get_ref().clone());
        }
        properties.insert(name.get_ref().clone(), schema);
    }
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

/// The confidential fields among `fields`.
pub fn confidential(fields: &BTreeMap<Name, Field>) -> Vec<String> {
    fields.iter().filter(|(_, f)| f.spec().confidential).map(|(n, _)| n.get_ref().clone()).collect()
}
