//! The member client of push mode: read the kubeconfig Secret named by the MemberCluster, refuse anything
//! that weakens TLS or reaches outside the Secret (files, exec plugins), and build a client with timeouts so
//! a blackholed link never hangs a task.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

use super::error::{Error, is_not_found};
use crate::api::SecretKeyRef;

/// TCP connect timeout towards a member.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
/// Time a member has to answer a request (watches are closed by the server well before it).
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a member has to accept a request body.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The label that marks a hub Secret as a member kubeconfig: a MemberCluster may use no other Secret.
pub const KUBECONFIG_LABEL: &str = "marshal.dev/kubeconfig";

/// Why a member's kubeconfig Secret cannot be used. Each message says what is wrong and how to fix it, and
/// none repeats anything read from the Secret (a Secret's bytes never reach status, Events or logs): positions,
/// and Marshal's own names, only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The MemberCluster has no `connection.kubeconfigSecretRef`.
    #[error(
        "spec.connection.kubeconfigSecretRef is not set: push mode needs a kubeconfig Secret; set it, or use mode Pull"
    )]
    NoSecretRef,
    /// The reference names the hub's signing-key Secret.
    #[error(
        "Secret {namespace}/{name} is the hub's Assignment signing key: a MemberCluster can never use it as a kubeconfig; point spec.connection.kubeconfigSecretRef at the member's kubeconfig Secret"
    )]
    SigningKeySecret {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The Secret does not exist.
    #[error(
        "Secret {namespace}/{name} not found: create it with the member's kubeconfig under key {key}, or fix spec.connection.kubeconfigSecretRef"
    )]
    SecretNotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Expected key.
        key: String,
    },
    /// The Secret is not marked as a member kubeconfig.
    #[error(
        "Secret {namespace}/{name} is not marked as a member kubeconfig: label it {KUBECONFIG_LABEL}=true (Marshal reads no other Secret for a MemberCluster)"
    )]
    NotMarked {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The Secret has no such key.
    #[error(
        "Secret {namespace}/{name} has no key {key} ({present} keys): store the kubeconfig under {key}, or fix spec.connection.kubeconfigSecretRef.key"
    )]
    KeyMissing {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Expected key.
        key: String,
        /// How many keys there are.
        present: usize,
    },
    /// The text is not a kubeconfig (YAML syntax or shape), at this position.
    #[error(
        "the kubeconfig in the Secret is not valid at line {line}, column {column}: store a kubeconfig with a current-context, its cluster and its user"
    )]
    InvalidKubeconfig {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The kubeconfig is not UTF-8 text.
    #[error("the kubeconfig in the Secret is not UTF-8 text: store the kubeconfig file as it is")]
    NotText,
    /// No usable context.
    #[error(
        "the kubeconfig names no usable context: set current-context to one of its contexts (or keep exactly one), with its cluster and its user defined"
    )]
    NoContext,
    /// The cluster asks to skip TLS verification.
    #[error(
        "the current context's cluster sets insecure-skip-tls-verify: Marshal never talks to a member without verifying its certificate; remove it and add certificate-authority-data"
    )]
    InsecureSkipTlsVerify,
    /// The cluster carries no CA data.
    #[error(
        "the current context's cluster has no certificate-authority-data: embed the member API server's CA (base64 PEM) in the kubeconfig"
    )]
    NoCaData,
    /// The kubeconfig points at files of the controller's filesystem.
    #[error(
        "the kubeconfig refers to a file ({0}): a Secret's kubeconfig must embed everything (use the *-data fields or a token)"
    )]
    FileReference(&'static str),
    /// The kubeconfig runs a command or an auth provider.
    #[error(
        "the current context's user uses an exec plugin or auth-provider: Marshal does not run commands from Secrets; use a client certificate or a token"
    )]
    ExecNotAllowed,
    /// The server is not https.
    #[error("the current context's cluster server is not an https:// URL: only https:// servers are accepted")]
    NotHttps,
    /// kube refused to build a client from it.
    #[error("cannot build a client from the kubeconfig: its certificate, key or token data are not valid; check them")]
    ClientBuild,
}

