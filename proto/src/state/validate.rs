//! [`ClusterState::validate`]: the one validation, used by every surface.

use super::{BackendLayout, ClusterState, Refusal};
use crate::command::{Command, ServerRef};
use crate::config::{Balance, HashType, Proxy};

/// Most entries one stick batch may carry.
pub const MAX_STICK_WRITES: usize = 100_000;
/// Longest stick-table key or server name a batch may carry, in bytes.
pub const MAX_STICK_KEY: usize = 1024;

impl ClusterState {
    /// Whether `command` may be applied to this state. `Ok` means
    /// [`ClusterState::apply`] will carry it out; `Err` says why not, in
    /// HAProxy's words where it has some.
    ///
    /// A function of the state and the command only, so that every node
    /// decides the same on a committed command, whatever its environment.
    /// That is why a `LoadConfig` passes here: its text was parsed where
    /// it was built ([`Command::load_config`], which refuses a config that
    /// does not load with `FILE:LINE`), and its layout is what the state
    /// takes from it.
    pub fn validate(&self, command: &Command) -> Result<(), Refusal> {
        match command {
            Command::LoadConfig { .. } => Ok(()),
            Command::SetWeight { server, weight } => {
                let backend = self.find(server)?;
                if *weight > 256 {
                    return Err(Refusal::WeightRange);
                }
                let initial = self.config.layout.server(server).map_or(1, |s| s.weight);
                // HAProxy: a static algorithm (no BE_LB_PROP_DYN) keeps its
                // weights, except for turning a server off and on again.
                if *weight != 0 && *weight != initial && backend.static_algorithm {
                    return Err(Refusal::StaticWeight);
                }
                Ok(())
            }
            Command::SetAdminState { server, .. }
            | Command::SetHealth { server, .. }
            | Command::ReportHealth { server, .. }
            | Command::ReportObservation { server, .. }
            | Command::SetCheckEnabled { server, .. }
            | Command::SetAddr { server, .. }
            | Command::SetMaxconn { server, .. }
            | Command::ShutdownSessions { server } => self.find(server).map(|_| ()),
            Command::StickBatch { writes, .. } => {
                if writes.len() > MAX_STICK_WRITES {
                    return Err(Refusal::StickBatch(format!(
                        "{} entries (at most {MAX_STICK_WRITES})",
                        writes.len()
                    )));
                }
                let long = writes.iter().find(|w| {
                    w.key.len() > MAX_STICK_KEY
                        || w.server.len() > MAX_STICK_KEY
                        || w.prev.as_ref().is_some_and(|p| p.len() > MAX_STICK_KEY)
                        || w.table.len() > MAX_STICK_KEY
                });
                match long {
                    Some(_) => Err(Refusal::StickBatch(format!(
                        "a key, table or server name longer than {MAX_STICK_KEY} bytes"
                    ))),
                    // Writes to tables that a reload removed meanwhile are
                    // dropped by apply, not refused: the rest still counts.
                    None => Ok(()),
                }
            }
            Command::ClearTable { table, .. } => {
                if self.tables.contains_key(table) {
                    Ok(())
                } else {
                    Err(Refusal::NoSuchTable)
                }
            }
            // Membership is Raft's, not the state's: the surfaces check
            // that the node is a member before they propose.
            Command::SetNodeDrained { .. } | Command::ForgetNode { .. } => Ok(()),
            Command::AddCertificate { name, certificate } => {
                if let Some(why) = super::certs::bad_name(name)
                    .or_else(|| super::certs::bad_certificate(certificate))
                {
                    return Err(Refusal::Certificate(why));
                }
                let others: usize = self
                    .certificates
                    .iter()
                    .filter(|(n, _)| *n != name)
                    .map(|(_, c)| c.pem_bytes())
                    .sum();
                if others + certificate.pem_bytes() > super::certs::MAX_STORE_BYTES {
                    return Err(Refusal::Certificate(format!(
                        "the cluster's certificates would take more than {} bytes",
                        super::certs::MAX_STORE_BYTES
                    )));
                }
                let full = self.certificates.len() >= super::certs::MAX_CERTIFICATES;
                if full && !self.certificates.contains_key(name) {
                    return Err(Refusal::Certificate(format!(
                        "the cluster holds {} certificates already (at most {})",
                        self.certificates.len(),
                        super::certs::MAX_CERTIFICATES
                    )));
                }
                Ok(())
            }
            Command::RemoveCertificate { name } => {
                if self.certificates.contains_key(name) {
                    Ok(())
                } else {
                    Err(Refusal::NoSuchCertificate)
                }
            }
            // A decoded backup is whole state: its servers and tables
            // must be the ones its config declares.
            Command::Restore { state, .. } | Command::RestoreState { state } => {
                if state.invariants_hold() {
                    Ok(())
                } else {
                    Err(Refusal::Restore(
                        "its servers or stick tables do not match its configuration".into(),
                    ))
                }
            }
        }
    }

    /// The backend of an existing server, or HAProxy's complaint.
    fn find(&self, server: &ServerRef) -> Result<&BackendLayout, Refusal> {
        let backend = self
            .config
            .layout
            .backend(&server.backend)
            .ok_or(Refusal::NoSuchBackend)?;
        if self.servers.contains_key(server) {
            Ok(backend)
        } else {
            Err(Refusal::NoSuchServer)
        }
    }
}

/// True for algorithms whose weights are fixed at start (HAProxy lacks
/// `BE_LB_PROP_DYN` for them): `static-rr` and map-based hashing.
pub fn static_algorithm(backend: &Proxy) -> bool {
    match &backend.balance {
        Balance::StaticRr => true,
        b if b.is_hash() => backend.hash_type == HashType::MapBased,
        _ => false,
    }
}
