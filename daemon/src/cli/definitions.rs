//! `statflow definitions`: validate definition files, load one into the running daemon as
//! its procedure's new current version, draw a procedure as a Mermaid diagram, print the
//! traceability matrix of the library.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use statflow_workflows::definition::{mermaid, Library, BUILT_IN};

use super::Failure;

#[derive(Subcommand)]
pub enum DefinitionsCommand {
    /// Validates definition files (or every *.toml in a folder) together with the built-in
    /// library; with no PATH, the built-in library itself. Exit 0 when all are valid, 1 with
    /// one `file:line: message` per problem otherwise.
    Validate { paths: Vec<PathBuf> },
    /// Loads a definition file into the running daemon (administrators): new instances of its
    /// procedure start on it; running ones keep theirs until migrated (`migrate-instances`).
    Load {
        file: PathBuf,
        #[command(flatten)]
        server: super::client::Server,
    },
    /// Prints the Mermaid state diagram of a built-in procedure: ID or ID/JURISDICTION.
    Graph { id: String },
    /// Prints the traceability matrix of the built-in library as Markdown: per source, each
    /// article with what encodes it (procedure, step, limit: statutory, policy or case), and
    /// the articles nothing encodes, with the reason. docs/legal-basis.md is its output.
    Basis {
        /// Only the procedures of this jurisdiction (taian, jinzhou, tianjin, wuzhong).
        #[arg(long)]
        jurisdiction: Option<String>,
    },
}

fn collect(path: &Path, files: &mut Vec<(String, String)>) -> Result<(), Failure> {
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| Failure::usage(format!("PATH: {}: {e}", path.display())))?;
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths.into_iter().filter(|p| p.extension().is_some_and(|x| x == "toml")) {
            collect(&p, files)?;
        }
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("PATH: {}: {e}", path.display())))?;
    files.push((path.display().to_string(), text));
    Ok(())
}

pub fn run(command: DefinitionsCommand) -> Result<(), Failure> {
    match command {
        DefinitionsCommand::Load { file, server } => {
            let source =
                std::fs::read_to_string(&file).map_err(|e| Failure::usage(format!("FILE: {}: {e}", file.display())))?;
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let body = serde_json::json!({"file": name, "source": source});
            let loaded = server.call("POST", "/v1/definitions", Some(&body))?;
            let text = |key: &str| loaded[key].as_str().unwrap_or_default().to_owned();
            println!("{}/{} version {} is current", text("procedure"), text("jurisdiction"), text("version"));
            Ok(())
        }
        DefinitionsCommand::Validate { paths } => {
            let mut files = Vec::new();
            for path in &paths {
                collect(path, &mut files)?;
            }
            // Given files replace the built-in definition of the same file name, so an edited
            // copy of a library file is checked against the rest of the library.
            let given: Vec<&str> =
                files.iter().map(|(f, _)| Path::new(f).file_name().and_then(|n| n.to_str()).unwrap_or("")).collect();
            let mut set: Vec<(&str, &str)> = files.iter().map(|(f, t)| (f.as_str(), t.as_str())).collect();
            set.extend(BUILT_IN.iter().filter(|(name, _)| !given.contains(name)).copied());
            match Library::load(set) {
                Ok(library) => {
                    let count = if paths.is_empty() { library.iter().count() } else { files.len() };
                    println!("{count} definitions valid");
                    Ok(())
                }
                Err(errors) => {
                    for error in &errors {
                        println!("{error}");
                    }
                    Err(Failure::invalid(format!("{} problems found", errors.len())))
                }
            }
        }
        DefinitionsCommand::Basis { jurisdiction } => {
            let library = Library::built_in();
            let definitions: Vec<_> = library.iter().collect();
            if let Some(j) = &jurisdiction {
                if !definitions.iter().any(|d| d.jurisdiction() == j) {
                    let mut known: Vec<&str> = definitions.iter().map(|d| d.jurisdiction()).collect();
                    known.sort_unstable();
                    known.dedup();
                    return Err(Failure::usage(format!(
                        "--jurisdiction: no procedures for `{j}`; known: {}",
                        known.join(", ")
                    )));
                }
            }
            print!("{}", statflow_workflows::definition::traceability::matrix(&definitions, jurisdiction.as_deref()));
            Ok(())
        }
        DefinitionsCommand::Graph { id } => {
            let library = Library::built_in();
            let (procedure, jurisdiction) = match id.split_once('/') {
                Some((p, j)) => (p, Some(j)),
                None => (id.as_str(), None),
            };
            let found: Vec<_> = library
                .iter()
                .filter(|d| d.id() == procedure && jurisdiction.is_none_or(|j| d.jurisdiction() == j))
                .collect();
            match found.as_slice() {
                [definition] => {
                    let today = statflow_workflows::calendar::local_date(
                        chrono::Utc::now().with_timezone(&statflow_workflows::calendar::shanghai()),
                    );
                    print!("{}", mermaid(definition, today));
                    Ok(())
                }
                [] => Err(Failure::usage(format!("ID: no built-in procedure `{id}`"))),
                several => {
                    let names: Vec<String> =
                        several.iter().map(|d| format!("{}/{}", d.id(), d.jurisdiction())).collect();
                    Err(Failure::usage(format!(
                        "ID: `{id}` is defined for several jurisdictions; use one of {}",
                        names.join(", ")
                    )))
                }
            }
        }
    }
}
