//! The gateway's only way to Redis: TQ commands through one multiplexed
//! connection, their errors as HTTP errors, their map replies as JSON.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Value;
use serde_json::{Map, Value as Json};
use tokio::sync::OnceCell;

use crate::error::ApiError;

/// How long a command or a connection attempt may take before the request
/// answers 503: a Redis that stopped answering must not hang the fans.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection made on first use and remade after Redis was away: the
/// gateway starts (and answers 503) while Redis is down.
pub struct Tq {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
}

impl Tq {
    pub fn new(url: &str) -> Result<Tq, redis::RedisError> {
        Ok(Tq {
            client: redis::Client::open(url)?,
            connection: OnceCell::new(),
        })
    }

    /// The connection, made by the first request that needs it (a failure
    /// leaves it to the next); from then on it reconnects by itself.
    async fn connection(&self) -> Result<ConnectionManager, ApiError> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(REDIS_TIMEOUT)
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_number_of_retries(1);
        let made = self.connection.get_or_try_init(|| async {
            tokio::time::timeout(
                REDIS_TIMEOUT,
                ConnectionManager::new_with_config(self.client.clone(), config),
            )
            .await
            .map_err(|_| ApiError::unavailable("connecting to Redis timed out"))?
            .map_err(|e| ApiError::unavailable(&e.to_string()))
        });
        Ok(made.await?.clone())
    }

    /// Runs one command, its words as given; a TQ error reply becomes the
    /// matching HTTP error.
    pub async fn call(&self, words: &[&str]) -> Result<Value, ApiError> {
        self.query(redis::cmd(words[0]).arg(&words[1..])).await
    }

    /// Runs one command.
    pub async fn query(&self, cmd: &redis::Cmd) -> Result<Value, ApiError> {
        let mut connection = self.connection().await?;
        cmd.query_async(&mut connection)
            .await
            .map_err(ApiError::from_redis)
    }

    /// Runs several commands in one round trip (not atomically); their
    /// replies in order, or the first error.
    pub async fn pipeline(&self, pipe: &redis::Pipeline) -> Result<Vec<Value>, ApiError> {
        let mut connection = self.connection().await?;
        pipe.query_async(&mut connection)
            .await
            .map_err(ApiError::from_redis)
    }

    /// Runs a script (EVALSHA, loading it if Redis lacks it).
    pub async fn invoke(&self, script: &redis::ScriptInvocation<'_>) -> Result<Value, ApiError> {
        let mut connection = self.connection().await?;
        script
            .invoke_async(&mut connection)
            .await
            .map_err(ApiError::from_redis)
    }
}

/// A TQ map reply (a flat field/value array in RESP2) as a JSON object:
/// integers as numbers, strings as strings, nil as null; the one double
/// (`admission_rate`) as a number.
pub fn map_reply(reply: &Value) -> Result<Map<String, Json>, ApiError> {
    let Value::Array(items) = reply else {
        return Err(ApiError::internal("expected a map reply"));
    };
    let mut out = Map::new();
    for pair in items.chunks(2) {
        let [name, value] = pair else {
            return Err(ApiError::internal("a map reply of odd length"));
        };
        let name = text(name)?;
        let value = match value {
            Value::Int(n) => Json::from(*n),
            Value::Nil => Json::Null,
            other if name == "admission_rate" => {
                let rate = text(other)?;
                let rate: f64 = rate
                    .parse()
                    .map_err(|_| ApiError::internal("admission_rate is not a number"))?;
                Json::from(rate)
            }
            other => Json::from(text(other)?),
        };
        out.insert(name, value);
    }
    Ok(out)
}

pub fn int(reply: &Value) -> Result<i64, ApiError> {
    match reply {
        Value::Int(n) => Ok(*n),
        _ => Err(ApiError::internal("expected an integer reply")),
    }
}

fn text(v: &Value) -> Result<String, ApiError> {
    match v {
        Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Okay => Ok("OK".into()),
        _ => Err(ApiError::internal("expected a string")),
    }
}
