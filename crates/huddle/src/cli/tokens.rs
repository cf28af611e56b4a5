//! Agent tokens kept between commands, so that `huddle send` after `huddle join` acts as
//! the same agent, and a second `huddle join` reconnects ("Reconnected to room ...")
//! instead of colliding with its own name.
//!
//! One JSON file, `tokens.json`, in the config dir (`$HUDDLE_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/huddle`, else `~/.config/huddle`), mode 0600 in a 0700 dir: a token
//! is the agent's whole identity. An entry is keyed by (server, room, agent):
//! - `server` is the normalized base URL (`http://host:3000/`);
//! - `room` is the room as the user spelled it, the name part lower-cased (the server
//!   lower-cases names) and a password replaced by its SHA-256, so the file holds no
//!   room password; `roomId` is kept too, so the room's id finds the entry as well.
//!
//! Writers take an exclusive lock on `tokens.lock` around read-modify-write and replace the
//! file by rename, so concurrent commands neither lose entries nor read a torn file.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const FILE_NAME: &str = "tokens.json";
const LOCK_NAME: &str = "tokens.lock";
const VERSION: u32 = 1;

/// One stored membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Normalized server base URL.
    pub server: String,
    /// The room key ([`room_key`] of the spelling used when the token was stored).
    pub room: String,
    /// The room's id, as the server reported it.
    pub room_id: String,
    /// The agent's name.
    pub agent: String,
    /// The agent token.
    pub token: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    #[serde(default)]
    agents: Vec<Entry>,
}

/// The token store; a disabled one (`--no-persist`) finds nothing and keeps nothing.
#[derive(Debug, Clone)]
pub struct TokenStore {
    dir: Option<PathBuf>,
}

impl TokenStore {
    /// The store in the user's config dir, or a disabled one when `persist` is false.
    pub fn open(persist: bool) -> Result<Self> {
        if !persist {
            return Ok(TokenStore { dir: None });
        }
        let dir = config_dir().context(
            "cannot find a config dir: set HUDDLE_CONFIG_DIR or HOME (or pass --no-persist)",
        )?;
        Ok(TokenStore { dir: Some(dir) })
    }

    /// A store in `dir` (tests).
    #[cfg(test)]
    pub fn in_dir(dir: &Path) -> Self {
        TokenStore {
            dir: Some(dir.to_path_buf()),
        }
    }

    /// The stored token of `agent` in the room spelled `room` on `server`: an entry of
    /// the same spelling, else one whose room id is `room`, else, when `room` has no
    /// password, the only entry for a room of that name.
    pub fn lookup(&self, server: &str, room: &str, agent: &str) -> Result<Option<Entry>> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let file = read(&dir.join(FILE_NAME))?;
        let mine = || {
            file.agents
                .iter()
                .filter(|e| e.server == server && e.agent == agent)
        };
        let key = room_key(room);
        if let Some(e) = mine().find(|e| e.room == key) {
            return Ok(Some(e.clone()));
        }
        if let Some(e) = mine().find(|e| e.room_id == room) {
            return Ok(Some(e.clone()));
        }
        if !room.contains(':') {
            let mut same_name = mine().filter(|e| room_name(&e.room) == key);
            if let (Some(e), None) = (same_name.next(), same_name.next()) {
                return Ok(Some(e.clone()));
            }
        }
        Ok(None)
    }

    /// Stores `entry`, replacing any entry of the same agent in the same room (by key or
    /// id). A room spelled by its id keeps the name-based key it was stored under.
    pub fn save(&self, mut entry: Entry) -> Result<()> {
        self.update(|agents| {
            if entry.room == room_key(&entry.room_id)
                && let Some(old) = agents.iter().find(|e| {
                    e.server == entry.server && e.agent == entry.agent && e.room_id == entry.room_id
                })
            {
                entry.room = old.room.clone();
            }
            agents.retain(|e| {
                !(e.server == entry.server
                    && e.agent == entry.agent
                    && (e.room == entry.room || e.room_id == entry.room_id))
            });
            agents.push(entry);
        })
    }

    /// Forgets `token` (of a server): the agent left, or the server no longer knows it.
    pub fn forget(&self, server: &str, token: &str) -> Result<()> {
        self.update(|agents| {
            agents.retain(|e| !(e.server == server && e.token == token));
        })
    }

    /// Read-modify-write under the lock; no-op when disabled.
    fn update(&self, change: impl FnOnce(&mut Vec<Entry>)) -> Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the config dir {}", dir.display()))?;
        let lock = open_private(&dir.join(LOCK_NAME), false)?;
        lock.lock()
            .with_context(|| format!("cannot lock {}", dir.join(LOCK_NAME).display()))?;
        let path = dir.join(FILE_NAME);
        let mut file = read(&path)?;
        file.version = VERSION;
        change(&mut file.agents);
        let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        let result = (|| {
            let mut out = open_private(&tmp, true)?;
            let mut text = serde_json::to_vec_pretty(&file)?;
            text.push(b'\n');
            out.write_all(&text)?;
            out.sync_all()?;
            fs::rename(&tmp, &path)?;
            anyhow::Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.with_context(|| format!("cannot write {}", path.display()))
        // The lock is released when `lock` is dropped.
    }
}

