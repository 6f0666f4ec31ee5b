//! Server state in HAProxy's words and numbers: the `status` column of
//! `show stat` and the numeric fields of `show servers state`.

use crate::routing::{AdminState, OpState, ServerStatus};

/// The `status` column of a server row, as HAProxy 2.6 words it.
///
/// `checked` means health checks are configured and enabled; `streak` is
/// the number of checks in a row that went against the current state
/// (rise/fall progress). A transition in progress shows HAProxy's
/// `UP f/F` (`f` failures left before DOWN) or `DOWN r/R` (`r` successes
/// of the `R` needed).
pub fn server_status(
    state: &ServerStatus,
    checked: bool,
    streak: u32,
    rise: u32,
    fall: u32,
) -> String {
    if state.admin == AdminState::Maint {
        return "MAINT".to_string();
    }
    let going = checked && streak > 0;
    let left = fall.saturating_sub(streak);
    match state.op {
        OpState::Up => {
            let word = if state.admin == AdminState::Drain {
                "DRAIN"
            } else if !checked {
                return "no check".to_string();
            } else {
                "UP"
            };
            if going {
                format!("{word} {left}/{fall}")
            } else {
                word.to_string()
            }
        }
        OpState::Stopping if going => format!("NOLB {left}/{fall}"),
        OpState::Stopping => "NOLB".to_string(),
        OpState::Down if going => format!("DOWN {}/{rise}", streak.min(rise)),
        OpState::Down => "DOWN".to_string(),
    }
}

/// HAProxy's check health counter (0 ..= rise+fall-1): 0 is DOWN, from
/// `rise` on the server is UP. Unchecked servers that are up report `rise`.
pub fn health(state: &ServerStatus, checked: bool, streak: u32, rise: u32, fall: u32) -> u32 {
    let max = rise + fall.max(1) - 1;
    if state.admin == AdminState::Maint {
        return 0;
    }
    match state.op {
        OpState::Down if checked => streak.min(rise.saturating_sub(1)),
        OpState::Down => 0,
        OpState::Stopping => max,
        OpState::Up if checked => max.saturating_sub(streak).max(rise),
        OpState::Up => rise,
    }
}

/// HAProxy's description of a check status (`check_desc`).
pub fn check_description(status: &str) -> &'static str {
    match status {
        "INI" => "Initializing",
        "SOCKERR" => "Socket error",
        "L4OK" => "Layer4 check passed",
        "L4TOUT" => "Layer4 timeout",
        "L4CON" => "Layer4 connection problem",
        "L6OK" => "Layer6 check passed",
        "L6TOUT" => "Layer6 timeout",
        "L6RSP" => "Layer6 invalid response",
        "L7OK" => "Layer7 check passed",
        "L7OKC" => "Layer7 check conditionally passed",
        "L7TOUT" => "Layer7 timeout",
        "L7RSP" => "Layer7 invalid response",
        "L7STS" => "Layer7 wrong status",
        "PROCOK" | "EXOK" => "External check passed",
        "PROCERR" | "EXNOK" => "External check error",
        "PROCTOUT" => "External check timeout",
        "HANA" => "Health analyze",
        _ => "Unknown",
    }
}

/// `srv_check_status` of `show servers state`: HAProxy's
/// `enum healthcheck_status` value (1 = INI for servers never checked).
pub fn check_status_code(status: &str) -> u32 {
    match status {
        "" | "INI" => 1,
        "HANA" => 4,
        "SOCKERR" => 5,
        "L4OK" => 6,
        "L4TOUT" => 7,
        "L4CON" => 8,
        "L6OK" => 9,
        "L6TOUT" => 10,
        "L6RSP" => 11,
        "L7TOUT" => 12,
        "L7RSP" => 13,
        "L7OK" => 15,
        "L7OKC" => 16,
        "L7STS" => 17,
        "PROCERR" | "EXNOK" => 18,
        "PROCTOUT" => 19,
        "PROCOK" | "EXOK" => 20,
        _ => 0,
    }
}

/// `srv_check_result`: 0 unknown, 2 failed, 3 passed, 4 conditionally passed.
pub fn check_result_code(status: &str) -> u32 {
    match status {
        "" | "INI" => 0,
        "L4OK" | "L6OK" | "L7OK" | "PROCOK" | "EXOK" => 3,
        "L7OKC" => 4,
        _ => 2,
    }
}

/// `srv_op_state`: 0 stopped, 2 running, 3 stopping (maintenance reads 0).
pub fn op_state_code(state: &ServerStatus) -> u32 {
    if state.admin == AdminState::Maint {
        return 0;
    }
    match state.op {
        OpState::Down => 0,
        OpState::Up => 2,
        OpState::Stopping => 3,
    }
}

/// `srv_admin_state` bit mask: 0x01 forced maintenance, 0x04 maintenance
/// from the config (`disabled`), 0x08 forced drain.
pub fn admin_state_code(state: &ServerStatus, disabled_in_config: bool) -> u32 {
    match state.admin {
        AdminState::Ready => 0,
        AdminState::Maint if disabled_in_config => 0x01 | 0x04,
        AdminState::Maint => 0x01,
        AdminState::Drain => 0x08,
    }
}

/// `srv_check_state` bit mask: 0x02 configured, 0x04 enabled, 0x08 paused
/// (maintenance).
pub fn check_state_code(state: &ServerStatus, configured: bool, disabled_in_config: bool) -> u32 {
    let mut bits = 0;
    if configured {
        bits |= 0x02;
        if state.check_enabled {
            bits |= 0x04;
        }
    }
    if state.admin == AdminState::Maint && (configured || disabled_in_config) {
        bits |= 0x08;
    }
    bits
}
