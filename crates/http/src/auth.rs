//! Authentication headers.

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};

use crate::client::ClientError;
use crate::secret::Secret;

/// How requests authenticate. The secret never appears in `Debug` output
/// (it is held as a [`Secret`]).
///
/// ```
/// use aiobs_http::Auth;
///
/// let auth = Auth::basic("pk-lf-1", "sk-lf-2");
/// let (name, value) = auth.header()?.unwrap();
/// assert_eq!(name, "authorization");
/// assert_eq!(value.to_str().unwrap(), "Basic cGstbGYtMTpzay1sZi0y");
/// assert!(value.is_sensitive());
/// assert!(!format!("{auth:?}").contains("sk-lf-2"));
/// # Ok::<(), aiobs_http::ClientError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// No authentication header.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Basic base64(<user>:<password>)`.
    Basic {
        /// User name (Langfuse: the public key).
        user: String,
        /// Password (Langfuse: the secret key).
        password: Secret,
    },
    /// A custom header carrying a key, e.g. `x-api-key: <key>`.
    ApiKey {
        /// Header name.
        header: String,
        /// The key.
        key: Secret,
    },
}

impl Auth {
    /// `Authorization: Bearer <token>`.
    pub fn bearer(token: impl Into<Secret>) -> Self {
        Self::Bearer(token.into())
    }

    /// `Authorization: Basic ...`.
    pub fn basic(user: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self::Basic {
            user: user.into(),
            password: password.into(),
        }
    }

    /// `<header>: <key>`.
    pub fn api_key(header: impl Into<String>, key: impl Into<Secret>) -> Self {
        Self::ApiKey {
            header: header.into(),
            key: key.into(),
        }
    }

    /// The header to send (marked sensitive), or `None` for [`Auth::None`].
    /// Fails when the secret holds characters a header cannot carry (e.g. a newline).
    pub fn header(&self) -> Result<Option<(HeaderName, HeaderValue)>, ClientError> {
        let (name, value) = match self {
            Self::None => return Ok(None),
            Self::Bearer(token) => (AUTHORIZATION, format!("Bearer {}", token.expose())),
            Self::Basic { user, password } => {
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.expose()));
                (AUTHORIZATION, format!("Basic {encoded}"))
            }
            Self::ApiKey { header, key } => {
                let name = HeaderName::from_bytes(header.as_bytes()).map_err(|e| {
                    ClientError::InvalidHeader {
                        name: header.clone(),
                        reason: e.to_string(),
                    }
                })?;
                (name, key.expose().to_owned())
            }
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| ClientError::InvalidHeader {
            name: name.as_str().to_owned(),
            // Never echo the secret.
            reason: "the credential contains characters not allowed in a header".into(),
        })?;
        value.set_sensitive(true);
        Ok(Some((name, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header() {
        let (name, value) = Auth::bearer("t0k").header().unwrap().unwrap();
        assert_eq!(name, AUTHORIZATION);
        assert_eq!(value.to_str().unwrap(), "Bearer t0k");
        assert!(value.is_sensitive());
        assert_eq!(format!("{:?}", Auth::bearer("t0k")), "Bearer(<redacted>)");
    }

    #[test]
    fn api_key_header_and_bad_values() {
        let (name, value) = Auth::api_key("x-api-key", "k").header().unwrap().unwrap();
        assert_eq!(name.as_str(), "x-api-key");
        assert_eq!(value.to_str().unwrap(), "k");
        assert!(Auth::None.header().unwrap().is_none());
        let err = Auth::bearer("a\nb").header().unwrap_err();
        assert!(!err.to_string().contains("a\nb"), "{err}");
        assert!(Auth::api_key("bad header", "k").header().is_err());
    }
}
