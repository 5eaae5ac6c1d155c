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

/// Why a member's kubeconfig Secret cannot be used. Each message says what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The MemberCluster has no `connection.kubeconfigSecretRef`.
    #[error(
        "spec.connection.kubeconfigSecretRef is not set: push mode needs a kubeconfig Secret; set it, or use mode Pull"
    )]
    NoSecretRef,
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
    /// The Secret has no such key.
    #[error(
        "Secret {namespace}/{name} has no key {key} (keys: {present}): store the kubeconfig under {key}, or fix spec.connection.kubeconfigSecretRef.key"
    )]
    KeyMissing {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Expected key.
        key: String,
        /// Keys present.
        present: String,
    },
    /// The kubeconfig does not parse or names no usable context.
    #[error(
        "the kubeconfig in the Secret is not valid: {0}; store a kubeconfig with a current-context, its cluster and its user"
    )]
    InvalidKubeconfig(String),
    /// The cluster asks to skip TLS verification.
    #[error(
        "cluster {0} sets insecure-skip-tls-verify: Marshal never talks to a member without verifying its certificate; remove it and add certificate-authority-data"
    )]
    InsecureSkipTlsVerify(String),
    /// The cluster carries no CA data.
    #[error(
        "cluster {0} has no certificate-authority-data: embed the member API server's CA (base64 PEM) in the kubeconfig"
    )]
    NoCaData(String),
    /// The kubeconfig points at files of the controller's filesystem.
    #[error(
        "the kubeconfig refers to a file ({0}): a Secret's kubeconfig must embed everything (use the *-data fields or a token)"
    )]
    FileReference(String),
    /// The kubeconfig runs a command or an auth provider.
    #[error(
        "user {0} uses an exec plugin or auth-provider: Marshal does not run commands from Secrets; use a client certificate or a token"
    )]
    ExecNotAllowed(String),
    /// The server is not https.
    #[error("cluster {0} has server {1}: only https:// servers are accepted")]
    NotHttps(String, String),
    /// kube refused to build a client from it.
    #[error("cannot build a client from the kubeconfig: {0}; check the certificate and key data")]
    ClientBuild(String),
}

impl CredentialError {
    /// The variant name: condition reason, Event reason and metric label.
    pub fn category(&self) -> &'static str {
        match self {
            CredentialError::NoSecretRef => "NoSecretRef",
            CredentialError::SecretNotFound { .. } => "SecretNotFound",
            CredentialError::KeyMissing { .. } => "KeyMissing",
            CredentialError::InvalidKubeconfig(_) => "InvalidKubeconfig",
            CredentialError::InsecureSkipTlsVerify(_) => "InsecureSkipTlsVerify",
            CredentialError::NoCaData(_) => "NoCaData",
            CredentialError::FileReference(_) => "FileReference",
            CredentialError::ExecNotAllowed(_) => "ExecNotAllowed",
            CredentialError::NotHttps(..) => "NotHttps",
            CredentialError::ClientBuild(_) => "ClientBuild",
        }
    }
}

/// The kubeconfig text stored under `key` in a Secret.
pub fn kubeconfig_text(secret: &Secret, r: &SecretKeyRef) -> Result<String, CredentialError> {
    let data = secret.data.as_ref().and_then(|d| d.get(&r.key)).map(|b| b.0.clone());
    let string_data = secret.string_data.as_ref().and_then(|d| d.get(&r.key)).map(|s| s.clone().into_bytes());
    let Some(bytes) = data.or(string_data) else {
        let mut keys: Vec<&String> = secret.data.iter().flat_map(|d| d.keys()).collect();
        keys.sort();
        return Err(CredentialError::KeyMissing {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            key: r.key.clone(),
            present: if keys.is_empty() {
                "none".into()
            } else {
                keys.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            },
        });
    };
    String::from_utf8(bytes).map_err(|_| CredentialError::InvalidKubeconfig("it is not UTF-8 text".into()))
}