impl CredentialError {
    /// The variant name: condition reason, Event reason and metric label.
    pub fn category(&self) -> &'static str {
        match self {
            CredentialError::NoSecretRef => "NoSecretRef",
            CredentialError::SigningKeySecret { .. } => "SigningKeySecret",
            CredentialError::SecretNotFound { .. } => "SecretNotFound",
            CredentialError::NotMarked { .. } => "NotMarked",
            CredentialError::KeyMissing { .. } => "KeyMissing",
            CredentialError::InvalidKubeconfig { .. } => "InvalidKubeconfig",
            CredentialError::NotText => "InvalidKubeconfig",
            CredentialError::NoContext => "InvalidKubeconfig",
            CredentialError::InsecureSkipTlsVerify => "InsecureSkipTlsVerify",
            CredentialError::NoCaData => "NoCaData",
            CredentialError::FileReference(_) => "FileReference",
            CredentialError::ExecNotAllowed => "ExecNotAllowed",
            CredentialError::NotHttps => "NotHttps",
            CredentialError::ClientBuild => "ClientBuild",
        }
    }
}

/// Whether `r` names the signing-key Secret `signing` (`NAMESPACE/NAME`).
pub fn is_signing_secret(r: &SecretKeyRef, signing: Option<&str>) -> bool {
    signing.and_then(|s| s.split_once('/')).is_some_and(|(ns, name)| ns == r.namespace && name == r.name)
}

/// The kubeconfig text stored under `key` in a Secret marked as a member kubeconfig.
pub fn kubeconfig_text(secret: &Secret, r: &SecretKeyRef) -> Result<String, CredentialError> {
    let marked = secret.metadata.labels.as_ref().and_then(|l| l.get(KUBECONFIG_LABEL)).is_some_and(|v| v == "true");
    if !marked {
        return Err(CredentialError::NotMarked { namespace: r.namespace.clone(), name: r.name.clone() });
    }
    let data = secret.data.as_ref().and_then(|d| d.get(&r.key)).map(|b| b.0.clone());
    let string_data = secret.string_data.as_ref().and_then(|d| d.get(&r.key)).map(|s| s.clone().into_bytes());
    let Some(bytes) = data.or(string_data) else {
        return Err(CredentialError::KeyMissing {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            key: r.key.clone(),
            present: secret.data.as_ref().map_or(0, |d| d.len()),
        });
    };
    String::from_utf8(bytes).map_err(|_| CredentialError::NotText)
}

/// Where a YAML error is, or (1, 1).
fn position(e: &serde_yaml::Error) -> CredentialError {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    CredentialError::InvalidKubeconfig { line, column }
}

/// Parses and vets a kubeconfig: the context in force (current-context, or the only one), its cluster and its
/// user must verify TLS with embedded CA data, use https, and embed their credentials.
pub fn vet_kubeconfig(text: &str) -> Result<Kubeconfig, CredentialError> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| position(&e))?;
    if !value.is_mapping() {
        return Err(CredentialError::InvalidKubeconfig { line: 1, column: 1 });
    }
    let kc: Kubeconfig = serde_yaml::from_str(text).map_err(|e| position(&e))?;
    let context_name = match (&kc.current_context, kc.contexts.as_slice()) {
        (Some(c), _) if !c.is_empty() => c.clone(),
        (_, [only]) => only.name.clone(),
        _ => return Err(CredentialError::NoContext),
    };
    let context = kc
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .ok_or(CredentialError::NoContext)?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or(CredentialError::NoContext)?;
    if cluster.insecure_skip_tls_verify == Some(true) {
        return Err(CredentialError::InsecureSkipTlsVerify);
    }
    if cluster.certificate_authority.is_some() {
        return Err(CredentialError::FileReference("certificate-authority"));
    }
    if cluster.certificate_authority_data.as_deref().is_none_or(|d| d.trim().is_empty()) {
        return Err(CredentialError::NoCaData);
    }
    if !cluster.server.as_deref().unwrap_or_default().starts_with("https://") {
        return Err(CredentialError::NotHttps);
    }
    if let Some(user_name) = &context.user {
        let user = kc
            .auth_infos
            .iter()
            .find(|u| &u.name == user_name)
            .and_then(|u| u.auth_info.as_ref())
            .ok_or(CredentialError::NoContext)?;
        if user.exec.is_some() || user.auth_provider.is_some() {
            return Err(CredentialError::ExecNotAllowed);
        }
        for (field, set) in [
            ("client-certificate", user.client_certificate.is_some()),
            ("client-key", user.client_key.is_some()),
            ("tokenFile", user.token_file.is_some()),
        ] {
            if set {
                return Err(CredentialError::FileReference(field));
            }
        }
    }
    Ok(kc)
}

