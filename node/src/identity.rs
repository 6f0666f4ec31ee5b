//! `user` and `group` in `global`: Shoal does not switch identities itself
//! (a supervisor such as systemd starts it as the right user, with the
//! capability to bind low ports), so it only checks that it runs as the
//! user and group the config names. Running as root when the config asks
//! for another user would quietly keep privileges the operator meant to
//! drop, so that refuses to start instead.

use nix::unistd::{getegid, geteuid, Group, User};
use shoal_proto::config::Global;

/// `Err` says which `user`/`group` line the process does not satisfy.
pub fn check(global: &Global) -> Result<(), String> {
    if let Some(name) = &global.user {
        let uid = User::from_name(name).ok().flatten().map(|u| u.uid.as_raw());
        require("user", name, uid, geteuid().as_raw())?;
    }
    if let Some(name) = &global.group {
        let gid = Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw());
        require("group", name, gid, getegid().as_raw())?;
    }
    Ok(())
}

/// The process runs as `kind` `name` (whose id is `wanted`), or why not.
fn require(kind: &str, name: &str, wanted: Option<u32>, actual: u32) -> Result<(), String> {
    let wanted = wanted.ok_or_else(|| format!("'{kind} {name}': no such {kind}"))?;
    if wanted == actual {
        return Ok(());
    }
    Err(format!(
        "'{kind} {name}': Shoal does not switch identities; start it as {kind} {name} \
         (id {wanted}), not id {actual} (for example with systemd's User= and Group=)"
    ))
}
