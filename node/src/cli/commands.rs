//! What each client command sends, and what it prints on success.

use super::client::{read_error, AdminClient, Answer, CliError, Payload};
use super::render;
use super::{
    CertCommand, ClientCommand, ClusterCommand, ConfigCommand, NodeCommand, ServerCommand,
    ServerName, Target, DEFAULT_TIMEOUT, LONG_TIMEOUT,
};
use hyper::{Method, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::json;
use std::path::Path;

/// Bytes left unescaped in a path segment or query value: RFC 3986's
/// unreserved characters. Everything else (`/`, `?`, `%`, `#`, space...)
/// is escaped, so a name is always read back as itself.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A name made safe for a URI path segment or query value.
fn escape(name: &str) -> String {
    utf8_percent_encode(name, UNRESERVED).to_string()
}

/// What a successful command prints.
#[derive(Debug, Default)]
pub struct Output {
    /// For stdout, exactly.
    pub stdout: String,
    /// For stderr, each as `[WARNING] ...` (the node accepted a config
    /// with warnings).
    pub warnings: Vec<String>,
}

impl Output {
    fn line(text: String) -> Output {
        Output {
            stdout: text + "\n",
            warnings: Vec::new(),
        }
    }
}

/// Run one command against its admin API.
pub async fn execute(command: ClientCommand) -> Result<Output, CliError> {
    match command {
        ClientCommand::Cluster(c) => cluster(c).await,
        ClientCommand::Server(c) => server(c).await,
        ClientCommand::Node(c) => node(c).await,
        ClientCommand::Config(c) => config(c).await,
        ClientCommand::Cert(c) => cert(c).await,
    }
}

async fn cluster(command: ClusterCommand) -> Result<Output, CliError> {
    match command {
        ClusterCommand::Ca { out } => {
            shoal_raft::tls::generate_ca(&out)
                .map_err(|e| CliError::Certificates(e.to_string()))?;
            Ok(Output::line(format!(
                "cluster CA written to {} (ca.pem, ca-key.pem)",
                out.display()
            )))
        }
        ClusterCommand::Cert { ca, node_id, out } => {
            shoal_raft::tls::generate_node_cert(&ca, node_id, &out)
                .map_err(|e| CliError::Certificates(e.to_string()))?;
            Ok(Output::line(format!(
                "certificate of node {node_id} written to {} (node.pem, node-key.pem, ca.pem)",
                out.display()
            )))
        }
        ClusterCommand::Init { target } => {
            let api = AdminClient::new(&target, LONG_TIMEOUT)?;
            call(&api, Method::POST, "/v1/cluster/init", Payload::Empty).await?;
            Ok(Output::line(format!(
                "cluster initialized on the node at {}",
                api.addr()
            )))
        }
        ClusterCommand::Join { via, target } => {
            let api = AdminClient::new(&target, LONG_TIMEOUT)?;
            let body = Payload::Json(json!({ "via": via.to_string() }));
            call(&api, Method::POST, "/v1/cluster/join", body).await?;
            Ok(Output::line(format!(
                "the node at {} joined the cluster via {via}",
                api.addr()
            )))
        }
        ClusterCommand::Leave { target } => {
            let api = AdminClient::new(&target, LONG_TIMEOUT)?;
            call(&api, Method::POST, "/v1/cluster/leave", Payload::Empty).await?;
            Ok(Output::line(format!(
                "the node at {} left the cluster",
                api.addr()
            )))
        }
        ClusterCommand::Remove { node, target } => {
            let api = AdminClient::new(&target, LONG_TIMEOUT)?;
            let path = format!("/v1/cluster/members/{node}");
            call(&api, Method::DELETE, &path, Payload::Empty).await?;
            Ok(Output::line(format!(
                "node {node} removed from the cluster"
            )))
        }
        ClusterCommand::Backup {
            out,
            data_dir: Some(dir),
            ..
        } => super::backup::offline(&dir, &out),
        ClusterCommand::Backup {
            out,
            data_dir: None,
            target,
        } => {
            let api = AdminClient::new(&target, LONG_TIMEOUT)?;
            let answer = call(&api, Method::GET, "/v1/cluster/backup", Payload::Empty).await?;
            super::backup::save(&answer.body, &out)
        }
        ClusterCommand::Restore { file, target } => {
            let bytes = std::fs::read(&file).map_err(|e| read_error(&file, &e))?;
            // Refuse another file here, before the node reads it.
            super::backup::check(&bytes, &file)?;
            let api = AdminClient::new(&target, LONG_TIMEOUT)?;
            let answer = call(
                &api,
                Method::POST,
                "/v1/cluster/restore",
                Payload::Binary(bytes),
            )
            .await?;
            let view = answer.json()?;
            Ok(Output::line(format!(
                "{} ({}); state hash {}",
                view["status"].as_str().unwrap_or("restored"),
                file.display(),
                view["state_hash"].as_str().unwrap_or("?")
            )))
        }
        ClusterCommand::Status { target, format } => {
            let api = AdminClient::new(&target, DEFAULT_TIMEOUT)?;
            let answer = call(&api, Method::GET, "/v1/cluster", Payload::Empty).await?;
            if format.json {
                return json_as_is(&answer);
            }
            let status = serde_json::from_slice(&answer.body)
                .map_err(|e| answer.bad(format!("not a cluster status ({e})")))?;
            Ok(Output {
                stdout: render::cluster_status(&status),
                warnings: Vec::new(),
            })
        }
    }
}

/// How a server view becomes the summary line.
type Summary = fn(&ServerName, &serde_json::Value) -> Option<String>;

async fn server(command: ServerCommand) -> Result<Output, CliError> {
    let (name, what, body, summary, target, format): (_, _, _, Summary, _, _) = match command {
        ServerCommand::Weight {
            server,
            weight,
            target,
            format,
        } => (
            server,
            "weight",
            json!({ "weight": weight }),
            render::server_weight,
            target,
            format,
        ),
        ServerCommand::State {
            server,
            state,
            target,
            format,
        } => (
            server,
            "state",
            json!({ "state": state.word() }),
            render::server_state,
            target,
            format,
        ),
    };
    let api = AdminClient::new(&target, DEFAULT_TIMEOUT)?;
    let path = format!(
        "/v1/backends/{}/servers/{}/{what}",
        escape(&name.backend),
        escape(&name.server)
    );
    let answer = call(&api, Method::PUT, &path, Payload::Json(body)).await?;
    if format.json {
        return json_as_is(&answer);
    }
    summary(&name, &answer.json()?)
        .map(Output::line)
        .ok_or_else(|| answer.bad(format!("no {what} in the server's view")))
}

async fn node(command: NodeCommand) -> Result<Output, CliError> {
    let (node, state, target, format) = match command {
        NodeCommand::Drain {
            node,
            target,
            format,
        } => (node, "drain", target, format),
        NodeCommand::Ready {
            node,
            target,
            format,
        } => (node, "ready", target, format),
    };
    let api = AdminClient::new(&target, DEFAULT_TIMEOUT)?;
    let path = format!("/v1/nodes/{node}/state");
    let body = Payload::Json(json!({ "state": state }));
    let answer = call(&api, Method::PUT, &path, body).await?;
    if format.json {
        return json_as_is(&answer);
    }
    Ok(Output::line(format!("node {node}: {state}")))
}

async fn config(command: ConfigCommand) -> Result<Output, CliError> {
    match command {
        ConfigCommand::Show { target } => {
            let api = AdminClient::new(&target, DEFAULT_TIMEOUT)?;
            let answer = call(&api, Method::GET, "/v1/config", Payload::Empty).await?;
            Ok(Output {
                stdout: answer.text()?.to_string(),
                warnings: Vec::new(),
            })
        }
        ConfigCommand::Apply { file, target } => apply(&file, &target).await,
    }
}

/// Whether the admin API address `admin` (`HOST:PORT`) is on this
/// machine: a loopback address or `localhost`.
pub(super) fn is_local(admin: &str) -> bool {
    let host = admin
        .rsplit_once(':')
        .map_or(admin, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn cert(command: CertCommand) -> Result<Output, CliError> {
    match command {
        CertCommand::Add {
            file,
            name,
            key_over_network,
            target,
            format,
        } => {
            if !key_over_network && !is_local(&target.admin) {
                return Err(CliError::Certificates(format!(
                    "{} is not this machine, and the admin API is plain HTTP: the private key \
                     would cross the network in the clear. Run `shoal cert add` on a node \
                     (--admin 127.0.0.1:PORT) or through an SSH tunnel, or pass \
                     --key-over-network if this network is trusted",
                    target.admin
                )));
            }
            let name = match name {
                Some(name) => name,
                None => default_cert_name(&file)?,
            };
            let text = std::fs::read(&file).map_err(|e| read_error(&file, &e))?;
            let api = AdminClient::new(&target, LONG_TIMEOUT)?;
            let path = format!("/v1/certificates?name={}", escape(&name));
            let answer = call(&api, Method::POST, &path, Payload::Binary(text)).await?;
            if format.json {
                return json_as_is(&answer);
            }
            let view = answer.json()?;
            render::cert_added(&view)
                .map(Output::line)
                .ok_or_else(|| answer.bad("no certificate in the answer".into()))
        }
        CertCommand::List { target, format } => {
            let api = AdminClient::new(&target, DEFAULT_TIMEOUT)?;
            let answer = call(&api, Method::GET, "/v1/certificates", Payload::Empty).await?;
            if format.json {
                return json_as_is(&answer);
            }
            let list: Vec<render::Cert> = serde_json::from_slice(&answer.body)
                .map_err(|e| answer.bad(format!("not a certificate list ({e})")))?;
            Ok(Output {
                stdout: render::certificates(&list),
                warnings: Vec::new(),
            })
        }
        CertCommand::Remove { name, target } => {
            let api = AdminClient::new(&target, LONG_TIMEOUT)?;
            let path = format!("/v1/certificates/{}", escape(&name));
            call(&api, Method::DELETE, &path, Payload::Empty).await?;
            Ok(Output::line(format!("certificate {name} removed")))
        }
    }
}

/// `shoal cert add site.pem` stores `site`: the file name without its
/// last extension.
fn default_cert_name(file: &Path) -> Result<String, CliError> {
    file.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            CliError::Certificates(format!(
                "{}: cannot name the certificate after this file; give --name",
                file.display()
            ))
        })
}

/// `config apply`: the node validates the text and answers 400 (or 422)
/// with `FILE:LINE: message` diagnostics when it refuses it; FILE is the
/// path as given here, sent as `?file=`.
async fn apply(file: &Path, target: &Target) -> Result<Output, CliError> {
    let text = std::fs::read_to_string(file).map_err(|e| read_error(file, &e))?;
    let api = AdminClient::new(target, LONG_TIMEOUT)?;
    let name = file.display().to_string();
    let path = format!("/v1/config?file={}", escape(&name));
    let answer = api
        .send(Method::PUT, &path, Payload::Text(text))
        .await?
        .ok()
        .map_err(|e| match e {
            CliError::Refused { status, message }
                if status == StatusCode::BAD_REQUEST
                    || status == StatusCode::UNPROCESSABLE_ENTITY =>
            {
                CliError::ConfigRefused(message)
            }
            other => other,
        })?;
    Ok(Output {
        stdout: format!("configuration {name} applied\n"),
        warnings: render::warnings(&answer.body),
    })
}

/// Send, and turn an error status into [`CliError::Refused`].
async fn call(
    api: &AdminClient,
    method: Method,
    path: &str,
    payload: Payload,
) -> Result<Answer, CliError> {
    api.send(method, path, payload).await?.ok()
}

/// `--json`: the API's document as it came (the API pretty-prints), once
/// it is known to be JSON.
fn json_as_is(answer: &Answer) -> Result<Output, CliError> {
    answer.json()?;
    let mut stdout = answer.text()?.to_string();
    if !stdout.ends_with('\n') {
        stdout.push('\n');
    }
    Ok(Output {
        stdout,
        warnings: Vec::new(),
    })
}
