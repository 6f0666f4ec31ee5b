//! The one codec for everything Shoal stores or sends between nodes:
//! bincode 2 (standard configuration) over serde. Kept in this one module
//! so that the format can be swapped. Every decode has a size limit, since
//! what a peer sends is untrusted.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest message or snapshot the codec decodes: 256 MiB.
pub const MAX_DECODE: usize = 256 << 20;

/// Why encoding or decoding failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("decode: {0} trailing bytes")]
    Trailing(usize),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_DECODE>()
}

/// Encode a value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(value, config())?)
}

/// Decode a value that must fill `bytes` exactly, reading at most
/// [`MAX_DECODE`] bytes' worth of allocations.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, config())?;
    if read != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - read));
    }
    Ok(value)
}
