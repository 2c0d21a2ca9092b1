//! How the simulator verifies `https://` and `wss://` servers.
//!
//! With `--ca-file`, the file's certificates are trusted the way curl's `--cacert` trusts
//! them: as roots that a server's chain may end in, and also as a server's own certificate.
//! webpki alone refuses the second use whenever the certificate says CA:TRUE, which
//! `openssl req -x509` writes into every self-signed certificate, so the one-command test
//! certificate would otherwise need a CA of its own. A certificate trusted as it stands
//! that has no subjectAltName DNS or IP names (as `openssl req -x509 -subj /CN=localhost`
//! without `-addext` makes it) is held to curl's name check instead of webpki's: its
//! subject's common name must be the server's name.
//!
//! ureq's `TlsConfig` takes roots but no verifier, so `https://` goes through a connector
//! of ours that wraps ureq's TCP transport in a rustls session built from the same config
//! as `wss://`.

use std::{
    fmt,
    io::{Read, Write},
    sync::Arc,
    time::Duration,
};

use rustls::{
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        WebPkiServerVerifier,
    },
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms},
    server::ParsedCertificate,
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme, StreamOwned,
};
use rustls_pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime};
use ureq::unversioned::{
    resolver::DefaultResolver,
    transport::{
        time as clock, Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either,
        LazyBuffers, NextTimeout, TcpConnector, Transport, TransportAdapter,
    },
};

use crate::error::{Error, Result};

/// The rustls client config for the simulator's TLS: the certificates of `ca_pem` (the
/// contents of `--ca-file`) when given, else the web's roots.
pub(crate) fn client_config(ca_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Http(format!("TLS: {e}")))?;
    let config = match ca_pem {
        None => builder
            .with_root_certificates(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
            .with_no_client_auth(),
        Some(pem) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CaFileVerifier::new(pem, &provider)?))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// An agent whose `https://` connections are verified by `tls` instead of by ureq's own
/// config; plain `http://` and `CONNECT` proxies work as with ureq's default connector.
pub(crate) fn agent(config: ureq::config::Config, tls: Arc<ClientConfig>) -> ureq::Agent {
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(RustlsConnector(tls));
    ureq::Agent::with_parts(config, connector, DefaultResolver::default())
}

/// Verifies servers against `--ca-file`: a server presenting one of the file's own
/// certificates is checked as that certificate (validity, purpose, name), since the file
/// vouches for exactly those bytes; any other server must chain to the file's certificates.
#[derive(Debug)]
struct CaFileVerifier {
    /// The file's certificates, in DER.
    trusted: Vec<CertificateDer<'static>>,
    /// Chains to the file's certificates, as roots.
    chains: Arc<WebPkiServerVerifier>,
    /// The provider's, so that handshake signatures are checked as rustls would.
    algorithms: WebPkiSupportedAlgorithms,
}

impl CaFileVerifier {
    fn new(pem: &[u8], provider: &Arc<CryptoProvider>) -> Result<CaFileVerifier> {
        let trusted = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Http(format!("--ca-file: {e}")))?;
        if trusted.is_empty() {
            return Err(Error::Http("--ca-file holds no PEM certificate".into()));
        }
        let mut roots = RootCertStore::empty();
        for cert in &trusted {
            roots
                .add(cert.clone())
                .map_err(|e| Error::Http(format!("--ca-file: {e}")))?;
        }
        let chains = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| Error::Http(format!("--ca-file: {e}")))?;
        Ok(CaFileVerifier {
            trusted,
            chains,
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

impl ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .trusted
            .iter()
            .any(|cert| cert.as_ref() == end_entity.as_ref())
        {
            verify_trusted_leaf(end_entity, server_name, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.chains
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The checks webpki makes of a server's own certificate, but for its basic constraints:
/// a certificate trusted as it stands may say CA:TRUE, as OpenSSL's self-signed ones do.
/// And as curl does, a certificate with no subjectAltName DNS or IP names is checked by
/// its subject's common name instead (webpki would refuse it for every name).
fn verify_trusted_leaf(
    der: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let fields = LeafFields::parse(der).ok_or(CertificateError::BadEncoding)?;
    let time = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if time < fields.not_before {
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before: unix_time(fields.not_before),
        }
        .into());
    }
    if time > fields.not_after {
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after: unix_time(fields.not_after),
        }
        .into());
    }
    if fields.eku.is_some_and(|eku| !allows_server_auth(eku)) {
        return Err(CertificateError::InvalidPurpose.into());
    }
    let parsed = ParsedCertificate::try_from(der)?;
    if fields.san_names {
        return rustls::client::verify_server_name(&parsed, server_name);
    }
    let cn = common_name(fields.subject).ok_or(CertificateError::BadEncoding)?;
    if cn.is_some_and(|cn| common_name_matches(cn, server_name)) {
        return Ok(());
    }
    Err(CertificateError::NotValidForNameContext {
        expected: server_name.to_owned(),
        presented: cn
            .map(|cn| format!("CommonName({:?})", String::from_utf8_lossy(cn)))
            .into_iter()
            .collect(),
    }
    .into())
}

