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
        let wanted = User::from_name(name)
            .map_err(|e| format!("'user {name}': {e}"))?
            .ok_or_else(|| format!("'user {name}': no such user"))?;
        if wanted.uid != geteuid() {
            return Err(format!(
                "'user {name}': Shoal does not switch users; start it as {name} (uid {}), \
                 for example with systemd's User=, not as uid {}",
                wanted.uid,
                geteuid()
            ));
        }
    }
    if let Some(name) = &global.group {
        let wanted = Group::from_name(name)
            .map_err(|e| format!("'group {name}': {e}"))?
            .ok_or_else(|| format!("'group {name}': no such group"))?;
        if wanted.gid != getegid() {
            return Err(format!(
                "'group {name}': Shoal does not switch groups; start it with group {name} (gid {}), \
                 not gid {}",
                wanted.gid,
                getegid()
            ));
        }
    }
    Ok(())
}
