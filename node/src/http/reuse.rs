//! `http-reuse never|safe|aggressive|always`: which server connection a
//! request may ride, following HAProxy's manual.
//!
//! - A client connection first tries the server connection it used for
//!   its previous request (HAProxy attaches it to the session).
//! - `never`: that connection is private to the client connection and is
//!   closed with it; nothing is shared.
//! - `safe` (default): the first request of a client connection always
//!   opens its own server connection, so that if the server closes it
//!   while the request is sent, the client can safely retry; later
//!   requests may ride any idle connection of the server.
//! - `aggressive`: a first request may ride an idle connection that has
//!   already been reused at least once (the server proved it keeps them).
//! - `always`: any request may ride any idle connection.

use crate::pool::Share;
use shoal_proto::config::HttpReuse;

/// Which pooled connections a request may take; `None`: open a new one.
pub fn share(mode: HttpReuse, first_request: bool) -> Option<Share> {
    match (mode, first_request) {
        (HttpReuse::Never, _) | (HttpReuse::Safe, true) => None,
        (HttpReuse::Aggressive, true) => Some(Share::Proven),
        _ => Some(Share::Any),
    }
}

/// Whether a connection may go to the server's shared pool after an
/// exchange (otherwise it stays private to its client connection).
pub fn shared(mode: HttpReuse) -> bool {
    mode != HttpReuse::Never
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_requests_follow_the_mode() {
        assert_eq!(share(HttpReuse::Never, true), None);
        assert_eq!(share(HttpReuse::Never, false), None);
        assert_eq!(share(HttpReuse::Safe, true), None);
        assert_eq!(share(HttpReuse::Safe, false), Some(Share::Any));
        assert_eq!(share(HttpReuse::Aggressive, true), Some(Share::Proven));
        assert_eq!(share(HttpReuse::Always, true), Some(Share::Any));
        assert!(!shared(HttpReuse::Never) && shared(HttpReuse::Safe));
    }
}