/// Builds a member client from a vetted kubeconfig, with connect, read and write timeouts.
pub async fn client_from(kc: Kubeconfig) -> Result<Client, CredentialError> {
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|_| CredentialError::ClientBuild)?;
    config.accept_invalid_certs = false;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    config.write_timeout = Some(WRITE_TIMEOUT);
    config.reset_reader_on_write = true;
    Client::try_from(config).map_err(|_| CredentialError::ClientBuild)
}

/// Reads the Secret from the hub. `Ok(Err(..))` is a refusal (wait for a change); `Err` is a hub failure. The
/// signing-key Secret (`signing`, `NAMESPACE/NAME`) is never read for a member.
pub async fn read_kubeconfig(
    hub: &Client,
    r: Option<&SecretKeyRef>,
    signing: Option<&str>,
) -> Result<Result<String, CredentialError>, Error> {
    let Some(r) = r else { return Ok(Err(CredentialError::NoSecretRef)) };
    if is_signing_secret(r, signing) {
        return Ok(Err(CredentialError::SigningKeySecret { namespace: r.namespace.clone(), name: r.name.clone() }));
    }
    let api: Api<Secret> = Api::namespaced(hub.clone(), &r.namespace);
    match api.get(&r.name).await {
        Ok(secret) => Ok(kubeconfig_text(&secret, r)),
        Err(e) if is_not_found(&e) => Ok(Err(CredentialError::SecretNotFound {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            key: r.key.clone(),
        })),
        Err(e) => Err(Error::hub(format!("read Secret {}/{}", r.namespace, r.name))(e)),
    }
}

