//! `/v1/tables...` (stick tables) and `/v1/stats` (every `show stat` row).

use super::extract::Params;
use super::openapi::{Denied, Missing};
use super::reply::{json, Failure, Reply};
use super::views::{self, TableView};
use super::Api;
use crate::routing::Snapshot;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shoal_proto::command::Command;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// `{table}` in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TablePath {
    /// Stick table name (the proxy that declares it).
    table: String,
}

/// List stick tables.
#[utoipa::path(get, path = "/v1/tables", tag = "tables",
    responses((status = 200, description = "Every stick table", body = Vec<TableView>), Denied))]
pub async fn list_tables(State(api): State<Arc<Api>>) -> Reply {
    let snapshot = api.runtime.snapshot();
    let mut list: Vec<_> = snapshot
        .tables
        .values()
        .map(|t| views::table(t, false))
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    json(StatusCode::OK, &list)
}

/// One stick table with its entries.
#[utoipa::path(get, path = "/v1/tables/{table}", tag = "tables", params(TablePath),
    responses((status = 200, description = "The table", body = TableView), Denied, Missing))]
pub async fn get_table(
    State(api): State<Arc<Api>>,
    Params(p): Params<TablePath>,
) -> Result<Reply, Failure> {
    let snapshot = api.runtime.snapshot();
    Ok(json(
        StatusCode::OK,
        &views::table(table(&snapshot, &p.table)?, true),
    ))
}

/// Clear a stick table, or one key with `?key=K`.
#[utoipa::path(delete, path = "/v1/tables/{table}", tag = "tables", params(TablePath,
        ("key" = Option<String>, Query, description = "Clear only this key (as `clear table T key K`)")),
    responses((status = 200, description = "The table as it is now", body = TableView),
        Denied, Missing))]
pub async fn clear_table(
    State(api): State<Arc<Api>>,
    Params(p): Params<TablePath>,
    RawQuery(query): RawQuery,
) -> Result<Reply, Failure> {
    // Decoded as the stats page decodes its forms (`+` is a space).
    let key = query.and_then(|q| crate::stats_page::form::value(&q, "key"));
    api.runtime
        .change(&Command::ClearTable {
            table: p.table.clone(),
            key,
        })
        .await?;
    let snapshot = api.runtime.snapshot();
    Ok(json(
        StatusCode::OK,
        &views::table(table(&snapshot, &p.table)?, false),
    ))
}

/// A stick table of the snapshot, or 404.
fn table<'a>(
    snapshot: &'a Snapshot,
    name: &str,
) -> Result<&'a std::sync::Arc<crate::stick::StickTable>, Failure> {
    snapshot
        .tables
        .get(name)
        .ok_or_else(|| Failure::not_found("No such table."))
}

/// One stats row: HAProxy's `show stat` field names as keys, empty cells
/// as `null`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct StatsRow(serde_json::Map<String, serde_json::Value>);

/// All stats rows (HAProxy `show stat` fields).
#[utoipa::path(get, path = "/v1/stats", tag = "stats",
    responses((status = 200, description = "One row per frontend, backend and server",
        body = Vec<StatsRow>), Denied))]
pub async fn stats(State(api): State<Arc<Api>>) -> Reply {
    json(StatusCode::OK, &stats_rows(&api.runtime.snapshot()))
}

/// All stats rows of a snapshot.
fn stats_rows(snapshot: &Snapshot) -> Vec<StatsRow> {
    use crate::stats::Value as V;
    use serde_json::Value as J;
    crate::stats::collect(snapshot)
        .iter()
        .map(|row| {
            let fields = row.fields().into_iter().map(|(name, value)| {
                let value = match value {
                    V::Empty => J::Null,
                    V::U64(n) => J::from(n),
                    V::S64(n) => J::from(n),
                    V::Str(s) => J::from(s),
                };
                (name.to_string(), value)
            });
            StatsRow(fields.collect())
        })
        .collect()
}
