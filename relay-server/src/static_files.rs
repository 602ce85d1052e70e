//! The files of `--static`, without what was never meant to be published.
//!
//! A site directory often holds more than the site: `.git/` (the whole
//! history, credentials in `.git/config`), `.env`, editors' `.swp` files.
//! Any path with a segment starting with `.` (also written `%2e`) is
//! answered 404, as if it did not exist. `serve` also refuses a data
//! directory inside the static one, which would publish the database.

use std::path::{Path, PathBuf};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt as _;
use tower_http::services::ServeDir;

/// Serves `dir`, hiding dotfiles.
pub async fn serve(dir: PathBuf, req: Request) -> Response {
    if has_dot_segment(req.uri().path()) {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    match ServeDir::new(dir).oneshot(req).await {
        Ok(r) => r.into_response(),
        Err(e) => match e {},
    }
}

/// Whether a URL path has a segment starting with `.`, percent-encoded or
/// not (`ServeDir` decodes `%2e` into a dot before it opens anything).
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| {
        seg.starts_with('.') || seg.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("%2e"))
    })
}

/// Refuses a data directory inside the static one (after resolving both,
/// symbolic links included). Call once both exist.
pub fn check_data_outside(data: &Path, static_dir: &Path) -> Result<(), String> {
    let static_c = static_dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", static_dir.display()))?;
    let data_c = resolve_to_be(data)?;
    if data_c.starts_with(&static_c) {
        return Err(format!(
            "the data directory {} is inside --static {}: the database would be served to anyone. \
             Put the data directory elsewhere.",
            data_c.display(),
            static_c.display()
        ));
    }
    Ok(())
}

/// `path` absolute, links resolved, for a path that need not exist yet
/// (the data directory is checked before it is created): its nearest
/// existing ancestor resolved, the missing rest appended.
fn resolve_to_be(path: &Path) -> Result<PathBuf, String> {
    let cannot = |e: &dyn std::fmt::Display| format!("cannot resolve {}: {e}", path.display());
    let absolute = std::path::absolute(path).map_err(|e| cannot(&e))?;
    let mut missing = Vec::new();
    let mut at = absolute.as_path();
    loop {
        match at.canonicalize() {
            Ok(mut resolved) => {
                resolved.extend(missing.iter().rev());
                return Ok(resolved);
            }
            Err(e) => {
                // `..` in the missing part cannot be resolved without it.
                let (Some(name), Some(parent)) = (at.file_name(), at.parent()) else {
                    return Err(cannot(&e));
                };
                missing.push(name);
                at = parent;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments() {
        for hidden in [
            "/.git/config",
            "/.env",
            "/a/.hidden/b",
            "/%2egit/HEAD",
            "/%2Eenv",
            "/a/%2e%2e/x",
        ] {
            assert!(has_dot_segment(hidden), "{hidden}");
        }
        for shown in ["/", "/index.html", "/a/b.c/d.js", "/x%2e"] {
            assert!(!has_dot_segment(shown), "{shown}");
        }
    }

    #[test]
    fn data_inside_static_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        let data = site.join("data");
        std::fs::create_dir_all(&data).unwrap();
        assert!(check_data_outside(&data, &site).is_err());
        assert!(check_data_outside(&site, &site).is_err());
        let elsewhere = dir.path().join("data");
        std::fs::create_dir_all(&elsewhere).unwrap();
        assert!(check_data_outside(&elsewhere, &site).is_ok());
        // Directories not created yet are checked too.
        assert!(check_data_outside(&site.join("new/data"), &site).is_err());
        assert!(check_data_outside(&dir.path().join("new/data"), &site).is_ok());
        // A link into the site is inside it.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&site, &link).unwrap();
        assert!(check_data_outside(&link.join("fresh"), &site).is_err());
    }
}