/// Parses and vets a kubeconfig: the context in force (current-context, or the only one), its cluster and its
/// user must verify TLS with embedded CA data, use https, and embed their credentials.
pub fn vet_kubeconfig(text: &str) -> Result<Kubeconfig, CredentialError> {
    let kc = Kubeconfig::from_yaml(text).map_err(|e| CredentialError::InvalidKubeconfig(e.to_string()))?;
    let context_name = match (&kc.current_context, kc.contexts.as_slice()) {
        (Some(c), _) if !c.is_empty() => c.clone(),
        (_, [only]) => only.name.clone(),
        _ => return Err(CredentialError::InvalidKubeconfig("no current-context".into())),
    };
    let context = kc
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| CredentialError::InvalidKubeconfig(format!("context {context_name} is not defined")))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| CredentialError::InvalidKubeconfig(format!("cluster {} is not defined", context.cluster)))?;
    let cname = context.cluster.clone();
    if cluster.insecure_skip_tls_verify == Some(true) {
        return Err(CredentialError::InsecureSkipTlsVerify(cname));
    }
    if cluster.certificate_authority.is_some() {
        return Err(CredentialError::FileReference(format!("clusters[{cname}].certificate-authority")));
    }
    if cluster.certificate_authority_data.as_deref().is_none_or(|d| d.trim().is_empty()) {
        return Err(CredentialError::NoCaData(cname));
    }
    let server = cluster.server.clone().unwrap_or_default();
    if !server.starts_with("https://") {
        return Err(CredentialError::NotHttps(cname, if server.is_empty() { "(none)".into() } else { server }));
    }
    if let Some(user_name) = &context.user {
        let user = kc
            .auth_infos
            .iter()
            .find(|u| &u.name == user_name)
            .and_then(|u| u.auth_info.as_ref())
            .ok_or_else(|| CredentialError::InvalidKubeconfig(format!("user {user_name} is not defined")))?;
        if user.exec.is_some() || user.auth_provider.is_some() {
            return Err(CredentialError::ExecNotAllowed(user_name.clone()));
        }
        for (field, set) in [
            ("client-certificate", user.client_certificate.is_some()),
            ("client-key", user.client_key.is_some()),
            ("tokenFile", user.token_file.is_some()),
        ] {
            if set {
                return Err(CredentialError::FileReference(format!("users[{user_name}].{field}")));
            }
        }
    }
    Ok(kc)
}

/// Builds a member client from a vetted kubeconfig, with connect, read and write timeouts.
pub async fn client_from(kc: Kubeconfig) -> Result<Client, CredentialError> {
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| CredentialError::ClientBuild(e.to_string()))?;
    config.accept_invalid_certs = false;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    config.write_timeout = Some(WRITE_TIMEOUT);
    config.reset_reader_on_write = true;
    Client::try_from(config).map_err(|e| CredentialError::ClientBuild(e.to_string()))
}

/// Reads the Secret from the hub. `Ok(Err(..))` is a refusal (wait for a change); `Err` is a hub failure.
pub async fn read_kubeconfig(hub: &Client, r: Option<&SecretKeyRef>) -> Result<Result<String, CredentialError>, Error> {
    let Some(r) = r else { return Ok(Err(CredentialError::NoSecretRef)) };
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
        assert_eq!(err.category(), "InsecureSkipTlsVerify");
        assert!(err.to_string().contains("remove it"), "{err}");
    }

    #[test]
    fn refuses_missing_ca_data() {
        let err = vet_kubeconfig(&kubeconfig("", TOKEN_USER)).unwrap_err();
        assert_eq!(err, CredentialError::NoCaData("c".into()));
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

    #[test]
    fn secret_key_missing_names_the_keys() {
        let secret = Secret {
            data: Some([("other".to_string(), k8s_openapi::ByteString(b"x".to_vec()))].into()),
            ..Secret::default()
        };
        let r = SecretKeyRef { namespace: "marshal-system".into(), name: "pol-1".into(), key: "kubeconfig".into() };
        let err = kubeconfig_text(&secret, &r).unwrap_err();
        assert_eq!(err.category(), "KeyMissing");
        assert!(err.to_string().contains("keys: other"), "{err}");
    }
}