/// `$HUDDLE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/huddle`, else `$HOME/.config/huddle`.
pub fn config_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("HUDDLE_CONFIG_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(dir).join("huddle"));
    }
    var("HOME").map(|home| PathBuf::from(home).join(".config").join("huddle"))
}

/// The key of a room spelling: `name` lower-cased, and for `name:password` the
/// password's SHA-256 in hex after the colon.
pub fn room_key(room: &str) -> String {
    match room.split_once(':') {
        None => room.to_lowercase(),
        Some((name, password)) => {
            let digest = Sha256::digest(password.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("{}:{hex}", name.to_lowercase())
        }
    }
}

fn room_name(key: &str) -> &str {
    key.split_once(':').map_or(key, |(name, _)| name)
}

fn read(path: &Path) -> Result<StoreFile> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the token store {} is not valid; fix or remove it",
                path.display()
            )
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(StoreFile::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Opens (creating with mode 0600) a file only the user may read; `truncate` for writing.
fn open_private(path: &Path, truncate: bool) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // An existing file keeps its mode on open: tighten it.
    let mode = file.metadata()?.permissions().mode() & 0o777;
    if mode != 0o600 {
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(room: &str, room_id: &str, agent: &str, token: &str) -> Entry {
        Entry {
            server: "http://h:1/".into(),
            room: room_key(room),
            room_id: room_id.into(),
            agent: agent.into(),
            token: token.into(),
        }
    }

    #[test]
    fn found_by_spelling_by_id_and_by_unique_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::in_dir(dir.path());
        store.save(entry("Lab:pw", "id-1", "a", "t1")).unwrap();
        let find = |room: &str| {
            store
                .lookup("http://h:1/", room, "a")
                .unwrap()
                .map(|e| e.token)
        };
        assert_eq!(find("lab:pw").as_deref(), Some("t1"));
        assert_eq!(find("id-1").as_deref(), Some("t1"));
        assert_eq!(find("LAB").as_deref(), Some("t1"), "unique by name");
        assert_eq!(find("lab:other"), None, "another password is another room");
        store.save(entry("lab:other", "id-2", "a", "t2")).unwrap();
        assert_eq!(find("lab"), None, "two rooms named lab: ambiguous");
        assert_eq!(
            store.lookup("http://h:2/", "lab:pw", "a").unwrap(),
            None,
            "per server"
        );
        assert_eq!(
            store.lookup("http://h:1/", "lab:pw", "b").unwrap(),
            None,
            "per agent"
        );
    }

    #[test]
    fn the_file_is_private_and_holds_no_password() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::in_dir(&dir.path().join("cfg"));
        store
            .save(entry("lab:hunter2", "id-1", "a", "tok"))
            .unwrap();
        let path = dir.path().join("cfg").join(FILE_NAME);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(dir.path().join("cfg"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("tok"));
    }

    #[test]
    fn save_replaces_and_forget_removes() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::in_dir(dir.path());
        store.save(entry("lab", "id-1", "a", "t1")).unwrap();
        store.save(entry("id-1", "id-1", "a", "t2")).unwrap();
        let e = store.lookup("http://h:1/", "lab", "a").unwrap().unwrap();
        assert_eq!(e.token, "t2");
        store.forget("http://h:1/", "t2").unwrap();
        assert_eq!(store.lookup("http://h:1/", "lab", "a").unwrap(), None);
    }

    #[test]
    fn disabled_store_keeps_nothing() {
        let store = TokenStore::open(false).unwrap();
        store.save(entry("lab", "id-1", "a", "t1")).unwrap();
        assert_eq!(store.lookup("http://h:1/", "lab", "a").unwrap(), None);
    }
}
