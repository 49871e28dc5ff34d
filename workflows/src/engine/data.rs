//! Checks start input and action data against a definition's fields, naming the field at
//! fault, and describes the fields as JSON Schema for clients that build forms.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use super::types::Refusal;
use crate::definition::model::{Field, Name};

/// Returns the data as a map once every field is present (when required), known and of its
/// type.
pub fn check(fields: &BTreeMap<Name, Field>, data: &Value) -> Result<Map<String, Value>, Refusal> {
    let map = match data {
        Value::Null => Map::new(),
        Value::Object(map) => map.clone(),
        _ => return Err(Refusal::field("", "the data must be a JSON object of fields")),
    };
    for key in map.keys() {
        if fields.get(key.as_str()).is_none() {
            let known: Vec<&str> = fields.keys().map(|k| k.get_ref().as_str()).collect();
            let expected = if known.is_empty() { "no fields".to_owned() } else { known.join(", ") };
            return Err(Refusal::field(key, format!("unknown field `{key}`; expected {expected}")));
        }
    }
    for (name, field) in fields {
        let name = name.get_ref();
        let spec = field.spec();
        let value = map.get(name).filter(|v| !v.is_null());
        let Some(value) = value else {
            if spec.required {
                return Err(Refusal::field(name, format!("field `{name}` is required")));
            }
            continue;
        };
        let wrong = |what: &str| Err(Refusal::field(name, format!("field `{name}` must be {what}")));
        match spec.kind.as_str() {
            "string" | "text" => match value.as_str() {
                Some(s) if !s.trim().is_empty() => {}
                Some(_) if !spec.required => {}
                _ => return wrong("a non-empty string"),
            },
            "integer" => {
                let Some(n) = value.as_i64() else {
                    return wrong("an integer");
                };
                if spec.min.is_some_and(|min| n < min) || spec.max.is_some_and(|max| n > max) {
                    let range =
                        format!("between {} and {}", spec.min.unwrap_or(i64::MIN), spec.max.unwrap_or(i64::MAX));
                    return Err(Refusal::field(name, format!("field `{name}` is {n}, but must be {range}")));
                }
            }
            "date" if value.as_str().and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()).is_none() => {
                return wrong("a date written YYYY-MM-DD");
            }
            "boolean" if !value.is_boolean() => {
                return wrong("true or false");
            }
            "enum" if !value.as_str().is_some_and(|s| spec.values.iter().any(|v| v == s)) => {
                return wrong(&format!("one of {}", spec.values.join(", ")));
            }
            _ => {}
        }
    }
    Ok(map)
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