/// Vets the kubeconfig text and builds the client.
pub async fn member_client(text: &str) -> Result<Client, CredentialError> {
    client_from(vet_kubeconfig(text)?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJkekNDQVIyZ0F3SUJBZ0lCQURBS0JnZ3Foa2pPUFFRREFqQWpNU0V3SHdZRFZRUUREQmhyTTNNdGMyVnkKZG1WeUxXTmhRREUzTURBd01EQXdNREF3SGhjTk1qUXdNVEF4TURBd01EQXdXaGNOTXpRd01UQXhNREF3TURBdwpXakFqTVNFd0h3WURWUVFEREJock0zTXRjMlZ5ZG1WeUxXTmhRREUzTURBd01EQXdNREF3V1RBVEJnY3Foa2pPClBRSUJCZ2dxaGtqT1BRTUJCd05DQUFRPQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==";

    fn kubeconfig(cluster_extra: &str, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: m\ncontexts:\n- name: m\n  context: {{cluster: c, user: u}}\n\
             clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n{cluster_extra}users:\n- name: u\n  user:\n{user}"
        )
    }

    fn good_cluster() -> String {
        format!("    certificate-authority-data: {CA}\n")
    }

    const TOKEN_USER: &str = "    token: abc\n";

    #[test]
    fn accepts_embedded_ca_and_token() {
        assert!(vet_kubeconfig(&kubeconfig(&good_cluster(), TOKEN_USER)).is_ok());
    }

    #[test]
    fn refuses_insecure_skip_tls_verify() {
        let extra = format!("{}    insecure-skip-tls-verify: true\n", good_cluster());
        let err = vet_kubeconfig(&kubeconfig(&extra, TOKEN_USER)).unwrap_err();
        assert_eq!(err, CredentialError::InsecureSkipTlsVerify);
        assert!(err.to_string().contains("remove it"), "{err}");
    }

    #[test]
    fn refuses_missing_ca_data() {
        let err = vet_kubeconfig(&kubeconfig("", TOKEN_USER)).unwrap_err();
        assert_eq!(err, CredentialError::NoCaData);
        assert!(err.to_string().contains("certificate-authority-data"));
    }

    #[test]
    fn refuses_file_references_and_exec() {
        let extra = "    certificate-authority: /etc/ca.crt\n";
        assert_eq!(vet_kubeconfig(&kubeconfig(extra, TOKEN_USER)).unwrap_err().category(), "FileReference");
        let user = "    client-certificate: /tmp/a.crt\n    client-key-data: eA==\n";
        assert_eq!(vet_kubeconfig(&kubeconfig(&good_cluster(), user)).unwrap_err().category(), "FileReference");
        let exec = "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n";
        assert_eq!(vet_kubeconfig(&kubeconfig(&good_cluster(), exec)).unwrap_err().category(), "ExecNotAllowed");
    }

    #[test]
    fn refuses_plain_http_and_garbage() {
        let text = kubeconfig(&good_cluster(), TOKEN_USER).replace("https://", "http://");
        assert_eq!(vet_kubeconfig(&text).unwrap_err().category(), "NotHttps");
        assert_eq!(vet_kubeconfig("::: not yaml").unwrap_err().category(), "InvalidKubeconfig");
        let no_ctx = kubeconfig(&good_cluster(), TOKEN_USER).replace("current-context: m\n", "current-context: x\n");
        assert_eq!(vet_kubeconfig(&no_ctx).unwrap_err().category(), "InvalidKubeconfig");
    }

    fn secret(labelled: bool, data: &[(&str, &str)]) -> Secret {
        let mut s = Secret {
            data: Some(
                data.iter().map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.as_bytes().to_vec()))).collect(),
            ),
            ..Secret::default()
        };
        if labelled {
            s.metadata.labels = Some([(KUBECONFIG_LABEL.to_string(), "true".to_string())].into());
        }
        s
    }

    #[test]
    fn secret_key_missing_counts_the_keys_and_names_none() {
        let r = SecretKeyRef { namespace: "marshal-system".into(), name: "pol-1".into(), key: "kubeconfig".into() };
        let err = kubeconfig_text(&secret(true, &[("other", "x")]), &r).unwrap_err();
        assert_eq!(err.category(), "KeyMissing");
        assert!(err.to_string().contains("(1 keys)") && !err.to_string().contains("other"), "{err}");
    }

    #[test]
    fn only_marked_secrets_are_read_and_never_the_signing_key() {
        let r = SecretKeyRef { namespace: "marshal-system".into(), name: "k".into(), key: "kubeconfig".into() };
        let err = kubeconfig_text(&secret(false, &[("kubeconfig", "x")]), &r).unwrap_err();
        assert_eq!(err.category(), "NotMarked");
        assert_eq!(kubeconfig_text(&secret(true, &[("kubeconfig", "x")]), &r).as_deref(), Ok("x"));
        let key = SecretKeyRef {
            namespace: "marshal-system".into(),
            name: "marshal-signing-key".into(),
            key: "signing-key".into(),
        };
        assert!(is_signing_secret(&key, Some("marshal-system/marshal-signing-key")));
        assert!(!is_signing_secret(&r, Some("marshal-system/marshal-signing-key")));
        assert!(!is_signing_secret(&key, None));
    }

    #[test]
    fn errors_never_repeat_what_the_secret_holds() {
        let seed = "ed25519-private:q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng=";
        let token = "tok-5f4dcc3b5aa765d61d8327deb882cf99";
        let texts = [
            seed.to_string(),
            format!("apiVersion: v1\nusers:\n- name: u\n  user:\n    token: {token}\n   bad: [\n"),
            format!("users: {token}\n"),
            format!("- {token}\n"),
            format!("{token}: {token}\ncurrent-context: {token}\n"),
            kubeconfig(&good_cluster(), &format!("    token: {token}\n"))
                .replace("https://", &format!("http://{token}@")),
        ];
        for text in texts {
            let err = vet_kubeconfig(&text).unwrap_err().to_string();
            assert!(!err.contains(&seed[20..40]) && !err.contains(&token[4..20]), "{err}");
        }
        let err = vet_kubeconfig(&format!("users:\n- name: u\n  user:\n    token: {token}\n   bad: [\n")).unwrap_err();
        assert!(matches!(err, CredentialError::InvalidKubeconfig { line, .. } if line > 1), "{err:?}");
    }
}
