//! Password hashes of seeded accounts (argon2id, the `argon2` crate's defaults).
//!
//! The production admin's hash gets a random salt. Every development and
//! staging account shares one hash of [`DEV_PASSWORD`] with a fixed salt:
//! hashing once keeps `--scale` fast, and a fixed salt keeps the data
//! identical from run to run.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString};

use super::dataset::AdminAccount;
use crate::error::{Error, Result};

/// The password of every development and staging account.
pub const DEV_PASSWORD: &str = "pgwarden-dev";
const DEV_SALT: &[u8; 16] = b"pgwarden-seed-16";

/// The production admin's login: what `seed run` takes from
/// PGWARDEN_ADMIN_EMAIL and PGWARDEN_ADMIN_PASSWORD. Debug hides the password.
#[derive(Clone)]
pub struct AdminCredentials {
    pub email: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredentials")
            .field("email", &self.email)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

pub fn dev_password_hash() -> Result<String> {
    let salt = SaltString::encode_b64(DEV_SALT).map_err(hash_error)?;
    hash(DEV_PASSWORD, &salt)
}

/// Check the credentials and hash the password; the password never appears
/// in an error.
pub fn admin_account(credentials: Option<&AdminCredentials>) -> Result<AdminAccount> {
    let password = credentials
        .and_then(|c| c.password.as_deref())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            Error::usage(
                "production seeding creates the admin account and needs its password: \
                 set PGWARDEN_ADMIN_PASSWORD (and PGWARDEN_ADMIN_EMAIL); nothing was seeded",
            )
        })?;
    let email = credentials
        .and_then(|c| c.email.as_deref())
        .map(str::trim)
        .unwrap_or_default();
    if !valid_email(email) {
        return Err(Error::usage(format!(
            "PGWARDEN_ADMIN_EMAIL must be an email address like admin@example.org (got {email:?}); nothing was seeded"
        )));
    }
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes()).map_err(hash_error)?;
    Ok(AdminAccount {
        email: email.to_string(),
        password_hash: hash(password, &salt)?,
    })
}

/// The schema's users_email_format rule, checked before connecting.
fn valid_email(email: &str) -> bool {
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && email.len() <= 320
        && !email.chars().any(char::is_whitespace)
}

fn hash(password: &str, salt: &SaltString) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes(), salt)
        .map(|h| h.to_string())
        .map_err(hash_error)
}

fn hash_error(e: argon2::password_hash::Error) -> Error {
    Error::failed(format!("cannot hash the password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    #[test]
    fn admin_hash_is_argon2id_and_verifies() {
        let creds = AdminCredentials {
            email: Some("root@example.org".into()),
            password: Some("s3cret pass".into()),
        };
        let account = admin_account(Some(&creds)).unwrap();
        assert!(account.password_hash.starts_with("$argon2id$"));
        let parsed = PasswordHash::new(&account.password_hash).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"s3cret pass", &parsed)
                .is_ok()
        );
        assert!(!format!("{creds:?}").contains("s3cret"));
    }

    #[test]
    fn missing_password_or_bad_email_is_refused() {
        let err = admin_account(None).unwrap_err();
        assert!(err.message().contains("PGWARDEN_ADMIN_PASSWORD"));
        let creds = AdminCredentials {
            email: Some("not an email".into()),
            password: Some("x".into()),
        };
        let err = admin_account(Some(&creds)).unwrap_err();
        assert!(err.message().contains("PGWARDEN_ADMIN_EMAIL"));
        assert_eq!(dev_password_hash().unwrap(), dev_password_hash().unwrap());
    }
}