/// Whether a certificate's common name names the server, as curl checks it when the
/// certificate has no subjectAltName DNS or IP names: a DNS name equal to it but for ASCII
/// case and a trailing dot, an IP address written as it. Wildcards are not honoured: a
/// common name with a `*` names no server.
fn common_name_matches(cn: &[u8], server_name: &ServerName<'_>) -> bool {
    if cn.contains(&b'*') {
        return false;
    }
    fn bare(name: &[u8]) -> &[u8] {
        name.strip_suffix(b".").unwrap_or(name)
    }
    let expected = server_name.to_str();
    match server_name {
        ServerName::DnsName(_) => bare(cn).eq_ignore_ascii_case(bare(expected.as_bytes())),
        ServerName::IpAddress(_) => cn.eq_ignore_ascii_case(expected.as_bytes()),
        _ => false,
    }
}

/// The last common name in the contents of a certificate's subject (the most specific, and
/// the one curl takes), if it has one in a string type that a host name can be written in;
/// `None` if the subject is not a Name as RFC 5280 lays it out.
fn common_name(subject: &[u8]) -> Option<Option<&[u8]>> {
    let mut cn = None;
    let mut rdns = subject;
    while !rdns.is_empty() {
        let (mut rdn, rest) = expect(SET, rdns)?;
        rdns = rest;
        while !rdn.is_empty() {
            let (attribute, rest) = expect(SEQUENCE, rdn)?;
            rdn = rest;
            let (id, attribute) = expect(OID, attribute)?;
            let (tag, value, _) = element(attribute)?;
            if id == COMMON_NAME {
                cn = match tag {
                    UTF8_STRING | PRINTABLE_STRING | T61_STRING | IA5_STRING => Some(value),
                    _ => None,
                };
            }
        }
    }
    Some(cn)
}

fn unix_time(seconds: i64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}

// DER tags of the certificate fields read below (RFC 5280, section 4.1).
const BOOLEAN: u8 = 0x01;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const T61_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const VERSION: u8 = 0xa0;
const ISSUER_UID: u8 = 0x81;
const SUBJECT_UID: u8 = 0x82;
const EXTENSIONS: u8 = 0xa3;
// GeneralName's dNSName and iPAddress (RFC 5280, section 4.2.1.6).
const DNS_NAME: u8 = 0x82;
const IP_ADDRESS: u8 = 0x87;
/// id-at-commonName, 2.5.4.3.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// id-ce-subjectAltName, 2.5.29.17.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
/// id-ce-extKeyUsage, 2.5.29.37.
const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
/// id-kp-serverAuth, 1.3.6.1.5.5.7.3.1.
const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];

/// What webpki checks of a server's certificate but does not expose.
struct LeafFields<'a> {
    /// Seconds since the Unix epoch.
    not_before: i64,
    not_after: i64,
    /// The extended key usage extension's value, if the certificate has one.
    eku: Option<&'a [u8]>,
    /// Whether a subjectAltName extension names a DNS name or an IP address.
    san_names: bool,
    /// The subject's contents: its relative distinguished names.
    subject: &'a [u8],
}

impl<'a> LeafFields<'a> {
    /// `None` if `der` is not a certificate as RFC 5280 lays it out.
    fn parse(der: &'a [u8]) -> Option<LeafFields<'a>> {
        let (cert, _) = expect(SEQUENCE, der)?;
        let (tbs, _) = expect(SEQUENCE, cert)?;
        let tbs = skip_if(VERSION, tbs)?;
        let (_serial, tbs) = expect(INTEGER, tbs)?;
        let (_signature, tbs) = expect(SEQUENCE, tbs)?;
        let (_issuer, tbs) = expect(SEQUENCE, tbs)?;
        let (validity, tbs) = expect(SEQUENCE, tbs)?;
        let (subject, tbs) = expect(SEQUENCE, tbs)?;
        let (_key, tbs) = expect(SEQUENCE, tbs)?;
        let tbs = skip_if(SUBJECT_UID, skip_if(ISSUER_UID, tbs)?)?;

        let (not_before, validity) = time(validity)?;
        let (not_after, _) = time(validity)?;

        let (mut eku, mut san_names) = (None, false);
        if let Some((EXTENSIONS, extensions, _)) = element(tbs) {
            let (mut list, _) = expect(SEQUENCE, extensions)?;
            while !list.is_empty() {
                let (extension, rest) = expect(SEQUENCE, list)?;
                list = rest;
                let (id, extension) = expect(OID, extension)?;
                let (value, _) = expect(OCTET_STRING, skip_if(BOOLEAN, extension)?)?;
                if id == EXT_KEY_USAGE {
                    eku = Some(value);
                } else if id == SUBJECT_ALT_NAME {
                    let (mut names, _) = expect(SEQUENCE, value)?;
                    while !names.is_empty() {
                        let (tag, _, rest) = element(names)?;
                        names = rest;
                        san_names |= tag == DNS_NAME || tag == IP_ADDRESS;
                    }
                }
            }
        }
        Some(LeafFields {
            not_before,
            not_after,
            eku,
            san_names,
            subject,
        })
    }
}

/// Whether an extended key usage value lists id-kp-serverAuth; as in webpki and OpenSSL,
/// anyExtendedKeyUsage does not stand in for it.
fn allows_server_auth(eku: &[u8]) -> bool {
    let Some((mut purposes, _)) = expect(SEQUENCE, eku) else {
        return false;
    };
    while let Some((OID, purpose, rest)) = element(purposes) {
        if purpose == SERVER_AUTH {
            return true;
        }
        purposes = rest;
    }
    false
}

/// The DER element at the start of `input`: its tag, its contents and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, input) = input.split_first()?;
    let (len, input) = match first {
        0..=0x7f => (usize::from(first), input),
        // Long form, up to four length bytes: more than any certificate needs.
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            if input.len() < n {
                return None;
            }
            let (bytes, input) = input.split_at(n);
            let len = bytes
                .iter()
                .fold(0usize, |len, &b| (len << 8) | usize::from(b));
            (len, input)
        }
        _ => return None,
    };
    if input.len() < len {
        return None;
    }
    let (contents, rest) = input.split_at(len);
    Some((tag, contents, rest))
}

