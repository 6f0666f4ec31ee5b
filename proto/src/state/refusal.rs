//! Why a command was refused. Messages keep HAProxy's runtime-API wording
//! where HAProxy has one, so every surface can print them as they are.

use crate::config::Diagnostic;

/// A command that [`super::ClusterState::validate`] turned down; the state
/// is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("No such backend.")]
    NoSuchBackend,
    #[error("No such server.")]
    NoSuchServer,
    #[error("No such table.")]
    NoSuchTable,
    #[error("Absolute weight can only be between 0 and 256 inclusive.")]
    WeightRange,
    #[error("Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.")]
    StaticWeight,
    /// The config text does not parse; every error, as `FILE:LINE: message`.
    #[error("configuration has {} error(s){}", .0.len(), first(.0))]
    Config(Vec<Diagnostic>),
    /// A stick batch breaks a size limit.
    #[error("stick batch refused: {0}")]
    StickBatch(String),
    /// A certificate that cannot be stored (name, size or contents).
    #[error("certificate refused: {0}")]
    Certificate(String),
    /// `shoal cert remove NAME` of a name the store lacks.
    #[error("No such certificate.")]
    NoSuchCertificate,
    /// A backup that cannot be restored.
    #[error("backup refused: {0}")]
    Restore(String),
}

fn first(diags: &[Diagnostic]) -> String {
    diags.first().map(|d| format!(": {d}")).unwrap_or_default()
}

impl Refusal {
    /// True when the command named something that does not exist (an HTTP
    /// surface answers 404 rather than 400).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Refusal::NoSuchBackend
                | Refusal::NoSuchServer
                | Refusal::NoSuchTable
                | Refusal::NoSuchCertificate
        )
    }
}
