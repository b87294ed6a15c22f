//! The education schema built into the binary.
//!
//! `pgwarden demo` must work from any directory, including an installed
//! binary with no checkout beside it, so it falls back to these copies of
//! `migrations/` when the configured folder does not exist. A test keeps
//! the list identical to the folder, so a new migration cannot be forgotten.

use std::path::Path;

use crate::error::{Error, Result};

/// Every file of `migrations/`, by name.
pub const FILES: &[(&str, &str)] = &[
    (
        "V20240901000000__education_schema.sql",
        include_str!("../../migrations/V20240901000000__education_schema.sql"),
    ),
    (
        "V20240901000000__education_schema.down.sql",
        include_str!("../../migrations/V20240901000000__education_schema.down.sql"),
    ),
];

/// Write the built-in migrations into `dir` (which must exist).
pub fn write_to(dir: &Path) -> Result<()> {
    for (name, text) in FILES {
        std::fs::write(dir.join(name), text).map_err(|e| {
            Error::failed(format!(
                "cannot write the built-in migration {name} into {}: {e}",
                dir.display()
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_built_in_copies_are_exactly_the_migrations_folder() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut on_disk: Vec<(String, String)> = std::fs::read_dir(&folder)
            .unwrap()
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(e.path()).unwrap())
            })
            .collect();
        on_disk.sort();
        let mut built_in: Vec<(String, String)> = super::FILES
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        built_in.sort();
        assert_eq!(
            built_in.iter().map(|f| &f.0).collect::<Vec<_>>(),
            on_disk.iter().map(|f| &f.0).collect::<Vec<_>>(),
            "src/migrate/embedded.rs must list every file of migrations/"
        );
        assert!(built_in == on_disk, "a built-in copy differs from its file");
    }
}