/// The contents of the element at the start of `input`, which must have `tag`, and what
/// follows it.
fn expect(tag: u8, input: &[u8]) -> Option<(&[u8], &[u8])> {
    match element(input)? {
        (found, contents, rest) if found == tag => Some((contents, rest)),
        _ => None,
    }
}

/// `input` past an optional element with `tag`.
fn skip_if(tag: u8, input: &[u8]) -> Option<&[u8]> {
    match input.first() {
        Some(&found) if found == tag => element(input).map(|(_, _, rest)| rest),
        _ => Some(input),
    }
}

/// A certificate's UTCTime or GeneralizedTime (always UTC, to the second, in DER) at the
/// start of `input`, as seconds since the Unix epoch; and what follows it.
fn time(input: &[u8]) -> Option<(i64, &[u8])> {
    let (tag, text, rest) = element(input)?;
    let (digits, zone) = text.split_at(text.len().checked_sub(1)?);
    if zone != b"Z" || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |digits: &[u8]| {
        digits
            .iter()
            .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'))
    };
    let (year, digits) = match (tag, digits.len()) {
        // RFC 5280: two-digit years from 50 are 19YY, the others 20YY.
        (UTC_TIME, 12) => {
            let yy = number(&digits[..2]);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (number(&digits[..4]), &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| u8::try_from(number(&digits[i..i + 2])).ok();
    let month = time::Month::try_from(field(0)?).ok()?;
    let at = time::Date::from_calendar_date(i32::from(year), month, field(2)?)
        .ok()?
        .with_hms(field(4)?, field(6)?, field(8)?)
        .ok()?;
    Some((at.assume_utc().unix_timestamp(), rest))
}

/// Wraps `https://` connections in a rustls session with our config, as ureq's own
/// `RustlsConnector` does with the config it builds.
struct RustlsConnector(Arc<ClientConfig>);

impl fmt::Debug for RustlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustlsConnector").finish_non_exhaustive()
    }
}

impl<In: Transport> Connector<In> for RustlsConnector {
    type Out = Either<In, RustlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .ok_or(ureq::Error::Tls("an https:// URL without a host"))?;
        let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
            .map_err(|_| ureq::Error::Tls("the host is not a DNS name or IP address"))?
            .to_owned();
        let mut conn = ClientConnection::new(self.0.clone(), name)?;
        let inner: Box<dyn Transport> = Box::new(transport);
        let mut sock = TransportAdapter::new(inner, details.current_time.clone());
        sock.set_timeout(connect_budget(details));
        conn.complete_io(&mut sock)?;
        Ok(Some(Either::B(RustlsTransport {
            buffers: LazyBuffers::new(
                details.config.input_buffer_size(),
                details.config.output_buffer_size(),
            ),
            stream: StreamOwned::new(conn, sock),
        })))
    }
}

/// What is left of the connect timeout: it runs from when the connection began, TCP and
/// TLS together, as with ureq's own connector.
fn connect_budget(details: &ConnectionDetails) -> NextTimeout {
    let mut timeout = details.timeout;
    if let (
        clock::Duration::Exact(after),
        clock::Instant::Exact(began),
        clock::Instant::Exact(now),
    ) = (timeout.after, details.now, (details.current_time)())
    {
        let spent = now.saturating_duration_since(began);
        timeout.after = clock::Duration::Exact(after.saturating_sub(spent));
    }
    timeout
}

/// An `https://` connection: ureq's buffers over a rustls stream over ureq's transport.
struct RustlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for RustlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustlsTransport")
            .field("chained", &self.stream.sock.inner())
            .finish_non_exhaustive()
    }
}

impl Transport for RustlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        // Passed on unchanged: writing TLS may need to read, and the transport below
        // applies the per-read and per-write limits itself.
        self.stream.sock.set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.sock.set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.sock.get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
