//! A validator's node key: an ed25519 key pair whose public half is its
//! entry in the validators file.
//!
//! On disk, `node.key` holds the 32-byte secret seed in hex (one line,
//! created `0600`); `node.pub` holds the public key in hex. `keygen` never
//! overwrites a key: a validator that lost its key is no longer the member
//! the file names.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

/// This node's signing key.
pub struct NodeKey {
    signing: SigningKey,
}

impl NodeKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> NodeKey {
        NodeKey {
            signing: SigningKey::from_bytes(&rand::random()),
        }
    }

    /// Reads a `node.key` file.
    pub fn load(path: &Path) -> Result<NodeKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the node key {}: {e}", path.display()))?;
        let bad = |why: &str| format!("{} is not a node key: {why}", path.display());
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed)
            .map_err(|_| bad("expected 64 hexadecimal digits (as `keygen` writes)"))?;
        Ok(NodeKey {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The public key in hex, as the validators file writes it.
    pub fn public_hex(&self) -> String {
        hex::encode(self.public())
    }
}

/// `neuroplex-relay keygen --out DIR`: writes `DIR/node.key` and
/// `DIR/node.pub`, returns the public key in hex. Refuses if `node.key`
/// exists.
pub fn keygen(dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let key = NodeKey::generate();
    let secret = dir.join("node.key");
    write_new(&secret, 0o600, &hex::encode(key.signing.to_bytes()))?;
    let public = key.public_hex();
    write_new(&dir.join("node.pub"), 0o644, &public)?;
    Ok(public)
}

/// Creates `path` (failing if it exists) with `mode`, holding `line`.
fn write_new(path: &PathBuf, mode: u32, line: &str) -> Result<(), String> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!(
                "{} exists: a node key is never overwritten (move it away first)",
                path.display()
            ),
            _ => format!("cannot create {}: {e}", path.display()),
        })?;
    writeln!(file, "{line}")
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keygen_writes_a_private_key_that_loads_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let public = keygen(dir.path()).unwrap();
        assert_eq!(public.len(), 64);
        let key = NodeKey::load(&dir.path().join("node.key")).unwrap();
        assert_eq!(key.public_hex(), public);
        let on_disk = std::fs::read_to_string(dir.path().join("node.pub")).unwrap();
        assert_eq!(on_disk.trim(), public);
        let mode = std::fs::metadata(dir.path().join("node.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = keygen(dir.path()).unwrap_err();
        assert!(again.contains("never overwritten"), "{again}");
        assert_eq!(
            NodeKey::load(&dir.path().join("node.key"))
                .unwrap()
                .public_hex(),
            public
        );
    }

    #[test]
    fn a_file_that_is_not_a_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        std::fs::write(&path, "not hex").unwrap();
        let e = NodeKey::load(&path).err().unwrap();
        assert!(e.contains("64 hexadecimal digits"), "{e}");
    }
}
