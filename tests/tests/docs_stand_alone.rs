//! The repository stands alone: no document or source file sends its reader
//! to material outside it (the team's working notes live next to the
//! repository, not in it).

use std::path::{Path, PathBuf};

/// Text files of the repository, without build output and VCS data.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(name.as_ref(), "target" | ".git" | "node_modules") {
                files(&path, out);
            }
        } else if ["md", "rs", "toml", "yml", "yaml", "sh"]
            .iter()
            .any(|ext| name.ends_with(&format!(".{ext}")))
            || name == "run"
        {
            out.push(path);
        }
    }
}

#[test]
fn nothing_refers_to_material_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut all = Vec::new();
    files(&root, &mut all);
    assert!(
        all.len() > 50,
        "found only {} files under {root:?}",
        all.len()
    );
    // Spelled in two parts so this file does not match itself.
    let outside = [format!("../{}/", "shared"), format!("{}/wire/", "shared")];
    let mut offenders = Vec::new();
    for path in &all {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if outside.iter().any(|o| line.contains(o.as_str())) {
                offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "copy what the reader needs into docs/ or test fixtures instead:\n{}",
        offenders.join("\n")
    );
}
