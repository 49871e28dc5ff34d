//! The procedure as a picture: its steps in rows by how far they are from the first (breadth
//! first along every transition), arrows for the transitions, the current step and those
//! visited marked. Drawn as SVG on the server, styled by the stylesheet (the page allows no
//! inline styles), so it needs no script.

use std::collections::HashMap;
use std::fmt::Write;

use statflow_workflows::definition::Definition;

const BOX_WIDTH: i32 = 132;
const BOX_HEIGHT: i32 = 34;
const GAP_X: i32 = 24;
const GAP_Y: i32 = 34;
/// Titles longer than this many characters are shortened (the full title is the tooltip).
const TITLE_CHARS: usize = 9;

/// The SVG of `definition`'s steps, with `current` and `visited` marked.
pub fn svg(definition: &Definition, current: Option<&str>, visited: &[String]) -> String {
    let order = definition.steps_in_order();
    // Each step's row: one more than the earliest step leading to it.
    let mut depth: HashMap<&str, usize> = HashMap::new();
    for name in &order {
        let here = *depth.entry(name).or_insert(0);
        for next in definition.successors(name) {
            depth.entry(next).or_insert(here + 1);
        }
    }
    let rows = depth.values().copied().max().unwrap_or(0) + 1;
    let mut per_row: Vec<Vec<&str>> = vec![Vec::new(); rows];
    for name in &order {
        per_row[depth[name]].push(name);
    }
    let widest = per_row.iter().map(Vec::len).max().unwrap_or(1) as i32;
    let width = widest * (BOX_WIDTH + GAP_X) + GAP_X;
    let height = rows as i32 * (BOX_HEIGHT + GAP_Y) + GAP_Y;
    let mut place: HashMap<&str, (i32, i32)> = HashMap::new();
    for (row, names) in per_row.iter().enumerate() {
        // Each row is centred.
        let offset = (width - names.len() as i32 * (BOX_WIDTH + GAP_X) + GAP_X) / 2;
        for (column, name) in names.iter().enumerate() {
            let x = offset + column as i32 * (BOX_WIDTH + GAP_X);
            let y = GAP_Y / 2 + row as i32 * (BOX_HEIGHT + GAP_Y);
            place.insert(name, (x, y));
        }
    }
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="diagram" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-labelledby="diagram-title"><title id="diagram-title">{} 的办理流程</title>"#,
        escape(&definition.procedure.title)
    );
    out.push_str(r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>"#);
    for name in &order {
        let (x, y) = place[name];
        for next in definition.successors(name) {
            let Some(&(nx, ny)) = place.get(next) else { continue };
            let (from_x, from_y) = (x + BOX_WIDTH / 2, y + BOX_HEIGHT);
            let (to_x, to_y) = (nx + BOX_WIDTH / 2, ny);
            if ny > y {
                let _ = write!(
                    out,
                    r#"<line class="edge" x1="{from_x}" y1="{from_y}" x2="{to_x}" y2="{to_y}" marker-end="url(#arrow)"/>"#
                );
            } else {
                // Back to an earlier (or the same) row: around the right-hand side.
                let side = width - GAP_X / 3;
                let _ = write!(
                    out,
                    r#"<path class="edge back" d="M {} {} C {side} {} {side} {} {} {}" marker-end="url(#arrow)"/>"#,
                    x + BOX_WIDTH,
                    y + BOX_HEIGHT / 2,
                    y + BOX_HEIGHT / 2,
                    ny + BOX_HEIGHT / 2,
                    nx + BOX_WIDTH,
                    ny + BOX_HEIGHT / 2
                );
            }
        }
    }
    for name in &order {
        let (x, y) = place[name];
        let title = definition.step(name).map_or((*name).to_owned(), |s| s.title.clone());
        let class = if current == Some(*name) {
            "step current"
        } else if visited.iter().any(|v| v == name) {
            "step visited"
        } else {
            "step"
        };
        let shown: String = if title.chars().count() > TITLE_CHARS {
            title.chars().take(TITLE_CHARS - 1).chain(['…']).collect()
        } else {
            title.clone()
        };
        let _ = write!(
            out,
            r#"<g class="{class}" data-step="{}"><title>{}</title><rect x="{x}" y="{y}" width="{BOX_WIDTH}" height="{BOX_HEIGHT}" rx="6"/><text x="{}" y="{}" text-anchor="middle" dominant-baseline="middle">{}</text></g>"#,
            escape(name),
            escape(&title),
            x + BOX_WIDTH / 2,
            y + BOX_HEIGHT / 2,
            escape(&shown)
        );
    }
    out.push_str("</svg>");
    out
}

/// Text for SVG markup.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registration_draws_every_step_once_with_the_current_one_marked() {
        let library = statflow_workflows::definition::Library::built_in();
        let registration = library.get("registration", "taian").expect("built in");
        let svg = svg(registration, Some("substantive_review"), &["acceptance".to_owned()]);
        for step in registration.procedure.steps.keys() {
            assert_eq!(svg.matches(&format!("data-step=\"{}\"", step.get_ref())).count(), 1, "{step:?}");
        }
        assert_eq!(svg.matches("class=\"step current\"").count(), 1);
        assert!(svg.contains(r#"<g class="step current" data-step="substantive_review">"#), "{svg}");
        assert!(svg.contains(r#"<g class="step visited" data-step="acceptance">"#), "{svg}");
        assert!(svg.contains("marker-end"), "transitions are drawn");
    }
}
