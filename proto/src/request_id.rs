//! The request id that ties one call's log lines together across services:
//! the caller's `x-request-id` metadata if it is short and plain, otherwise
//! a fresh random one. The metadata is peer-supplied, so anything longer than
//! [`MAX_REQUEST_ID_LEN`] or outside `[A-Za-z0-9._-]` is replaced rather than
//! logged.

use ring::rand::{SecureRandom, SystemRandom};

/// Metadata key carrying the id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest caller-supplied id kept.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The id to log for `request`.
pub fn request_id<T>(request: &tonic::Request<T>) -> String {
    let given = request
        .metadata()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    if let Some(id) = given {
        return id.to_owned();
    }
    let mut id = [0u8; 8];
    // An all-zero id is still usable if the generator fails.
    let _ = SystemRandom::new().fill(&mut id);
    hex::encode(id)
}

#[cfg(test)]
mod tests {
    use tonic::Request;
    use tonic::metadata::MetadataValue;

    use super::*;

    fn with_id(id: &str) -> Request<()> {
        let mut req = Request::new(());
        req.metadata_mut()
            .insert(REQUEST_ID_HEADER, MetadataValue::try_from(id).unwrap());
        req
    }

    #[test]
    fn keeps_plain_request_ids_and_replaces_others() {
        assert_eq!(request_id(&with_id("abc-123_x.y")), "abc-123_x.y");

        let long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        let generated = [
            request_id(&Request::new(())),
            request_id(&with_id("has space")),
            request_id(&with_id("semi;colon")),
            request_id(&with_id(&long)),
        ];
        for id in generated {
            assert_eq!(id.len(), 16, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
    }
}
