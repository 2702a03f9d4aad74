//! The secrets file with the real tools: sops (the pinned build) and Debian's age-keygen. A
//! round trip through encryption, and each refusal: the wrong key, a tampered value or MAC, a
//! missing file or key, a plaintext or malformed file. No error shows a value.

use std::path::{Path, PathBuf};

use sea_infra::deployment::age;
use sea_infra::deployment::secrets::Secrets;
use sea_infra::deployment::sops::{self, SopsError};
use sea_infra::testing::{self, require, Prerequisite};

/// A scratch directory with an age key and the development secrets encrypted for it.
struct Fixture {
    dir: tempfile::TempDir,
    key: PathBuf,
    recipient: String,
    file: PathBuf,
    secrets: Secrets,
}

fn fixture() -> Fixture {
    let dir = testing::scratch_dir("secrets");
    let key = dir.path().join("age.key");
    let recipient = age::generate(&key).unwrap();
    let file = dir.path().join("secrets.env.sops");
    let secrets = Secrets::generate_dev();
    testing::sops()
        .encrypt(&secrets.to_dotenv(), &recipient, &file)
        .unwrap();
    Fixture {
        dir,
        key,
        recipient,
        file,
        secrets,
    }
}

/// Asserts that `text` holds none of the secrets' values.
fn assert_no_value(text: &str, secrets: &Secrets) {
    for (role, password) in &secrets.passwords {
        assert!(
            !text.contains(password.expose()),
            "{role}'s password appears in:\n{text}"
        );
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn secrets_round_trip_through_sops_with_a_real_age_key() {
    if !require(
        "secrets_round_trip_through_sops_with_a_real_age_key",
        Prerequisite::Age,
    ) {
        return;
    }
    let f = fixture();
    assert!(f.recipient.starts_with("age1"), "{}", f.recipient);
    assert_eq!(age::recipient(&f.key).unwrap(), f.recipient);
    assert_eq!(mode(&f.key), 0o600);
    let encrypted = std::fs::read_to_string(&f.file).unwrap();
    assert_no_value(&encrypted, &f.secrets);
    let meta = sops::metadata(&f.file).unwrap();
    assert_eq!(meta.recipients, std::slice::from_ref(&f.recipient));
    // One password per role, nothing else (the development TLS files are not secrets).
    assert_eq!(meta.keys.len(), f.secrets.passwords.len());
    assert!(meta.keys.contains(&"NATS_PASSWORD_LEAF".to_owned()));
    let pairs = testing::sops().decrypt(&f.file, &f.key).unwrap();
    assert_eq!(Secrets::from_dotenv(&pairs).unwrap(), f.secrets);
    // Nothing but the encrypted file and the key was written.
    let mut names: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["age.key", "secrets.env.sops"]);
}

#[test]
fn the_wrong_age_key_is_refused_naming_the_recipients() {
    if !require(
        "the_wrong_age_key_is_refused_naming_the_recipients",
        Prerequisite::Age,
    ) {
        return;
    }
    let f = fixture();
    let other = f.dir.path().join("other.key");
    age::generate(&other).unwrap();
    let err = testing::sops().decrypt(&f.file, &other).unwrap_err();
    assert!(matches!(err, SopsError::WrongKey { .. }), "{err:?}");
    let text = err.to_string();
    testing::assert_mentions(
        &text,
        &[
            "cannot be decrypted with the age key",
            "other.key",
            &f.recipient,
            "SEA_AGE_KEY_FILE",
        ],
    );
    assert_no_value(&text, &f.secrets);
    let missing = f.dir.path().join("no.key");
    let err = testing::sops().decrypt(&f.file, &missing).unwrap_err();
    assert!(matches!(err, SopsError::MissingKey { .. }), "{err:?}");
    assert!(
        err.to_string().contains("cargo xtask secrets init"),
        "{err}"
    );
}

/// The file with one character after `marker` changed.
fn flip_after(file: &Path, marker: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    let at = text.find(marker).unwrap() + marker.len();
    let old = text.as_bytes()[at];
    let new = if old == b'A' { 'B' } else { 'A' };
    let tampered = format!("{}{new}{}", &text[..at], &text[at + 1..]);
    std::fs::write(file, tampered).unwrap();
}

#[test]
fn a_tampered_value_or_mac_is_refused() {
    if !require("a_tampered_value_or_mac_is_refused", Prerequisite::Age) {
        return;
    }
    for marker in [
        "NATS_PASSWORD_WORKER=ENC[AES256_GCM,data:",
        "sops_mac=ENC[AES256_GCM,data:",
    ] {
        let f = fixture();
        flip_after(&f.file, marker);
        let err = testing::sops().decrypt(&f.file, &f.key).unwrap_err();
        assert!(
            matches!(err, SopsError::Tampered { .. }),
            "{marker}: {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("integrity check") && text.contains("secrets.env.sops"),
            "{text}"
        );
        assert_no_value(&text, &f.secrets);
    }
    // A value removed: the MAC no longer matches.
    let f = fixture();
    let text = std::fs::read_to_string(&f.file).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with("NATS_PASSWORD_SYS="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&f.file, kept).unwrap();
    let err = testing::sops().decrypt(&f.file, &f.key).unwrap_err();
    assert!(matches!(err, SopsError::Tampered { .. }), "{err:?}");
}

#[test]
fn missing_plaintext_and_malformed_files_are_refused_without_values() {
    if !require(
        "missing_plaintext_and_malformed_files_are_refused_without_values",
        Prerequisite::Age,
    ) {
        return;
    }
    let f = fixture();
    let sops = testing::sops();
    let err = sops
        .decrypt(&f.dir.path().join("none.env"), &f.key)
        .unwrap_err();
    assert!(matches!(err, SopsError::MissingFile { .. }), "{err:?}");
    assert!(
        err.to_string().contains("cargo xtask secrets init"),
        "{err}"
    );
    // Plaintext where the encrypted file should be.
    let plain = f.dir.path().join("plain.env");
    std::fs::write(&plain, f.secrets.to_dotenv().expose()).unwrap();
    let err = sops.decrypt(&plain, &f.key).unwrap_err();
    assert!(matches!(err, SopsError::NotEncrypted { .. }), "{err:?}");
    assert_no_value(&err.to_string(), &f.secrets);
    // A line that is not KEY=VALUE inside an encrypted file, quoting a value.
    let worker = f.secrets.passwords[&sea_infra::model::Role::Worker]
        .expose()
        .to_owned();
    let mut text = std::fs::read_to_string(&f.file).unwrap();
    text.push_str(&format!("oops {worker}\n"));
    std::fs::write(&f.file, text).unwrap();
    let err = sops.decrypt(&f.file, &f.key).unwrap_err();
    assert!(matches!(err, SopsError::Malformed { .. }), "{err:?}");
    assert!(!err.to_string().contains(&worker), "{err}");
    // Malformed plaintext is refused before sops sees it.
    let bad = sea_infra::env::Secret::new(format!("NOT A LINE {worker}\n"));
    let err = sops
        .encrypt(&bad, &f.recipient, &f.dir.path().join("x.env"))
        .unwrap_err();
    assert!(
        matches!(err, SopsError::Malformed { .. }) && !err.to_string().contains(&worker),
        "{err}"
    );
}
